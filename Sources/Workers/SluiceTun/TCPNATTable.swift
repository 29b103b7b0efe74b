import SluiceConfig
import SluiceNet
import SluiceRouting
import SluiceSystem

/// The "system" stack's TCP translation table.
///
/// A client's packet `S:sp → D:dp` read from the TUN is rewritten to
/// `fakeClient:natPort → listener` and written back, so the kernel's own TCP accepts it on
/// our listener; the listener's answers (`listener → fakeClient:natPort`) are rewritten
/// back to `D:dp → S:sp`. The NAT port is the index: the accepted socket's peer port finds
/// the original endpoints without any other bookkeeping.
///
/// It also bounds the connections (`limits.max-connections`): entries that are half-open
/// (SYN seen, never accepted) or relayed count; finished ones lingering for late FINs do not.
/// At the limit a new SYN pushes out the oldest half-open entry, as the kernel's SYN cache
/// does: a flood of SYNs that never complete only displaces its own entries, and an accepted
/// connection is never touched. Only when every counted entry is accepted is a SYN refused.
///
/// Shared by the TUN reader thread (creates and translates) and the relay loop (looks up
/// on accept, releases on close), hence the mutex.
final class TCPNATTable: Sendable {
    struct Key: Hashable, Sendable {
        var source: IPAddress
        var sourcePort: UInt16
        var destination: IPAddress
        var destinationPort: UInt16
    }

    struct Entry: Sendable {
        var key: Key
        /// What the router said on the SYN (routed, or decided after accept); handed back to it on accept.
        var verdict: FlowVerdict
        /// The sequence number of the client's SYN: a reset that makes the listener forget the
        /// connection (when it is pushed out) must carry the next one.
        var clientSequence: UInt32 = 0
        var createdAt: UInt64
        /// The sequence number after the client's FIN, once one passed: what the listener's socket expects next
        /// if it ends up in TIME_WAIT (it sent its FIN first, i.e. the server closed first).
        var clientFinEnd: UInt32?
        /// Set when the relay finished; the entry lingers so late FINs/ACKs still translate.
        var closedAt: UInt64?
        var accepted = false

        /// Counted against the limit and may still be pushed out: SYN seen, not accepted, not finished.
        var halfOpen: Bool { !accepted && closedAt == nil }
    }

    /// An entry that left the table (pushed out for a new SYN, expired, or released for a reused key). The reader
    /// resets the listener's side of its port with `resetSequence`, the sequence number the listener's socket expects
    /// next, before the port serves another client:
    /// - a half-open entry: `clientSequence + 1`; the listener neither completes a connection nobody can reach any
    ///   more nor meets the port's next owner with it;
    /// - a finished one whose client sent a FIN: the sequence after it. When the server closed first, the listener's
    ///   socket sent the first FIN and sits in TIME_WAIT for 60 s; a new client's SYN on the same port then passes
    ///   only when its sequence number or timestamp happens to be higher (another host's are random), else it meets
    ///   an ACK and retries a second later. NAT ports come round every 4 s at 16,000 connections a second, so a
    ///   gateway that also serves its own traffic stalled to ~100 connections a second. The reset ends that
    ///   TIME_WAIT (RFC 1337's assassination, which Linux allows by default); to a socket already closed it is nothing.
    struct Released: Equatable, Sendable {
        var key: Key
        var port: UInt16
        var resetSequence: UInt32?
        var ipv4: Bool { key.source.isIPv4 }

        init(key: Key, port: UInt16, resetSequence: UInt32?) {
            self.key = key
            self.port = port
            self.resetSequence = resetSequence
        }

        init(_ entry: Entry, port: UInt16) {
            self.init(
                key: entry.key, port: port,
                resetSequence: entry.closedAt != nil
                    ? entry.clientFinEnd : entry.accepted ? nil : entry.clientSequence &+ 1)
        }
    }

    /// What ``create(_:verdict:clientSequence:now:)`` did.
    enum Creation: Equatable {
        /// A new entry at this port, after pushing out `evicted` when the table was at its limit.
        case created(UInt16, evicted: Released?)
        /// The key has an entry already (a retransmitted SYN): its port.
        case existing(UInt16)
        /// `max-connections` entries are counted and every one of them is accepted: refuse.
        case atLimit
        /// Every NAT port of the family is in use (after pushing out `evicted`, if one was).
        case noPort(evicted: Released?)

