import CSluice
import Logging
import SluiceConfig
import SluiceDNSWire
import SluiceNet
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why an exchange with an upstream produced no answer.
package struct DNSExchangeError: Error, Sendable, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}

/// One way to reach one upstream server: the seam DoT and DoH join later as further
/// conformances (they differ only in how bytes reach the server).
package protocol DNSTransport: Sendable, CustomStringConvertible {
    /// Sends `query` (a complete message) and calls `completion` exactly once, with the
    /// server's answer or an error, by `deadline` (MonotonicClock ns) at the latest.
    func exchange(
        _ query: [UInt8], deadline: UInt64, completion: @escaping @Sendable (Result<[UInt8], DNSExchangeError>) -> Void)
}

/// Where the dns worker gets sockets for upstreams: the ones sluiced opened for it (with
/// the routing mark, which takes CAP_NET_ADMIN it does not have), or plain ones.
package struct UpstreamSocketFactory: Sendable {
    /// The routing mark sluiced put on the handed-over UDP sockets (0: none).
    package var markedUDP: [CInt: Int32]

    package init(markedUDP: [CInt: Int32] = [:]) { self.markedUDP = markedUDP }

    /// A TCP socket: plain; the `uidrange` rule of auto-route keeps the service user's
    /// traffic off the TUN, and the tun worker never hijacks queries to nameservers.
    func tcp(_ family: CInt) throws(SystemError) -> OwnedDescriptor { try InetSocket.tcp(family) }
}

/// The UDP side of all upstreams: one socket per family (handed over marked by sluiced,
/// or opened here), one receive thread, and the exchanges in flight keyed by message ID.
///
/// Each exchange gets an ID of ours, so concurrent clients cannot collide upstream; an
/// answer is taken only from the server the query went to and only with that ID (a
/// spoofed or late answer is dropped). Exchanges past their deadline fail with a timeout.
package final class UDPUpstreamSockets: @unchecked Sendable {
    private struct Pending {
        var server: InetEndpoint
        var deadline: UInt64
        var completion: @Sendable (Result<[UInt8], DNSExchangeError>) -> Void
        /// The query as sent (with our ID), for retransmission.
        var message: [UInt8]
        var resendAt: UInt64
        var resends = 0
    }

    /// A datagram or its answer can be lost (a full socket buffer on either side): the
    /// query is sent again after this long, then again after twice as long, as stub
    /// resolvers do, before the exchange's deadline gives up.
    static let firstResend: UInt64 = 700_000_000
    static let maxResends = 2

    private let sockets: [CInt: OwnedDescriptor]
    let resent = Atomic<UInt64>(0)
    private let state = Locked<(pending: [UInt16: Pending], next: UInt16)>(([:], UInt16.random(in: 1...UInt16.max)))
    private let stopping = Atomic<Bool>(false)
    let sent = Atomic<UInt64>(0)
    let timedOut = Atomic<UInt64>(0)

    /// - Parameter handed: sockets sluiced opened (by family); missing families are opened here.
    package init(handed: [CInt: OwnedDescriptor]) throws(SystemError) {
        var sockets = handed
        for family in [AF_INET, AF_INET6] where sockets[family] == nil {
            sockets[family] = try InetSocket.udp(family)
        }
        for socket in sockets.values {
            try Descriptors.setNonBlocking(socket.rawValue)
            // Answers to a burst of queries arrive together (and sluiced's sockets may
            // already have a forced larger buffer; this only ever grows it).
            InetSocket.enlargeReceiveBuffer(socket.rawValue)
        }
        self.sockets = sockets
    }

    func exchange(
        _ query: [UInt8], server: InetEndpoint, deadline: UInt64,
        completion: @escaping @Sendable (Result<[UInt8], DNSExchangeError>) -> Void
    ) {
        guard query.count >= DNSMessage.headerSize, let socket = sockets[server.address.socketFamily] else {
            completion(.failure(DNSExchangeError("no socket for \(server)")))
            return
        }
        let made: (UInt16, [UInt8])? = state.withLock { s in
            guard s.pending.count < 60000 else { return nil }
            var id = s.next
            while s.pending[id] != nil { id = id &+ 1 }
            s.next = id &+ 1
            var message = query
            message[0] = UInt8(id >> 8)
            message[1] = UInt8(id & 0xFF)
            s.pending[id] = Pending(
                server: server, deadline: deadline, completion: completion, message: message,
                resendAt: MonotonicClock.now + Self.firstResend)
            return (id, message)
        }
        guard let (id, message) = made else {
            completion(.failure(DNSExchangeError("too many queries in flight")))
            return
        }
        let result = message.withUnsafeBytes { raw -> Result<Bool, SystemError> in
            do throws(SystemError) { return .success(try InetSocket.send(socket.rawValue, raw, to: server)) } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(true):
            sent.add(1, ordering: .relaxed)
        case .success(false), .failure:
            let pending = state.withLock { $0.pending.removeValue(forKey: id) }
            let reason: String
            if case .failure(let error) = result { reason = "\(error)" } else { reason = "socket buffer full" }
            pending?.completion(.failure(DNSExchangeError("sending to \(server) failed: \(reason)")))
        }
    }

    /// Receives answers and expires exchanges until ``stop()``.
    package func run() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        defer { buffer.deallocate() }
        var fds = sockets.values.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
        var lastSweep = MonotonicClock.now
        while !stopping.load(ordering: .relaxed) {
            if poll(&fds, nfds_t(fds.count), 100) > 0 {
                for pfd in fds where pfd.revents != 0 {
                    while let (n, from) = try? InetSocket.receive(pfd.fd, into: buffer) {
                        guard n >= DNSMessage.headerSize else { continue }
                        let id = UInt16(buffer[0]) << 8 | UInt16(buffer[1])
                        let pending: Pending? = state.withLock { s in
                            guard let p = s.pending[id], p.server == from else { return nil }
                            s.pending[id] = nil
                            return p
                        }
                        pending?.completion(.success(Array(buffer[0..<n])))
                    }
                }
            }
            let now = MonotonicClock.now
            if now - lastSweep >= 100_000_000 {
                lastSweep = now
                let (expired, again) = state.withLock { s -> ([Pending], [Pending]) in
                    let old = s.pending.filter { $0.value.deadline <= now }
                    for key in old.keys { s.pending[key] = nil }
                    var again: [Pending] = []
                    for (id, p) in s.pending where p.resendAt <= now && p.resends < Self.maxResends {
                        s.pending[id]!.resends += 1
                        s.pending[id]!.resendAt = now + Self.firstResend << UInt64(p.resends + 1)
                        again.append(p)
                    }
                    return (Array(old.values), again)
                }
                for p in again {
                    guard let socket = sockets[p.server.address.socketFamily] else { continue }
                    _ = p.message.withUnsafeBytes { try? InetSocket.send(socket.rawValue, $0, to: p.server) }
                    resent.add(1, ordering: .relaxed)
                }
                for p in expired {
                    timedOut.add(1, ordering: .relaxed)
                    p.completion(.failure(DNSExchangeError("no answer from \(p.server)")))
                }
            }
        }
        let left = state.withLock { s -> [Pending] in
            defer { s.pending.removeAll() }
            return Array(s.pending.values)
        }
        for p in left { p.completion(.failure(DNSExchangeError("shutting down"))) }
    }

    package func stop() { stopping.store(true, ordering: .relaxed) }
}

