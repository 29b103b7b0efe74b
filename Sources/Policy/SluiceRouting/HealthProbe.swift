import SluiceNet
import SluiceOutbounds
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// A proxy group's health check of one member: a request to the group's `url` through
/// that member's outbound, on the health-check thread (blocking, bounded by the timeout).
///
/// The connection is made the way the data plane makes it (the member's plan: the name
/// travels to proxies, DIRECT resolves it), then the proxy's handshake runs. For `http://`
/// URLs a GET follows and the check passes when an HTTP status line comes back (through a
/// codec such as Shadowsocks' too); the latency is connect to status line. `https://` URLs
/// would need TLS, which sluice does not speak: they pass when the tunnel to the URL's host
/// and port is established, and the latency is the time to establish it.
package enum HealthProbe {
    /// Milliseconds, or nil when the member does not work.
    package static func measure(_ outbound: any Outbound, url: String, timeoutMilliseconds: Int, resolver: NameResolver) -> UInt32? {
        guard let target = HTTPURL(url) else { return nil }
        let deadline = MonotonicClock.now + UInt64(max(100, timeoutMilliseconds)) * 1_000_000
        func remaining() -> Int32 {
            let now = MonotonicClock.now
            return now >= deadline ? 0 : Int32(min(UInt64(Int32.max), (deadline - now) / 1_000_000))
        }
        let flow: FlowTarget
        switch target.endpoint.host {
        case .address(let address): flow = FlowTarget(endpoint: InetEndpoint(address, target.port), name: nil)
        case .name(let name): flow = FlowTarget(endpoint: InetEndpoint(.v4(IPv4Address(rawValue: 0)), target.port), name: name)
        }
        do {
            let plan = try outbound.planTCP(to: flow)
            let hop: InetEndpoint
            switch plan.hop {
            case .endpoint(let endpoint):
                hop = endpoint
            case .name(let name, let port, let preference):
                let (addresses, _) = resolver.resolveBlocking(name, ipv6: preference.prefersIPv6, timeoutMilliseconds: remaining())
                guard let address = preference.pick(addresses) else { return nil }
                hop = InetEndpoint(address, port)
            }
            let started = MonotonicClock.now
            let socket = try outbound.connectTCP(to: hop)
            let fd = socket.rawValue
            guard try Descriptors.waitWritable(fd, timeoutMilliseconds: remaining()), InetSocket.pendingError(fd) == 0 else {
                return nil
            }
            var pending: [UInt8] = []
            if var handshake = plan.handshake {
                var step = handshake.start()
                handshaking: while true {
                    switch step {
                    case .send(let bytes):
                        if !bytes.isEmpty { try send(fd, bytes, remaining) }
                        guard let chunk = try receive(fd, remaining), !chunk.isEmpty else { return nil }
                        step = handshake.receive(chunk)
                    case .established(let leftover):
                        pending = leftover
                        break handshaking
                    case .failed:
                        return nil
                    }
                }
            }
            var out: [UInt8] = []
            var early: [UInt8] = []
            plan.codec?.start(toServer: &out, toClient: &early)
            if target.secure {
                if !out.isEmpty { try send(fd, out, remaining) }
                return elapsed(since: started)
            }
            let request = Array(
                "GET \(target.path) HTTP/1.1\r\nHost: \(target.host)\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n".utf8)
            if let codec = plan.codec {
                try request.withUnsafeBytes { raw in
                    do throws(OutboundError) { try codec.encode(raw, into: &out) } catch { throw error }
                }
            } else {
                out += request
            }
            try send(fd, out, remaining)
            var response = early
            func take(_ bytes: [UInt8]) throws {
                if let codec = plan.codec {
                    try bytes.withUnsafeBytes { raw in
                        do throws(OutboundError) { try codec.decode(raw, into: &response) } catch { throw error }
                    }
                } else {
                    response += bytes
                }
            }
            if !pending.isEmpty { try take(pending) }
            while !response.starts(with: Array("HTTP/".utf8)) || !response.contains(UInt8(ascii: "\n")) {
                guard response.count < 4096, let chunk = try receive(fd, remaining), !chunk.isEmpty else { return nil }
                try take(chunk)
            }
            return elapsed(since: started)
        } catch {
            return nil
        }
    }

    private static func elapsed(since start: UInt64) -> UInt32 {
        UInt32(min(UInt64(UInt32.max), max(1, MonotonicClock.elapsed(from: start, to: MonotonicClock.now) / 1_000_000)))
    }

    private static func send(_ fd: CInt, _ bytes: [UInt8], _ remaining: () -> Int32) throws {
        var offset = 0
        while offset < bytes.count {
            guard try Descriptors.waitWritable(fd, timeoutMilliseconds: remaining()) else {
                throw SystemError("health check send", errno: ETIMEDOUT)
            }
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw SystemError("health check send", errno: errno)
            }
            offset += n
        }
    }

    private static func receive(_ fd: CInt, _ remaining: () -> Int32) throws -> [UInt8]? {
        guard try Descriptors.waitReadable(fd, timeoutMilliseconds: remaining()) else { return nil }
        return try Descriptors.read(fd, maxBytes: 16384)
    }
}