        var port: UInt16? {
            switch self {
            case .created(let port, _), .existing(let port): return port
            case .atLimit, .noPort: return nil
            }
        }

        var evicted: Released? {
            switch self {
            case .created(_, let evicted), .noPort(let evicted): return evicted
            case .existing, .atLimit: return nil
            }
        }
    }

    /// NAT ports handed out: well above the ephemeral range's usual start, all of it.
    static let firstPort: UInt16 = 1024
    static let lastPort: UInt16 = 65535
    /// How long a finished connection's entry stays, so retransmitted FINs translate.
    static let linger: UInt64 = 15_000_000_000
    /// How long a SYN may wait to be accepted before its entry is dropped.
    static let acceptTimeout: UInt64 = 60_000_000_000
    /// The same for SYNs seen while the table was at least half full (a flood): a handshake that has not
    /// completed in 5 s (the listener's SYN-ACK went out at 0, 1 and 3 s) is very likely never going to.
    /// The flood's last entries keep this timeout after the table fell below half, so it empties within
    /// seconds of a flood rather than holding its tail for a minute.
    static let pressureAcceptTimeout: UInt64 = 5_000_000_000

    private struct Family {
        var byKey: [Key: UInt16] = [:]
        /// Sparse: a full 65,536-slot array of entries would keep 8 MiB per family resident for nothing.
        var byPort: [UInt16: Entry] = [:]
        var nextPort = TCPNATTable.firstPort
        var count = 0
        /// Entries not finished (half-open or relayed): what `max-connections` bounds.
        var live = 0
        /// Entries in the order they can expire, so that ``collect(now:)`` looks only at those that may have:
        /// finished ones by `closedAt` (linger is the same for all), all of them by `createdAt` (accept timeout).
        /// A queued (port, time) whose entry has changed since (port reused, reopened) is skipped.
        var closing = ExpiryQueue()
        var opened = ExpiryQueue()

        /// The oldest half-open entry's queue item; drops the items in front of it that went stale
        /// (accepted, finished or removed since), each once, so the cost is amortised O(1).
        mutating func oldestHalfOpen() -> (port: UInt16, at: UInt64)? {
            while let item = opened.first {
                if let entry = byPort[item.port], entry.createdAt == item.at, entry.halfOpen { return item }
                opened.dropFirst()
            }
            return nil
        }

        mutating func evictOldestHalfOpen() -> Released? {
            guard let item = oldestHalfOpen(), let entry = remove(item.port) else { return nil }
            opened.dropFirst()
            return Released(entry, port: item.port)
        }

        mutating func remove(_ port: UInt16) -> Entry? {
            guard let entry = byPort.removeValue(forKey: port) else { return nil }
            byKey[entry.key] = nil
            count -= 1
            if entry.closedAt == nil { live -= 1 }
            return entry
        }
    }

    /// A FIFO of (port, time) in time order.
    struct ExpiryQueue {
        private var items: [(port: UInt16, at: UInt64)] = []
        private var head = 0

        mutating func append(_ port: UInt16, _ at: UInt64) { items.append((port, at)) }

        var first: (port: UInt16, at: UInt64)? { head < items.count ? items[head] : nil }

        var count: Int { items.count - head }

        /// Removes the first item regardless of its time.
        mutating func dropFirst() { _ = popDue(before: UInt64.max) }

        /// Removes and returns the first item when its time is at or before `deadline`.
        mutating func popDue(before deadline: UInt64) -> (port: UInt16, at: UInt64)? {
            guard head < items.count, items[head].at <= deadline else { return nil }
            let item = items[head]
            head += 1
            if head == items.count {
                // Drained: a burst's storage goes back too.
                items.removeAll(keepingCapacity: items.capacity <= 4096)
                head = 0
            } else if head >= 4096, head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }

    private struct State {
        var v4 = Family()
        var v6 = Family()
        var limit: Int
        /// The last time the table was seen at least half full: entries created at or before it are the
        /// flood's and go after ``pressureAcceptTimeout``.
        var pressureSeenAt: UInt64?
        var live: Int { v4.live + v6.live }
        var underPressure: Bool { live * 2 >= limit }
    }

    private let state: Locked<State>

