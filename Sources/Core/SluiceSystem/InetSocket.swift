import CSluice
import SluiceNet

#if canImport(Glibc)
import Glibc
#endif

/// An IP address and port, as sockets see them.
package struct InetEndpoint: Hashable, Sendable, CustomStringConvertible {
    package var address: IPAddress
    package var port: UInt16

    package init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    package var description: String {
        switch address {
        case .v4(let a): "\(a):\(port)"
        case .v6(let a): "[\(a)]:\(port)"
        }
    }
}

extension IPAddress {
    /// AF_INET or AF_INET6.
    package var socketFamily: CInt { isIPv4 ? AF_INET : AF_INET6 }

    /// Network-order bytes (4 or 16) for the C helpers.
    @inlinable
    package func withNetworkBytes<T>(_ body: (UnsafePointer<UInt8>) -> T) -> T {
        switch self {
        case .v4(let a):
            var be = a.rawValue.bigEndian
            return withUnsafeBytes(of: &be) { body($0.bindMemory(to: UInt8.self).baseAddress!) }
        case .v6(let a):
            var bytes = (a.high.bigEndian, a.low.bigEndian)
            return withUnsafeBytes(of: &bytes) { body($0.bindMemory(to: UInt8.self).baseAddress!) }
        }
    }

    /// Reads an address the C helpers returned (family + 16-byte buffer).
    package init?(family: CInt, networkBytes b: UnsafeRawBufferPointer) {
        if family == AF_INET {
            self = .v4(IPv4Address(b[0], b[1], b[2], b[3]))
        } else if family == AF_INET6 {
            var high: UInt64 = 0
            var low: UInt64 = 0
            for i in 0..<8 { high = high << 8 | UInt64(b[i]) }
            for i in 8..<16 { low = low << 8 | UInt64(b[i]) }
            self = .v6(IPv6Address(high: high, low: low))
        } else {
            return nil
        }
    }
}