/// `udp://IP[:port]` or a bare IP.
struct UDPTransport: DNSTransport {
    let server: InetEndpoint
    let sockets: UDPUpstreamSockets

    var description: String { "udp://\(server)" }

    func exchange(
        _ query: [UInt8], deadline: UInt64, completion: @escaping @Sendable (Result<[UInt8], DNSExchangeError>) -> Void
    ) {
        sockets.exchange(query, server: server, deadline: deadline, completion: completion)
    }
}

/// `tcp://IP[:port]`, and the retry of a truncated UDP answer (RFC 7766): one connection
/// per exchange on a short-lived thread, the message with its two-byte length prefix.
struct TCPTransport: DNSTransport {
    let server: InetEndpoint
    let factory: UpstreamSocketFactory

    var description: String { "tcp://\(server)" }

    func exchange(
        _ query: [UInt8], deadline: UInt64, completion: @escaping @Sendable (Result<[UInt8], DNSExchangeError>) -> Void
    ) {
        let server = self.server
        let factory = self.factory
        do {
            try OSThread.detached(name: "dns-tcp-up") {
                completion(Self.run(query, server: server, factory: factory, deadline: deadline))
            }
        } catch {
            completion(.failure(DNSExchangeError("cannot start a thread: \(error)")))
        }
    }