    init(maxConnections: Int = LimitsConfiguration().maxConnections) {
        state = Locked(State(limit: max(1, maxConnections)))
    }

    /// `limits.max-connections`; a reload changes it in place (a lower limit refuses or pushes
    /// out only new SYNs' way; nothing open is closed).
    var maxConnections: Int {
        get { state.withLock { $0.limit } }
        set { state.withLock { $0.limit = max(1, newValue) } }
    }

    /// Existing translation for a client packet.
    func port(for key: Key) -> UInt16? {
        state.withLock { s in
            key.source.isIPv4 ? s.v4.byKey[key] : s.v6.byKey[key]
        }
    }

    /// Whether a new SYN would get an entry: below the limit, or some entry is half-open and
    /// could be pushed out. Lets the reader refuse at once, before deciding rules for it.
    var admitsNew: Bool {
        state.withLock { s in s.live < s.limit || s.v4.oldestHalfOpen() != nil || s.v6.oldestHalfOpen() != nil }
    }

    /// A new translation (on SYN); at the limit the oldest half-open entry (either family)
    /// makes room. `clientSequence` is the SYN's sequence number.
    func create(
        _ key: Key, verdict: FlowVerdict, clientSequence: UInt32 = 0, now: UInt64
    ) -> Creation {
        let entry = Entry(key: key, verdict: verdict, clientSequence: clientSequence, createdAt: now)
        return state.withLock { s in
            let ipv4 = key.source.isIPv4
            if let existing = ipv4 ? s.v4.byKey[key] : s.v6.byKey[key] { return .existing(existing) }
            var evicted: Released?
            if s.live >= s.limit {
                guard let pushed = Self.evictOldestHalfOpen(&s) else { return .atLimit }
                evicted = pushed
            }
            guard let port = ipv4 ? Self.insert(&s.v4, entry) : Self.insert(&s.v6, entry) else {
                return .noPort(evicted: evicted)
            }
            if s.underPressure { s.pressureSeenAt = now }
            return .created(port, evicted: evicted)
        }
    }

    private static func insert(_ f: inout Family, _ entry: Entry) -> UInt16? {
        let span = Int(lastPort - firstPort) + 1
        // Full: say so at once rather than look at every port.
        guard f.count < span else { return nil }
        for _ in 0..<span {
            let port = f.nextPort
            f.nextPort = port == lastPort ? firstPort : port + 1
            if f.byPort[port] == nil {
                f.byPort[port] = entry
                f.byKey[entry.key] = port
                f.count += 1
                f.live += 1
                f.opened.append(port, entry.createdAt)
                return port
            }
        }
        return nil
    }

    /// Removes the oldest half-open entry of either family.
    private static func evictOldestHalfOpen(_ s: inout State) -> Released? {
        let useV4: Bool
        switch (s.v4.oldestHalfOpen(), s.v6.oldestHalfOpen()) {
        case (nil, nil): return nil
        case (.some, nil): useV4 = true
        case (nil, .some): useV4 = false
        case (.some(let a), .some(let b)): useV4 = a.at <= b.at
        }
        return useV4 ? s.v4.evictOldestHalfOpen() : s.v6.evictOldestHalfOpen()
    }

    /// The original endpoints behind a NAT port (reverse direction and accept).
    func entry(port: UInt16, ipv4: Bool) -> Entry? {
        state.withLock { s in ipv4 ? s.v4.byPort[port] : s.v6.byPort[port] }
    }

    /// The relay took the connection.
    func markAccepted(port: UInt16, ipv4: Bool) {
        state.withLock { s in
            if ipv4 { s.v4.byPort[port]?.accepted = true } else { s.v6.byPort[port]?.accepted = true }
        }
    }

    /// The client's FIN passed (`end`: the sequence number after it).
    func clientFinished(port: UInt16, ipv4: Bool, end: UInt32) {
        state.withLock { s in
            if ipv4 { s.v4.byPort[port]?.clientFinEnd = end } else { s.v6.byPort[port]?.clientFinEnd = end }
        }
    }

    /// The relay finished; the entry goes after the linger time.
    func markClosed(port: UInt16, ipv4: Bool, now: UInt64) {
        state.withLock { s in
            if ipv4 { Self.markClosed(&s.v4, port, now) } else { Self.markClosed(&s.v6, port, now) }
        }
    }

