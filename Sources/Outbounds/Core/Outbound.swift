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
/// off-thread) and what to say there; ``connectTCP(to:)`` starts the connect; then the
/// relay runs the plan's handshake, if any, and relays: kernel to kernel with splice when
/// the plan has no codec (DIRECT, and SOCKS5/HTTP once their handshake is done), through
/// userspace buffers when it has one (Shadowsocks and TLS encrypt every byte).
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

/// How the relay makes one TCP connection through an outbound.
package struct TCPPlan {
    package var hop: TCPHop
    /// What to say on the connection before relaying (a proxy's setup); nil: nothing.
    package var handshake: (any ProxyHandshake)?
    /// Transforms the relayed bytes (encryption); nil: they pass unchanged and are spliced.
    package var codec: (any StreamCodec)?

    package init(hop: TCPHop, handshake: (any ProxyHandshake)? = nil, codec: (any StreamCodec)? = nil) {
        self.hop = hop
        self.handshake = handshake
        self.codec = codec
    }
}

/// Transforms a relayed TCP stream in both directions. Used on the relay thread only.
package protocol StreamCodec: AnyObject {
    /// Bytes for the server before any of the client's (Shadowsocks: the salt and the
    /// sealed target address, so servers that speak first are reached too; TLS: records
    /// the handshake left queued), and bytes for the client before any of the server's
    /// (TLS: plaintext that came behind the proxy's reply).
    func start(toServer: inout [UInt8], toClient: inout [UInt8])
    /// Client bytes on their way to the server.
    func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(OutboundError)
    /// Server bytes on their way to the client.
    func decode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(OutboundError)
    /// Whether the server's stream ended in the middle of a unit (a truncated stream).
    var decodeIncomplete: Bool { get }
}

