import CSluice
import IPC
import Logging
import SluiceNet
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Sends DNS queries to an upstream over UDP and hands back the answers.
///
/// Each query gets a fresh message ID of ours (so concurrent clients' IDs cannot collide
/// upstream, and an answer is accepted only from the upstream it was sent to); the answer
/// goes back with the client's original ID. Queries unanswered after ``timeout`` are
/// dropped (the client retries, as with any resolver). This is the upstream seam the
/// DNS worker grows on: TCP, DoT and DoH upstreams are further implementations of it.
public final class DNSForwarder: @unchecked Sendable {
    /// A query in flight.
    public struct Pending: Sendable {
        public var requestID: UInt32
        public var query: DNSPacket
        var upstream: InetEndpoint
        var sentAt: UInt64
    }

    public let upstreams: [InetEndpoint]
    public static let timeout: UInt64 = 5_000_000_000
    private let sockets: [CInt: OwnedDescriptor]
    private let state = Mutex<(pending: [UInt16: Pending], next: UInt16)>(([:], 1))
    private let stopping = Atomic<Bool>(false)
    private let answer: @Sendable (Pending, [UInt8]) -> Void
    private let logger: Logger
    let forwarded = Atomic<UInt64>(0)
    let answered = Atomic<UInt64>(0)
    let timedOut = Atomic<UInt64>(0)

    /// - Parameter answer: called on the forwarder's thread with each answer, its ID
    ///   already restored to the client's.
    public init(upstreams: [InetEndpoint], logger: Logger, answer: @escaping @Sendable (Pending, [UInt8]) -> Void) throws(SystemError) {
        self.upstreams = upstreams
        self.logger = logger
        self.answer = answer
        var sockets: [CInt: OwnedDescriptor] = [:]
        for family in Set(upstreams.map { $0.address.socketFamily }) {
            sockets[family] = try InetSocket.udp(family)
        }
        self.sockets = sockets
    }

    /// Sends `query` upstream. Messages shorter than a DNS header are dropped.
    public func forward(_ query: DNSPacket, requestID: UInt32) {
        guard query.message.count >= 12, let upstream = upstreams.first,
            let socket = sockets[upstream.address.socketFamily]
        else { return }
        let now = MonotonicClock.now
        let id: UInt16 = state.withLock { s in
            var id = s.next
            while s.pending[id] != nil { id = id &+ 1 }
            s.next = id &+ 1
            s.pending[id] = Pending(requestID: requestID, query: query, upstream: upstream, sentAt: now)
            return id
        }
        var message = query.message
        message[0] = UInt8(id >> 8)
        message[1] = UInt8(id & 0xFF)
        let sent = message.withUnsafeBytes { (try? InetSocket.send(socket.rawValue, $0, to: upstream)) ?? false }
        if sent {
            forwarded.add(1, ordering: .relaxed)
        } else {
            _ = state.withLock { $0.pending.removeValue(forKey: id) }
        }
    }

    /// Receives answers until ``stop()``.
    public func run() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        defer { buffer.deallocate() }
        var fds = sockets.values.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
        var lastSweep = MonotonicClock.now
        while !stopping.load(ordering: .relaxed) {
            if poll(&fds, nfds_t(fds.count), 500) > 0 {
                for pfd in fds where pfd.revents != 0 {
                    while let got = try? InetSocket.receive(pfd.fd, into: buffer) {
                        let (n, from) = got
                        guard n >= 12 else { continue }
                        let id = UInt16(buffer[0]) << 8 | UInt16(buffer[1])
                        let pending: Pending? = state.withLock { s in
                            guard let p = s.pending[id], p.upstream == from else { return nil }
                            s.pending[id] = nil
                            return p
                        }
                        guard let pending else { continue }  // late, spoofed or duplicate
                        var reply = Array(buffer[0..<n])
                        reply[0] = pending.query.message[0]
                        reply[1] = pending.query.message[1]
                        answered.add(1, ordering: .relaxed)
                        answer(pending, reply)
                    }
                }
            }
            let now = MonotonicClock.now
            if now - lastSweep > 1_000_000_000 {
                lastSweep = now
                let expired = state.withLock { s -> Int in
                    let old = s.pending.filter { MonotonicClock.elapsed(from: $0.value.sentAt, to: now) > Self.timeout }
                    for key in old.keys { s.pending[key] = nil }
                    return old.count
                }
                if expired > 0 { timedOut.add(UInt64(expired), ordering: .relaxed) }
            }
        }
    }

    public func stop() { stopping.store(true, ordering: .relaxed) }
}