/// IP socket operations through CSluice, throwing ``SystemError``s that name the call and
/// the endpoint.
package enum InetSocket {
    package static func make(family: CInt, type: CInt, protocol proto: CInt = 0, nonBlocking: Bool = true)
        throws(SystemError)
        -> OwnedDescriptor
    {
        let fd = try Posix.check("socket", csluice_socket(family, type, proto, nonBlocking ? 1 : 0))
        return OwnedDescriptor(takingOwnershipOfDescriptor: fd)
    }

    package static func tcp(_ family: CInt) throws(SystemError) -> OwnedDescriptor {
        try make(family: family, type: CInt(SOCK_STREAM.rawValue))
    }

    package static func udp(_ family: CInt) throws(SystemError) -> OwnedDescriptor {
        try make(family: family, type: CInt(SOCK_DGRAM.rawValue))
    }

    package static func bind(_ fd: CInt, _ endpoint: InetEndpoint, freeBind: Bool = false, reuseAddress: Bool = false)
        throws(SystemError)
    {
        let rc = endpoint.address.withNetworkBytes {
            csluice_bind_inet(
                fd, endpoint.address.socketFamily, $0, endpoint.port, freeBind ? 1 : 0, reuseAddress ? 1 : 0)
        }
        try Posix.check("bind \(endpoint)", rc)
    }

    /// Asks for a receive buffer of `bytes`: SO_RCVBUFFORCE where the caller holds
    /// CAP_NET_ADMIN (past net.core.rmem_max), else SO_RCVBUF (capped by it). Bursts of
    /// datagrams (a DNS server under load) otherwise overflow the 208 KiB default.
    package static func enlargeReceiveBuffer(_ fd: CInt, bytes: CInt = 4 << 20) {
        var size = bytes
        var current: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        let setLength = length
        // The kernel reports twice what was set; a buffer already as large stays (an
        // unprivileged SO_RCVBUF would shrink one that sluiced forced larger).
        if getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &current, &length) == 0, current >= bytes { return }
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, setLength) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, setLength)
        }
    }

    /// TCP keep-alive: probes after `idle` seconds of silence, every `interval` seconds, and
    /// a reset after `count` unanswered ones.
    package static func setKeepAlive(_ fd: CInt, idle: Int, interval: Int, count: Int = 9) {
        var on: CInt = 1
        var values = (CInt(idle), CInt(interval), CInt(count))
        let length = socklen_t(MemoryLayout<CInt>.size)
        _ = setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, length)
        _ = setsockopt(fd, CInt(IPPROTO_TCP), TCP_KEEPIDLE, &values.0, length)
        _ = setsockopt(fd, CInt(IPPROTO_TCP), TCP_KEEPINTVL, &values.1, length)
        _ = setsockopt(fd, CInt(IPPROTO_TCP), TCP_KEEPCNT, &values.2, length)
    }

    /// A UDP socket and a listening TCP socket on the same `endpoint` (a DNS server's pair).
    ///
    /// `[::]` is every address of both families, as Go's `net.Listen(":53")` (mihomo's `dns.listen: ":53"`):
    /// IPV6_V6ONLY is cleared whatever `net.ipv6.bindv6only` says, and on a host without IPv6 the pair is
    /// bound to 0.0.0.0 instead.
    package static func serverPair(_ endpoint: InetEndpoint, backlog: CInt = 512) throws(SystemError)
        -> (udp: OwnedDescriptor, tcp: OwnedDescriptor)
    {
        let dualStack = endpoint.address == .v6(.any)
        let udp: OwnedDescriptor
        do {
            udp = try InetSocket.udp(endpoint.address.socketFamily)
        } catch  where dualStack && error.errno == EAFNOSUPPORT {
            return try serverPair(InetEndpoint(.v4(IPv4Address(rawValue: 0)), endpoint.port), backlog: backlog)
        }
        if dualStack { try setDualStack(udp.rawValue, endpoint) }
        try bind(udp.rawValue, endpoint, reuseAddress: true)
        enlargeReceiveBuffer(udp.rawValue)
        let tcp = try InetSocket.tcp(endpoint.address.socketFamily)
        if dualStack { try setDualStack(tcp.rawValue, endpoint) }
        try bind(tcp.rawValue, endpoint, reuseAddress: true)
        try Posix.call("listen \(endpoint)") { Glibc.listen(tcp.rawValue, backlog) }
        return (udp, tcp)
    }

    /// Clears IPV6_V6ONLY so that an IPv6 socket bound to `[::]` also receives IPv4 (as mapped addresses).
    private static func setDualStack(_ fd: CInt, _ endpoint: InetEndpoint) throws(SystemError) {
        var off: CInt = 0
        try Posix.call("setsockopt IPV6_V6ONLY \(endpoint)") {
            setsockopt(fd, CInt(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<CInt>.size))
        }
    }

    /// Starts a connect; returns false when it is in progress (non-blocking socket).
    package static func connect(_ fd: CInt, _ endpoint: InetEndpoint) throws(SystemError) -> Bool {
        let rc = endpoint.address.withNetworkBytes {
            csluice_connect_inet(fd, endpoint.address.socketFamily, $0, endpoint.port)
        }
        if rc == -EINPROGRESS { return false }
        try Posix.check("connect \(endpoint)", rc)
        return true
    }

    /// Sends one datagram; false when the socket buffer is full (EAGAIN).
    @discardableResult
    package static func send(_ fd: CInt, _ bytes: UnsafeRawBufferPointer, to endpoint: InetEndpoint) throws(SystemError)
        -> Bool
    {
        let n = endpoint.address.withNetworkBytes {
            csluice_sendto_inet(fd, bytes.baseAddress, bytes.count, endpoint.address.socketFamily, $0, endpoint.port)
        }
        if n == -EAGAIN { return false }
        try Posix.check("sendto \(endpoint)", n)
        return true
    }

    /// Receives one datagram into `buffer`; nil when nothing is waiting.
    package static func receive(_ fd: CInt, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> (
        Int, InetEndpoint
    )? {
        let (n, endpoint) = withAddressOutput { family, address, port in
            csluice_recvfrom_inet(fd, buffer.baseAddress, buffer.count, family, address, port)
        }
        if n == -EAGAIN { return nil }
        try Posix.check("recvfrom", n)
        guard let endpoint else { return nil }
        return (n, endpoint)
    }

    /// The socket's own address (getsockname) or its peer's (getpeername).
    package static func address(_ fd: CInt, peer: Bool = false) throws(SystemError) -> InetEndpoint {
        let (rc, endpoint) = withAddressOutput { family, address, port in
            csluice_socket_address(fd, peer ? 1 : 0, family, address, port)
        }
        try Posix.check(peer ? "getpeername" : "getsockname", rc)
        guard let endpoint else { throw SystemError("socket address family", errno: EAFNOSUPPORT) }
        return endpoint
    }

    /// accept4 (non-blocking, close-on-exec); nil when no connection is waiting.
    package static func accept(_ fd: CInt) throws(SystemError) -> (OwnedDescriptor, InetEndpoint)? {
        let (c, endpoint) = withAddressOutput { family, address, port in csluice_accept_inet(fd, family, address, port)
        }
        if c == -EAGAIN { return nil }
        try Posix.check("accept4", c)
        let owned = OwnedDescriptor(takingOwnershipOfDescriptor: c)
        guard let endpoint else { return nil }
        return (owned, endpoint)
    }

    /// Runs a C helper that reports an address as (family, 16 bytes, port), with that
    /// output on the stack: the receive path must not allocate per datagram.
    @inline(__always)
    private static func withAddressOutput<R: BinaryInteger>(
        _ call: (UnsafeMutablePointer<CInt>, UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt16>) -> R
    ) -> (R, InetEndpoint?) {
        var family: CInt = 0
        var port: UInt16 = 0
        var bytes: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &bytes) { raw in
            let result = call(&family, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), &port)
            guard result >= 0, let ip = IPAddress(family: family, networkBytes: UnsafeRawBufferPointer(raw)) else {
                return (result, nil)
            }
            return (result, InetEndpoint(ip, port))
        }
    }

    package static func setOption(_ fd: CInt, level: CInt, name: CInt, value: CInt, _ what: @autoclosure () -> String)
        throws(SystemError)
    {
        try Posix.check("setsockopt \(what())", csluice_setsockopt_int(fd, level, name, value))
    }

    /// SO_MARK: the fwmark policy routing sees (needs CAP_NET_ADMIN).
    package static func setMark(_ fd: CInt, _ mark: UInt32) throws(SystemError) {
        try setOption(fd, level: SOL_SOCKET, name: SO_MARK, value: CInt(bitPattern: mark), "SO_MARK \(mark)")
    }

    package static func bindToDevice(_ fd: CInt, _ name: String) throws(SystemError) {
        try Posix.check("SO_BINDTODEVICE \(name)", csluice_bind_to_device(fd, name))
    }

    /// The pending socket error (SO_ERROR); 0 when none.
    package static func pendingError(_ fd: CInt) -> Int32 { csluice_socket_error(fd) }

    /// Makes the next close() send RST.
    package static func setResetOnClose(_ fd: CInt) { _ = csluice_set_linger_reset(fd) }

    package static func shutdownWrite(_ fd: CInt) { _ = csluice_shutdown_write(fd) }
}

