import SluiceNet
import SluiceRules
import SluiceSystem

/// The "system" stack's TCP translation table.
///
/// A client's packet `S:sp → D:dp` read from the TUN is rewritten to
/// `fakeClient:natPort → listener` and written back, so the kernel's own TCP accepts it on
/// our listener; the listener's answers (`listener → fakeClient:natPort`) are rewritten
/// back to `D:dp → S:sp`. The NAT port is the index: the accepted socket's peer port finds
/// the original endpoints without any other bookkeeping.
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
        var decision: RuleDecision
        var host: String?
        /// The destination is a fake address standing for `host`.
        var fake = false
        /// The rules wait for the client's first bytes (sniffing); `decision` is not made yet.
        var sniff = false
        var createdAt: UInt64
        /// Set when the relay finished; the entry lingers so late FIN/ACKs still translate.
        var closedAt: UInt64?
        var accepted = false
    }

    /// NAT ports handed out: well above the ephemeral range's usual start, all of it.
    static let firstPort: UInt16 = 1024
    static let lastPort: UInt16 = 65535
    /// How long a finished connection's entry stays, so retransmitted FINs translate.
    static let linger: UInt64 = 15_000_000_000
    /// How long a SYN may wait to be accepted before its entry is dropped.
    static let acceptTimeout: UInt64 = 60_000_000_000

    private struct Family {
        var byKey: [Key: UInt16] = [:]
        /// Sparse: a full 65,536-slot array of entries would keep 8 MiB per family resident for nothing.
        var byPort: [UInt16: Entry] = [:]
        var nextPort = TCPNATTable.firstPort
        var count = 0
        /// Entries in the order they can expire, so that ``collect(now:)`` looks only at those that may have:
        /// finished ones by `closedAt` (linger is the same for all), all of them by `createdAt` (accept timeout).
        /// A queued (port, time) whose entry has changed since (port reused, reopened) is skipped.
        var closing = ExpiryQueue()
        var opened = ExpiryQueue()
    }

    /// A FIFO of (port, time) in time order.
    struct ExpiryQueue {
        private var items: [(port: UInt16, at: UInt64)] = []
        private var head = 0

        mutating func append(_ port: UInt16, _ at: UInt64) { items.append((port, at)) }

        /// Removes and returns the first item when its time is at or before `deadline`.
        mutating func popDue(before deadline: UInt64) -> (port: UInt16, at: UInt64)? {
            guard head < items.count, items[head].at <= deadline else { return nil }
            let item = items[head]
            head += 1
            if head >= 4096, head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }

    private let state = Locked<(v4: Family, v6: Family)>((Family(), Family()))

    /// Existing translation for a client packet.
    func port(for key: Key) -> UInt16? {
        state.withLock { s in
            key.source.isIPv4 ? s.v4.byKey[key] : s.v6.byKey[key]
        }
    }

    /// A new translation (on SYN). Returns nil when every port of the family is in use.
    func create(_ key: Key, decision: RuleDecision, host: String?, fake: Bool = false, sniff: Bool = false, now: UInt64)
        -> UInt16?
    {
        let entry = Entry(key: key, decision: decision, host: host, fake: fake, sniff: sniff, createdAt: now)
        return state.withLock { s in
            key.source.isIPv4 ? Self.create(&s.v4, entry) : Self.create(&s.v6, entry)
        }
    }

    private static func create(_ f: inout Family, _ entry: Entry) -> UInt16? {
        let key = entry.key
        if let existing = f.byKey[key] { return existing }
        let span = Int(lastPort - firstPort) + 1
        for _ in 0..<span {
            let port = f.nextPort
            f.nextPort = port == lastPort ? firstPort : port + 1
            if f.byPort[port] == nil {
                f.byPort[port] = entry
                f.byKey[key] = port
                f.count += 1
                f.opened.append(port, entry.createdAt)
                return port
            }
        }
        return nil
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

    /// The relay finished; the entry goes after the linger time.
    func markClosed(port: UInt16, ipv4: Bool, now: UInt64) {
        state.withLock { s in
            if ipv4 { Self.markClosed(&s.v4, port, now) } else { Self.markClosed(&s.v6, port, now) }
        }
    }

    private static func markClosed(_ f: inout Family, _ port: UInt16, _ now: UInt64) {
        guard f.byPort[port] != nil else { return }
        f.byPort[port]?.closedAt = now
        f.closing.append(port, now)
    }

    /// Drops lingering and never-accepted entries. Returns the keys that went.
    @discardableResult
    func collect(now: UInt64) -> [Key] {
        state.withLock { s in Self.collect(&s.v4, now) + Self.collect(&s.v6, now) }
    }

    /// Runs on the TUN reader thread once a second, so it costs O(expired), never a walk over every entry (after a
    /// burst of 100,000 short connections a full walk took milliseconds, and pings waited for it).
    private static func collect(_ f: inout Family, _ now: UInt64) -> [Key] {
        var removed: [Key] = []
        func remove(_ port: UInt16, _ entry: Entry) {
            f.byKey[entry.key] = nil
            f.byPort[port] = nil
            f.count -= 1
            removed.append(entry.key)
        }
        if now >= linger {
            while let (port, at) = f.closing.popDue(before: now - linger) {
                if let entry = f.byPort[port], entry.closedAt == at { remove(port, entry) }
            }
        }
        if now >= acceptTimeout {
            while let (port, at) = f.opened.popDue(before: now - acceptTimeout) {
                if let entry = f.byPort[port], entry.createdAt == at, !entry.accepted, entry.closedAt == nil { remove(port, entry) }
            }
        }
        return removed
    }

    var count: Int { state.withLock { $0.v4.count + $0.v6.count } }
}
