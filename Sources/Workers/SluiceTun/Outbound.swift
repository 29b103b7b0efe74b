import SluiceConfig
import SluiceNet
import SluiceProxy
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
protocol Outbound: Sendable {
    var name: String { get }
    /// Whether a flow to a fake address reaches this outbound with its name (a proxy
    /// resolves it at the far end: no DNS query leaves here) rather than with the name's
    /// real address, resolved here first (DIRECT).
    var sendsNames: Bool { get }
    /// How a TCP connection to `target` is made. Throws when this outbound cannot reach it
    /// (a `direct` proxy whose `ip-version` excludes the destination's family).
    func planTCP(to target: FlowTarget) throws(SystemError) -> TCPPlan
    /// Starts a TCP connection to the plan's first hop, once its address is known; the
    /// socket is non-blocking and the connect may still be in progress (the relay waits
    /// for writability).
    func connectTCP(to hop: InetEndpoint) throws(SystemError) -> OwnedDescriptor
    /// Why this outbound carries no UDP; nil when it does.
    var udpUnsupportedReason: String? { get }
    /// A UDP session for one client endpoint (full cone: one session per client endpoint
    /// and outbound, whatever the destinations).
    func openUDP(family: CInt) throws(SystemError) -> any UDPSession
}

/// A flow's destination as outbounds see it.
struct FlowTarget: Sendable, CustomStringConvertible {
    /// The address and port the client used (a fake address for fake-IP flows).
    var endpoint: InetEndpoint
    /// The name a fake address stands for; nil for real addresses.
    var name: String?

    /// What a proxy is asked for: the name when there is one, otherwise the address.
    var proxyTarget: SocketEndpoint {
        if let name { return SocketEndpoint(host: .name(name), port: endpoint.port) }
        return SocketEndpoint(address: endpoint.address, port: endpoint.port)
    }

    var description: String { name.map { "\($0):\(endpoint.port)" } ?? endpoint.description }
}

/// Which address families a name may resolve to (`ip-version` of a `direct` proxy).
struct AddressPreference: Sendable, Equatable {
    var allowsIPv4 = true
    var allowsIPv6 = true
    var prefersIPv6 = false

    /// `ip-version`; `dual` keeps the client's family first, as before ip-version existed.
    init(_ version: DirectProxy.IPVersion, clientIsIPv4: Bool) {
        switch version {
        case .ipv4: (allowsIPv4, allowsIPv6, prefersIPv6) = (true, false, false)
        case .ipv6: (allowsIPv4, allowsIPv6, prefersIPv6) = (false, true, true)
        case .ipv4Prefer: (allowsIPv4, allowsIPv6, prefersIPv6) = (true, true, false)
        case .ipv6Prefer: (allowsIPv4, allowsIPv6, prefersIPv6) = (true, true, true)
        case .dual: (allowsIPv4, allowsIPv6, prefersIPv6) = (true, true, !clientIsIPv4)
        }
    }

    /// Any family, IPv4 first (proxy servers).
    static let any = AddressPreference(.ipv4Prefer, clientIsIPv4: true)

    func allows(_ address: IPAddress) -> Bool { address.isIPv4 ? allowsIPv4 : allowsIPv6 }

    /// The address to dial among `addresses`: the preferred family first.
    func pick(_ addresses: [IPAddress]) -> IPAddress? {
        addresses.first { allows($0) && $0.isIPv4 != prefersIPv6 } ?? addresses.first { allows($0) }
    }
}

/// The first hop of a TCP connection.
enum TCPHop: Sendable {
    case endpoint(InetEndpoint)
    /// A name the relay resolves first (off its thread), then dials at `port`.
    case name(String, port: UInt16, AddressPreference)
}

/// How the relay makes one TCP connection through an outbound.
struct TCPPlan {
    var hop: TCPHop
    /// What to say on the connection before relaying (a proxy's setup); nil: nothing.
    var handshake: (any ProxyHandshake)?
    /// Transforms the relayed bytes (encryption); nil: they pass unchanged and are spliced.
    var codec: (any StreamCodec)?
}

/// Transforms a relayed TCP stream in both directions. Used on the relay thread only.
protocol StreamCodec: AnyObject {
    /// Bytes for the server before any of the client's (Shadowsocks: the salt and the
    /// sealed target address, so servers that speak first are reached too; TLS: records
    /// the handshake left queued), and bytes for the client before any of the server's
    /// (TLS: plaintext that came behind the proxy's reply).
    func start(toServer: inout [UInt8], toClient: inout [UInt8])
    /// Client bytes on their way to the server.
    func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(StreamCodecError)
    /// Server bytes on their way to the client.
    func decode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(StreamCodecError)
    /// Whether the server's stream ended in the middle of a unit (a truncated stream).
    var decodeIncomplete: Bool { get }
}

