import SluiceConfig
import SluiceNet
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where a flow leaves the machine. DIRECT is implemented here; proxies (SOCKS5, HTTP,
/// Shadowsocks) join this seam in issue 6.
protocol Outbound: Sendable {
    var name: String { get }
    /// Starts a TCP connection to `destination`; the socket is non-blocking and the connect
    /// may still be in progress (the relay waits for writability).
    func openTCP(to destination: InetEndpoint) throws(SystemError) -> OwnedDescriptor
    /// A UDP socket for one client flow (full-cone: one socket per client endpoint).
    func openUDP(family: CInt) throws(SystemError) -> OwnedDescriptor
}

/// How our own sockets avoid the TUN: the fwmark that `auto-route`'s first rule sends to
/// the main table, and the egress interface (`auto-detect-interface` or `interface-name`).
final class EgressPolicy: Sendable {
    let routingMark: UInt32
    private let detectedInterface = Mutex<String?>(nil)

    init(routingMark: UInt32) { self.routingMark = routingMark }

    /// The interface of the main table's default route, when auto-detect-interface follows it.
    var interface: String? {
        get { detectedInterface.withLock { $0 } }
        set { detectedInterface.withLock { $0 = newValue } }
    }
}

/// DIRECT: a plain socket, marked so policy routing sends it around the TUN, optionally
/// bound to an interface (a `direct` proxy's `interface-name`, e.g. a WireGuard link).
struct DirectOutbound: Outbound {
    let name: String
    let egress: EgressPolicy
    /// `interface-name` of a `direct` proxy; nil follows the detected egress interface.
    let interfaceName: String?
    /// A `direct` proxy's own `routing-mark`, overriding the global one.
    let routingMark: UInt32?

    private func prepare(_ fd: CInt) throws(SystemError) {
        let mark = routingMark ?? egress.routingMark
        if mark != 0 { try InetSocket.setMark(fd, mark) }
        if let device = interfaceName ?? egress.interface { try InetSocket.bindToDevice(fd, device) }
    }

    func openTCP(to destination: InetEndpoint) throws(SystemError) -> OwnedDescriptor {
        let socket = try InetSocket.tcp(destination.address.socketFamily)
        try prepare(socket.rawValue)
        _ = try InetSocket.setOption(socket.rawValue, level: CInt(IPPROTO_TCP), name: TCP_NODELAY, value: 1, "TCP_NODELAY")
        _ = try InetSocket.connect(socket.rawValue, destination)
        return socket
    }

    func openUDP(family: CInt) throws(SystemError) -> OwnedDescriptor {
        let socket = try InetSocket.udp(family)
        try prepare(socket.rawValue)
        return socket
    }
}