/// epoll through CSluice: the readiness loop of the data plane.
package final class EventPoll: @unchecked Sendable {
    package struct Events: OptionSet, Sendable {
        package let rawValue: UInt32
        package init(rawValue: UInt32) { self.rawValue = rawValue }
        package static let readable = Events(rawValue: 0x001)  // EPOLLIN
        package static let writable = Events(rawValue: 0x004)  // EPOLLOUT
        package static let error = Events(rawValue: 0x008)  // EPOLLERR
        package static let hangup = Events(rawValue: 0x010)  // EPOLLHUP
        package static let readHangup = Events(rawValue: 0x2000)  // EPOLLRDHUP
        package static let edgeTriggered = Events(rawValue: 1 << 31)  // EPOLLET
    }

    package let descriptor: OwnedDescriptor
    private var cookies = [UInt64](repeating: 0, count: 256)
    private var masks = [UInt32](repeating: 0, count: 256)

    package init() throws(SystemError) {
        descriptor = OwnedDescriptor(
            takingOwnershipOfDescriptor: try Posix.check("epoll_create1", csluice_epoll_create()))
    }

    package func add(_ fd: CInt, _ events: Events, cookie: UInt64) throws(SystemError) {
        try Posix.check("epoll_ctl ADD \(fd)", csluice_epoll_ctl(descriptor.rawValue, 1, fd, events.rawValue, cookie))
    }

    package func modify(_ fd: CInt, _ events: Events, cookie: UInt64) throws(SystemError) {
        try Posix.check("epoll_ctl MOD \(fd)", csluice_epoll_ctl(descriptor.rawValue, 3, fd, events.rawValue, cookie))
    }

    package func remove(_ fd: CInt) { _ = csluice_epoll_ctl(descriptor.rawValue, 2, fd, 0, 0) }

    /// Waits and calls `body(cookie, events)` for each ready descriptor.
    package func wait(timeoutMilliseconds: Int32, _ body: (UInt64, Events) -> Void) throws(SystemError) {
        let n = try Posix.check(
            "epoll_wait", csluice_epoll_wait(descriptor.rawValue, &cookies, &masks, 256, timeoutMilliseconds))
        for i in 0..<Int(n) { body(cookies[i], Events(rawValue: masks[i])) }
    }
}