/// A stream cannot be encoded or decoded; the connection is reset.
struct StreamCodecError: Error, CustomStringConvertible {
    var description: String
}

/// How our own sockets avoid the TUN: the fwmark that `auto-route`'s first rule sends to
/// the main table, and the egress interface (`auto-detect-interface` or `interface-name`).
final class EgressPolicy: Sendable {
    let routingMark: UInt32
    private let detectedInterface = Locked<String?>(nil)
    private let keepAliveSettings = Locked(TCPKeepAlive())

    /// TCP keep-alive for both sides of relayed connections (follows reloads).
    var keepAlive: TCPKeepAlive {
        get { keepAliveSettings.withLock { $0 } }
        set { keepAliveSettings.withLock { $0 = newValue } }
    }

    /// Applies ``keepAlive`` to a TCP socket.
    func applyKeepAlive(_ fd: CInt) {
        let settings = keepAlive
        guard !settings.disabled else { return }
        InetSocket.setKeepAlive(fd, idle: settings.idle, interval: settings.interval)
    }

    init(routingMark: UInt32) { self.routingMark = routingMark }

    /// The interface of the main table's default route, when auto-detect-interface follows it.
    var interface: String? {
        get { detectedInterface.withLock { $0 } }
        set { detectedInterface.withLock { $0 = newValue } }
    }
}

/// The socket options of an outbound's own sockets (to the destination for DIRECT, to
/// the proxy server for proxies): the fwmark and the interface.
struct DialSettings: Sendable {
    let egress: EgressPolicy
    /// `interface-name`; nil follows the detected egress interface.
    let interfaceName: String?
    /// The outbound's own `routing-mark`, overriding the global one.
    let routingMark: UInt32?

    init(egress: EgressPolicy, _ options: DialOptions = DialOptions()) {
        self.egress = egress
        self.interfaceName = options.interfaceName
        self.routingMark = options.routingMark
    }

    func prepare(_ fd: CInt) throws(SystemError) {
        let mark = routingMark ?? egress.routingMark
        if mark != 0 { try InetSocket.setMark(fd, mark) }
        if let device = interfaceName ?? egress.interface { try InetSocket.bindToDevice(fd, device) }
    }

    /// A marked, bound, non-blocking TCP socket with its connect to `endpoint` started.
    func connectTCP(to endpoint: InetEndpoint) throws(SystemError) -> OwnedDescriptor {
        let socket = try InetSocket.tcp(endpoint.address.socketFamily)
        try prepare(socket.rawValue)
        _ = try InetSocket.setOption(socket.rawValue, level: CInt(IPPROTO_TCP), name: TCP_NODELAY, value: 1, "TCP_NODELAY")
        egress.applyKeepAlive(socket.rawValue)
        _ = try InetSocket.connect(socket.rawValue, endpoint)
        return socket
    }

    /// A marked, bound, non-blocking UDP socket.
    func udpSocket(family: CInt) throws(SystemError) -> OwnedDescriptor {
        let socket = try InetSocket.udp(family)
        try prepare(socket.rawValue)
        return socket
    }
}

/// DIRECT: a plain socket, marked so policy routing sends it around the TUN, optionally
/// bound to an interface (a `direct` proxy's `interface-name`, e.g. a WireGuard link).
/// A fake destination is dialed at its name's real address, looked up here.
struct DirectOutbound: Outbound {
    let name: String
    let dial: DialSettings
    /// A `direct` proxy's `ip-version`.
    var ipVersion: DirectProxy.IPVersion = .dual
    /// A `direct` proxy's `udp`.
    var udp = true

    var sendsNames: Bool { false }

    func planTCP(to target: FlowTarget) throws(SystemError) -> TCPPlan {
        let preference = AddressPreference(ipVersion, clientIsIPv4: target.endpoint.address.isIPv4)
        if let name = target.name {
            return TCPPlan(hop: .name(name, port: target.endpoint.port, preference))
        }
        guard preference.allows(target.endpoint.address) else {
            throw SystemError("ip-version \(ipVersion.rawValue) excludes \(target.endpoint.address)", errno: EAFNOSUPPORT)
        }
        return TCPPlan(hop: .endpoint(target.endpoint))
    }

    func connectTCP(to hop: InetEndpoint) throws(SystemError) -> OwnedDescriptor {
        try dial.connectTCP(to: hop)
    }

    var udpUnsupportedReason: String? { udp ? nil : "udp: false on this direct proxy" }

    func openUDP(family: CInt) throws(SystemError) -> any UDPSession {
        DirectUDPSession(socket: try dial.udpSocket(family: family), ipVersion: ipVersion)
    }
}
