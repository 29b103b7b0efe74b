import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// How our own sockets avoid the TUN: the fwmark that `auto-route`'s first rule sends to
/// the main table, and the egress interface (`auto-detect-interface` or `interface-name`).
package final class EgressPolicy: Sendable {
    package let routingMark: UInt32
    private let detectedInterface = Locked<String?>(nil)
    private let keepAliveSettings = Locked(TCPKeepAlive())

    /// TCP keep-alive for both sides of relayed connections (follows reloads).
    package var keepAlive: TCPKeepAlive {
        get { keepAliveSettings.withLock { $0 } }
        set { keepAliveSettings.withLock { $0 = newValue } }
    }

    /// Applies ``keepAlive`` to a TCP socket.
    package func applyKeepAlive(_ fd: CInt) {
        let settings = keepAlive
        guard !settings.disabled else { return }
        InetSocket.setKeepAlive(fd, idle: settings.idle, interval: settings.interval)
    }

    package init(routingMark: UInt32) { self.routingMark = routingMark }

    /// The interface of the main table's default route, when auto-detect-interface follows it.
    package var interface: String? {
        get { detectedInterface.withLock { $0 } }
        set { detectedInterface.withLock { $0 = newValue } }
    }
}

/// The socket options of an outbound's own sockets (to the destination for DIRECT, to
/// the proxy server for proxies): the fwmark and the interface.
package struct DialSettings: Sendable {
    package let egress: EgressPolicy
    /// `interface-name`; nil follows the detected egress interface.
    package let interfaceName: String?
    /// The outbound's own `routing-mark`, overriding the global one.
    package let routingMark: UInt32?

    package init(egress: EgressPolicy, _ options: DialOptions = DialOptions()) {
        self.egress = egress
        self.interfaceName = options.interfaceName
        self.routingMark = options.routingMark
    }

    package func prepare(_ fd: CInt) throws(SystemError) {
        let mark = routingMark ?? egress.routingMark
        if mark != 0 { try InetSocket.setMark(fd, mark) }
        if let device = interfaceName ?? egress.interface { try InetSocket.bindToDevice(fd, device) }
    }

    /// A marked, bound, non-blocking TCP socket with its connect to `endpoint` started.
    package func connectTCP(to endpoint: InetEndpoint) throws(SystemError) -> OwnedDescriptor {
        let socket = try InetSocket.tcp(endpoint.address.socketFamily)
        try prepare(socket.rawValue)
        _ = try InetSocket.setOption(
            socket.rawValue, level: CInt(IPPROTO_TCP), name: TCP_NODELAY, value: 1, "TCP_NODELAY")
        egress.applyKeepAlive(socket.rawValue)
        _ = try InetSocket.connect(socket.rawValue, endpoint)
        return socket
    }

    /// A marked, bound, non-blocking UDP socket.
    package func udpSocket(family: CInt) throws(SystemError) -> OwnedDescriptor {
        let socket = try InetSocket.udp(family)
        try prepare(socket.rawValue)
        return socket
    }
}