    private static func markClosed(_ f: inout Family, _ port: UInt16, _ now: UInt64) {
        guard let entry = f.byPort[port], entry.closedAt == nil else { return }
        f.byPort[port]?.closedAt = now
        f.live -= 1
        f.closing.append(port, now)
    }

    /// A SYN whose key still has a finished entry: the client reused its port within the linger time
    /// (common when the server closes first, so the client keeps no TIME_WAIT). The old entry goes and the
    /// SYN becomes a new connection with its own NAT port, a fresh rule decision and its own count; kept,
    /// the old entry would be collected 15 s after the old connection closed, under the new one.
    /// Returns the entry that went.
    func releaseFinished(_ key: Key) -> Released? {
        state.withLock { s in
            let ipv4 = key.source.isIPv4
            guard let port = ipv4 ? s.v4.byKey[key] : s.v6.byKey[key],
                (ipv4 ? s.v4.byPort[port] : s.v6.byPort[port])?.closedAt != nil,
                let entry = ipv4 ? s.v4.remove(port) : s.v6.remove(port)
            else { return nil }
            return Released(entry, port: port)
        }
    }

    /// The client reset a connection the relay never accepted (a SYN flood's source answering
    /// the SYN-ACK it did not ask for, or a client that gave up): the reset went on to the
    /// listener, so the entry goes now instead of holding a port and a place under the limit.
    /// Returns its key when it went.
    func releaseHalfOpen(port: UInt16, ipv4: Bool) -> Key? {
        state.withLock { s in
            guard let entry = ipv4 ? s.v4.byPort[port] : s.v6.byPort[port], entry.halfOpen else { return nil }
            return (ipv4 ? s.v4.remove(port) : s.v6.remove(port))?.key
        }
    }

    /// Drops lingering and never-accepted entries. Returns those that went. Never-accepted entries that
    /// existed while the table was at least half full go after ``pressureAcceptTimeout``, others after
    /// ``acceptTimeout``.
    @discardableResult
    func collect(now: UInt64) -> [Released] {
        state.withLock { s in
            if s.underPressure { s.pressureSeenAt = now }
            // The entries to go are a prefix of the creation-ordered queue: created before the long timeout's
            // cut, or before both the short timeout's cut and the last moment under pressure.
            var cut: UInt64? = now >= Self.acceptTimeout ? now - Self.acceptTimeout : nil
            if let seen = s.pressureSeenAt, now >= Self.pressureAcceptTimeout {
                cut = max(cut ?? 0, min(now - Self.pressureAcceptTimeout, seen))
            }
            return Self.collect(&s.v4, now, acceptCut: cut) + Self.collect(&s.v6, now, acceptCut: cut)
        }
    }

    /// Runs on the TUN reader thread once a second, so it costs O(expired), never a walk over every entry (after a
    /// burst of 100,000 short connections a full walk took milliseconds, and pings waited for it).
    private static func collect(_ f: inout Family, _ now: UInt64, acceptCut: UInt64?) -> [Released] {
        var removed: [Released] = []
        if now >= linger {
            while let (port, at) = f.closing.popDue(before: now - linger) {
                if let entry = f.byPort[port], entry.closedAt == at, let gone = f.remove(port) {
                    removed.append(Released(gone, port: port))
                }
            }
        }
        // Connections accepted (or gone) since leave the front of the creation queue now rather than at their
        // accept timeout: at 20,000 connections a second it held 60 s of them, 19 MiB, that nothing needed.
        _ = f.oldestHalfOpen()
        if let acceptCut {
            while let (port, at) = f.opened.popDue(before: acceptCut) {
                if let entry = f.byPort[port], entry.createdAt == at, entry.halfOpen, let gone = f.remove(port) {
                    removed.append(Released(gone, port: port))
                }
            }
        }
        return removed
    }

    var count: Int { state.withLock { $0.v4.count + $0.v6.count } }

    /// Items in the expiry queues (creation and close order) of both families.
    var queued: Int {
        state.withLock { $0.v4.opened.count + $0.v4.closing.count + $0.v6.opened.count + $0.v6.closing.count }
    }

    /// Entries counted against `max-connections` (half-open and relayed).
    var liveCount: Int { state.withLock { $0.live } }
}
