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
/// travels to proxies, DIRECT resolves it), then the proxy's handshake runs (the plan's layers for a stream, with
/// blocking waits: ``BlockingStream``). For `http://`
/// URLs a GET follows and the check passes when an HTTP status line comes back (through the
/// stream's layers such as Shadowsocks' too); the latency is connect to status line. `https://` URLs
/// would need TLS, which sluice does not speak: they pass when the tunnel to the URL's host
/// and port is established, and the latency is the time to establish it.
package enum HealthProbe {
    /// Milliseconds, or nil when the member does not work.
    package static func measure(_ outbound: any Outbound, url: String, timeoutMilliseconds: Int, resolver: NameResolver)
        -> UInt32?
    {
        guard let target = HTTPURL(url) else { return nil }
        let deadline = MonotonicClock.now + UInt64(max(100, timeoutMilliseconds)) * 1_000_000
        func remaining() -> Int32 {
            let now = MonotonicClock.now
            return now >= deadline ? 0 : Int32(min(UInt64(Int32.max), (deadline - now) / 1_000_000))
        }
        let flow: FlowTarget
        switch target.endpoint.host {
        case .address(let address): flow = FlowTarget(endpoint: InetEndpoint(address, target.port), name: nil)
        case .name(let name):
            flow = FlowTarget(endpoint: InetEndpoint(.v4(IPv4Address(rawValue: 0)), target.port), name: name)
        }
        do {
            let plan = try outbound.planTCP(to: flow)
            let hop: InetEndpoint
            switch plan.hop {
            case .endpoint(let endpoint):
                hop = endpoint
            case .name(let name, let port, let preference):
                let (addresses, _) = resolver.resolveBlocking(
                    name, ipv6: preference.prefersIPv6, timeoutMilliseconds: remaining())
                guard let address = preference.pick(addresses) else { return nil }
                hop = InetEndpoint(address, port)
            }
            let started = MonotonicClock.now
            let socket = try outbound.connectTCP(to: hop)
            let fd = socket.rawValue
            guard try Descriptors.waitWritable(fd, timeoutMilliseconds: remaining()), InetSocket.pendingError(fd) == 0
            else {
                return nil
            }
            // A socket plan's handshake runs as the one layer of a stream, so both shapes take the same path.
            let layers: [any StreamLayer]
            switch plan.shape {
            case .socket(let handshake): layers = handshake.map { [ProxyHandshakeLayer($0)] } ?? []
            case .stream(let stack): layers = stack
            }
            let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16384, alignment: 16)
            defer { readBuffer.deallocate() }
            let stream = LayeredStream(takingOwnershipOf: socket, layers: layers, readBuffer: readBuffer)
            defer { stream.close(reset: false) }
            guard BlockingStream.establish(stream, deadline: deadline) == nil else { return nil }
            if target.secure {
                // What the stream holds for the server (a Shadowsocks header) goes out; the tunnel is the check.
                guard BlockingStream.write([], to: stream, deadline: deadline) == nil else { return nil }
                return elapsed(since: started)
            }
            let request = Array(
                "GET \(target.path) HTTP/1.1\r\nHost: \(target.host)\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n"
                    .utf8)
            guard BlockingStream.write(request, to: stream, deadline: deadline) == nil else { return nil }
            var response: [UInt8] = []
            while !response.starts(with: Array("HTTP/".utf8)) || !response.contains(UInt8(ascii: "\n")) {
                guard response.count < 4096, let chunk = BlockingStream.read(from: stream, deadline: deadline),
                    !chunk.isEmpty
                else {
                    return nil
                }
                response += chunk
            }
            return elapsed(since: started)
        } catch {
            return nil
        }
    }

    private static func elapsed(since start: UInt64) -> UInt32 {
        UInt32(min(UInt64(UInt32.max), max(1, MonotonicClock.elapsed(from: start, to: MonotonicClock.now) / 1_000_000)))
    }
}