    private static func run(_ query: [UInt8], server: InetEndpoint, factory: UpstreamSocketFactory, deadline: UInt64)
        -> Result<[UInt8], DNSExchangeError>
    {
        func remaining() -> Int32 {
            let now = MonotonicClock.now
            return now >= deadline ? 0 : Int32(min(UInt64(Int32.max), (deadline - now) / 1_000_000))
        }
        do {
            let socket = try factory.tcp(server.address.socketFamily)
            let fd = socket.rawValue
            if try !InetSocket.connect(fd, server) {
                guard try Descriptors.waitWritable(fd, timeoutMilliseconds: remaining()) else {
                    return .failure(DNSExchangeError("connecting to \(server) timed out"))
                }
                let pending = InetSocket.pendingError(fd)
                if pending != 0 { throw SystemError("connect \(server)", errno: pending) }
            }
            try Descriptors.setNonBlocking(fd, false)
            let timeout = timeval(tv_sec: Int(max(1, remaining() / 1000)), tv_usec: 0)
            var t = timeout
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &t, socklen_t(MemoryLayout<timeval>.size))
            try Descriptors.writeAll(fd, [UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query)
            var received: [UInt8] = []
            var expected: Int?
            while received.count < (expected.map { $0 + 2 } ?? 2) {
                let chunk = try Descriptors.read(fd, maxBytes: 65537 - received.count)
                guard !chunk.isEmpty else { return .failure(DNSExchangeError("\(server) closed the connection")) }
                received += chunk
                if expected == nil, received.count >= 2 { expected = Int(received[0]) << 8 | Int(received[1]) }
            }
            let answer = Array(received[2..<(2 + expected!)])
            guard answer.count >= 2, answer[0] == query[0], answer[1] == query[1] else {
                return .failure(DNSExchangeError("\(server) answered with another message ID"))
            }
            return .success(answer)
        } catch {
            return .failure(DNSExchangeError("tcp://\(server): \(error)"))
        }
    }
}

/// The servers one name is resolved with (`nameserver`, a `nameserver-policy` entry, or
/// `default-nameserver`): asked all at once, the first usable answer wins (as mihomo does).
/// A truncated UDP answer is retried over TCP to the same server.
package final class DNSUpstreamGroup: Sendable {
    package let transports: [any DNSTransport]
    private let factory: UpstreamSocketFactory
    package static let timeout: UInt64 = 4_000_000_000

    init(_ upstreams: [DNSUpstream], sockets: UDPUpstreamSockets, factory: UpstreamSocketFactory) {
        self.factory = factory
        transports = upstreams.compactMap { upstream -> (any DNSTransport)? in
            guard case .address(let ip) = upstream.endpoint.host else { return nil }
            let server = InetEndpoint(ip, upstream.endpoint.port)
            switch upstream.transport {
            case .udp: return UDPTransport(server: server, sockets: sockets)
            case .tcp: return TCPTransport(server: server, factory: factory)
            }
        }
    }

    package var description: String { transports.map(\.description).joined(separator: ", ") }

    /// Resolves `query` (sent with a fresh ID per transport). `completion` runs once.
    func resolve(
        _ query: DNSQuery, completion: @escaping @Sendable (Result<DNSResponse.Upstream, DNSExchangeError>) -> Void
    ) {
        guard !transports.isEmpty else {
            completion(.failure(DNSExchangeError("no nameserver is configured for \(query.question.name)")))
            return
        }
        let wire = query.wire(id: 0)
        let key = query.question.key
        let deadline = MonotonicClock.now + Self.timeout
        // Outstanding count, whether answered, and the best unusable answer so far.
        let state = Locked<(left: Int, done: Bool, fallback: DNSResponse.Upstream?, error: DNSExchangeError?)>(
            (transports.count, false, nil, nil))
        let factory = self.factory
        @Sendable func finish(
            _ result: Result<DNSResponse.Upstream, DNSExchangeError>?, from transport: any DNSTransport
        ) {
            let outcome: Result<DNSResponse.Upstream, DNSExchangeError>? = state.withLock { s in
                guard !s.done else { return nil }
                s.left -= 1
                switch result {
                case .success(let answer)
                where answer.rcode != DNSMessage.ResponseCode.serverFailure
                    && answer.rcode != DNSMessage.ResponseCode.refused:
                    s.done = true
                    return .success(answer)
                case .success(let answer): s.fallback = answer
                case .failure(let error): s.error = error
                case nil: break
                }
                guard s.left == 0 else { return nil }
                s.done = true
                if let fallback = s.fallback { return .success(fallback) }
                return .failure(s.error ?? DNSExchangeError("no usable answer"))
            }
            if let outcome { completion(outcome) }
        }
        @Sendable func handle(_ raw: Result<[UInt8], DNSExchangeError>, via transport: any DNSTransport) {
            switch raw {
            case .failure(let error):
                finish(.failure(error), from: transport)
            case .success(let bytes):
                switch DNSResponse.parseUpstream(bytes) {
                case .success(let answer) where answer.question.key == key:
                    if answer.truncated, let udp = transport as? UDPTransport {
                        let tcp = TCPTransport(server: udp.server, factory: factory)
                        tcp.exchange(wire, deadline: deadline) { handle($0, via: tcp) }
                        return
                    }
                    finish(.success(answer), from: transport)
                case .success:
                    finish(.failure(DNSExchangeError("\(transport) answered another question")), from: transport)
                case .failure(let error):
                    finish(
                        .failure(DNSExchangeError("\(transport) sent a malformed answer: \(error)")), from: transport)
                }
            }
        }
        for transport in transports {
            transport.exchange(wire, deadline: deadline) { handle($0, via: transport) }
        }
    }
}
