import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Where a flow leaves the machine: DIRECT (and `direct` proxies), an upstream proxy
/// (SOCKS5, HTTP CONNECT, Shadowsocks, the first two optionally over TLS), or the dns worker for hijacked TCP DNS.
///
/// TCP goes in three steps the relay loop drives on its one epoll thread, never blocking:
/// ``planTCP(to:)`` says where the first hop is (an address, or a name the relay resolves
/// off-thread) and the plan's shape (``TCPPlan/Shape``); ``connectTCP(to:)`` starts the connect; then the
/// relay sets the connection up and relays. A socket plan runs its handshake, if any, on the socket and is
/// spliced kernel to kernel (DIRECT, and SOCKS5/HTTP once their handshake is done); a stream plan stacks its
/// layers over the socket (``LayeredStream``) and is relayed through userspace buffers (Shadowsocks and TLS
/// encrypt every byte). The relay knows streams only as ``OutboundStream``: a multiplexed or QUIC protocol
/// brings its own implementation and needs no change to the relay.
package protocol Outbound: Sendable {
    var name: String { get }
    /// Whether a flow to a fake address reaches this outbound with its name (a proxy
    /// resolves it at the far end: no DNS query leaves here) rather than with the name's
    /// real address, resolved here first (DIRECT).
    var sendsNames: Bool { get }
    /// How a TCP connection to `target` is made. Throws when this outbound cannot reach it
    /// (a `direct` proxy whose `ip-version` excludes the destination's family, a TLS session that cannot be made).
    func planTCP(to target: FlowTarget) throws(OutboundError) -> TCPPlan
    /// Starts a TCP connection to the plan's first hop, once its address is known; the
    /// socket is non-blocking and the connect may still be in progress (the relay waits
    /// for writability).
    func connectTCP(to hop: InetEndpoint) throws(SystemError) -> OwnedDescriptor
    /// Why this outbound carries no UDP; nil when it does.
    var udpUnsupportedReason: String? { get }
    /// A UDP session for one client endpoint (full cone: one session per client endpoint
    /// and outbound, whatever the destinations). Throws `SystemError` when its socket cannot be made, and
    /// ``OutboundError`` where the outbound carries no UDP (callers check ``udpUnsupportedReason`` first).
    func openUDP(family: CInt) throws -> any UDPSession
}

/// A flow's destination as outbounds see it.
package struct FlowTarget: Sendable, CustomStringConvertible {
    /// The address and port the client used (a fake address for fake-IP flows).
    package var endpoint: InetEndpoint
    /// The name a fake address stands for; nil for real addresses.
    package var name: String?

    package init(endpoint: InetEndpoint, name: String? = nil) {
        self.endpoint = endpoint
        self.name = name
    }

    /// What a proxy is asked for: the name when there is one, otherwise the address.
    package var proxyTarget: SocketEndpoint {
        if let name { return SocketEndpoint(host: .name(name), port: endpoint.port) }
        return SocketEndpoint(address: endpoint.address, port: endpoint.port)
    }

    package var description: String { name.map { "\($0):\(endpoint.port)" } ?? endpoint.description }
}

/// The first hop of a TCP connection.
package enum TCPHop: Sendable {
    case endpoint(InetEndpoint)
    /// A name the relay resolves first (off its thread), then dials at `port`.
    case name(String, port: UInt16, AddressPreference)
}

/// How the relay makes one TCP connection through an outbound: the first hop and the shape of what runs on it.
package struct TCPPlan {
    package var hop: TCPHop
    package var shape: Shape

    /// The two shapes of a TCP connection, each with its own relay.
    package enum Shape {
        /// A kernel socket: `handshake` (a proxy's setup; nil: nothing to say) runs on it, then the relay splices
        /// kernel to kernel (DIRECT, plain SOCKS5 and HTTP CONNECT: the fast path).
        case socket(handshake: (any ProxyHandshake)?)
        /// A user-space byte stream: `layers` (bottom first: TLS under a proxy handshake) stacked over the socket in
        /// a ``LayeredStream``; the relay copies through user-space buffers (Shadowsocks AEAD, `tls: true` proxies).
        case stream([any StreamLayer])
    }

    package init(hop: TCPHop, _ shape: Shape = .socket(handshake: nil)) {
        self.hop = hop
        self.shape = shape
    }
}
