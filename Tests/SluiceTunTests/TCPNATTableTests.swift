import SluiceNet
import SluiceRouting
import SluiceRules
import SluiceSystem
import Testing

@testable import SluiceTun

/// The TCP NAT table's life cycle: ports, lingering after close, the accept timeout, and a collection that only
/// looks at what may have expired.
@Suite("TCP NAT table")
struct TCPNATTableTests {
    static func key6(_ n: Int) -> TCPNATTable.Key {
        TCPNATTable.Key(
            source: IPAddress("fd00::\(String(n, radix: 16))")!, sourcePort: UInt16(40000 + n % 20000),
            destination: IPAddress("2001:db8::7")!, destinationPort: 443)
    }

    static func key(_ n: Int) -> TCPNATTable.Key {
        TCPNATTable.Key(
            source: IPAddress("10.\(n / 62_500).\(n / 250 % 250).\(n % 250 + 1)")!,
            sourcePort: UInt16(40000 + n % 20000),
            destination: IPAddress("198.51.100.7")!, destinationPort: 443)
    }

    static let verdict = FlowVerdict.routed(
        SettledFlow(
            decision: RuleDecision(target: "DIRECT", rule: "MATCH"), host: nil, fake: false, facts: RouteFacts()))
    static let second: UInt64 = 1_000_000_000

    @Test("closed entries linger 15 s, never-accepted ones go after 60 s, open ones stay; same key, same port")
    func expiry() throws {
        let table = TCPNATTable()
        let closed = try #require(table.create(Self.key(1), verdict: Self.verdict, now: 0).port)
        let open = try #require(table.create(Self.key(2), verdict: Self.verdict, now: 0).port)
        let stale = try #require(table.create(Self.key(3), verdict: Self.verdict, now: 0).port)
        #expect(table.create(Self.key(1), verdict: Self.verdict, now: 1).port == closed, "same key, same port")
        #expect(Set([closed, open, stale]).count == 3)
        table.markAccepted(port: closed, ipv4: true)
        table.markAccepted(port: open, ipv4: true)
        table.markClosed(port: closed, ipv4: true, now: 10 * Self.second)
        #expect(table.collect(now: 20 * Self.second).isEmpty, "still lingering")
        #expect(table.entry(port: closed, ipv4: true) != nil)
        #expect(table.collect(now: 26 * Self.second).map(\.key) == [Self.key(1)], "15 s after the close")
        #expect(table.entry(port: closed, ipv4: true) == nil)
        #expect(table.collect(now: 61 * Self.second).map(\.key) == [Self.key(3)], "never accepted: 60 s")
        #expect(table.entry(port: open, ipv4: true) != nil, "accepted and open: kept")
        #expect(table.count == 1)
    }

    @Test("a SYN reusing a finished connection's key is a new connection: new port, live again, not collected under it")
    func reusedKeyAfterClose() throws {
        let table = TCPNATTable()
        let first = try #require(table.create(Self.key(1), verdict: Self.verdict, now: 0).port)
        #expect(table.releaseFinished(Self.key(1)) == nil, "an open connection's retransmitted SYN keeps its entry")
        table.markAccepted(port: first, ipv4: true)
        #expect(table.releaseFinished(Self.key(1)) == nil, "nor does an accepted one")
        table.markClosed(port: first, ipv4: true, now: 1 * Self.second)
        #expect(table.liveCount == 0)
        // The client's next connection from the same port, 2 s later.
        #expect(
            table.releaseFinished(Self.key(1))
                == TCPNATTable.Released(key: Self.key(1), port: first, resetSequence: nil),
            "no FIN seen: nothing to reset")
        #expect(table.entry(port: first, ipv4: true) == nil)
        guard
            case .created(let second, evicted: nil) = table.create(
                Self.key(1), verdict: Self.verdict, now: 2 * Self.second)
        else {
            Issue.record("the reused key did not get a new entry")
            return
        }
        #expect(second != first)
        #expect(table.liveCount == 1)
        table.markAccepted(port: second, ipv4: true)
        // Past the old connection's linger: the new one stays.
        #expect(table.collect(now: 30 * Self.second).isEmpty)
        #expect(table.entry(port: second, ipv4: true)?.closedAt == nil)
    }

    @Test("a finished entry whose client sent a FIN leaves with the sequence after it, to end the listener's TIME_WAIT")
    func timeWaitReset() throws {
        let table = TCPNATTable()
        let port = try #require(table.create(Self.key(1), verdict: Self.verdict, clientSequence: 500, now: 0).port)
        table.markAccepted(port: port, ipv4: true)
        table.clientFinished(port: port, ipv4: true, end: 9_001)
        table.markClosed(port: port, ipv4: true, now: 1 * Self.second)
        #expect(
            table.collect(now: 17 * Self.second) == [
                TCPNATTable.Released(key: Self.key(1), port: port, resetSequence: 9_001)
            ])
        // Released early for a reused key: the same.
        let again = try #require(table.create(Self.key(2), verdict: Self.verdict, now: 20 * Self.second).port)
        table.markAccepted(port: again, ipv4: true)
        table.clientFinished(port: again, ipv4: true, end: 77)
        table.markClosed(port: again, ipv4: true, now: 21 * Self.second)
        #expect(table.releaseFinished(Self.key(2))?.resetSequence == 77)
        // An accepted connection that the relay has not finished is not reset by a collection (it is not collected).
        let open = try #require(table.create(Self.key(3), verdict: Self.verdict, now: 22 * Self.second).port)
        table.markAccepted(port: open, ipv4: true)
        table.clientFinished(port: open, ipv4: true, end: 5)
        #expect(table.collect(now: 200 * Self.second).isEmpty)
        // A half-open entry that expires: the listener's SYN_RECV is reset with the SYN's sequence + 1.
        _ = table.create(Self.key(4), verdict: Self.verdict, clientSequence: UInt32.max, now: 200 * Self.second)
        #expect(table.collect(now: 261 * Self.second).map(\.resetSequence) == [0], "wraps")
    }

    @Test("accepted connections leave the creation queue at the next collection, not at their 60 s accept timeout")
    func queueStaysShort() throws {
        let table = TCPNATTable()
        var now: UInt64 = 0
        // 40 s of 1,000 short connections a second: created, accepted, closed within the second.
        for second in 0..<40 {
            for n in 0..<1_000 {
                now = UInt64(second) * Self.second + UInt64(n) * 1_000_000
                let port = try #require(
                    table.create(Self.key(second * 1_000 + n), verdict: Self.verdict, now: now).port)
                table.markAccepted(port: port, ipv4: true)
                table.markClosed(port: port, ipv4: true, now: now)
            }
            _ = table.collect(now: now)
        }
        // What stays queued: the last 15 s of closes (they linger); none of the 40,000 creations.
        #expect(table.queued <= 16_000, "\(table.queued) queue items")
        // One connection that never completes holds the queue from its own item on, no further back.
        _ = table.create(Self.key(99_999), verdict: Self.verdict, now: now + 1)
        _ = table.collect(now: now + 2)
        #expect(table.collect(now: now + 61 * Self.second).map(\.key).contains(Self.key(99_999)))
        #expect(table.queued == 0, "everything went: \(table.queued)")
    }

    @Test("a port taken again after its entry went is not collected by the old entry's queue item")
    func reusedPort() throws {
        let table = TCPNATTable()
        // Fill and empty a stretch of ports so that the allocator wraps onto the same ones later.
        var ports: [UInt16] = []
        for n in 0..<64_512 {
            ports.append(try #require(table.create(Self.key(n), verdict: Self.verdict, now: 0).port))
            table.markAccepted(port: ports.last!, ipv4: true)
            table.markClosed(port: ports.last!, ipv4: true, now: 0)
        }
        #expect(
            table.create(Self.key(70_000), verdict: Self.verdict, now: 0) == .noPort(evicted: nil), "every port in use")
        #expect(table.collect(now: 16 * Self.second).count == 64_512)
        // The first port comes round again, opened late: the old queue items for it must not take it.
        let again = try #require(table.create(Self.key(70_001), verdict: Self.verdict, now: 17 * Self.second).port)
        table.markAccepted(port: again, ipv4: true)
        #expect(table.collect(now: 100 * Self.second).isEmpty)
        #expect(table.entry(port: again, ipv4: true)?.key == Self.key(70_001))
    }

    // MARK: max-connections

    @Test("at the limit a SYN pushes out the oldest half-open entry, never an accepted one; none half-open: refused")
    func synCache() throws {
        let table = TCPNATTable(maxConnections: 4)
        var ports: [UInt16] = []
        for n in 1...4 {
            ports.append(
                try #require(
                    table.create(Self.key(n), verdict: Self.verdict, clientSequence: UInt32(1000 * n), now: UInt64(n))
                        .port))
        }
        table.markAccepted(port: ports[1], ipv4: true)  // key 2 is relayed
        let fifth = table.create(Self.key(5), verdict: Self.verdict, now: 5)
        #expect(
            fifth.evicted == TCPNATTable.Released(key: Self.key(1), port: ports[0], resetSequence: 1001),
            "the oldest half-open; the listener expects 1001")
        #expect(fifth.port != nil)
        #expect(table.port(for: Self.key(1)) == nil && table.entry(port: ports[0], ipv4: true) == nil)
        let sixth = table.create(Self.key(6), verdict: Self.verdict, now: 6)
        #expect(sixth.evicted?.key == Self.key(3), "key 2 is accepted: skipped, key 3 goes")
        #expect(table.port(for: Self.key(2)) == ports[1])
        for key in [Self.key(4), Self.key(5), Self.key(6)] {
            table.markAccepted(port: try #require(table.port(for: key)), ipv4: true)
        }
        #expect(table.liveCount == 4)
        #expect(!table.admitsNew)
        #expect(table.create(Self.key(7), verdict: Self.verdict, now: 7) == .atLimit)
        #expect(table.create(Self.key(2), verdict: Self.verdict, now: 7) == .existing(ports[1]), "a retransmitted SYN")
        // A relay finishes: its entry lingers (still translates) but no longer counts.
        table.markClosed(port: ports[1], ipv4: true, now: 8)
        #expect(table.liveCount == 3 && table.entry(port: ports[1], ipv4: true) != nil)
        #expect(table.admitsNew)
        guard case .created(let seventh, evicted: nil) = table.create(Self.key(7), verdict: Self.verdict, now: 9)
        else {
            Issue.record("room after a close: created without pushing anything out")
            return
        }
        table.markAccepted(port: seventh, ipv4: true)
        // A lower limit on reload closes nothing, it only refuses the next SYN.
        table.maxConnections = 2
        #expect(table.liveCount == 4)
        #expect(table.create(Self.key(8), verdict: Self.verdict, now: 10) == .atLimit)
    }

    @Test("the oldest half-open entry is chosen across both families")
    func evictionAcrossFamilies() throws {
        let table = TCPNATTable(maxConnections: 2)
        _ = table.create(Self.key6(1), verdict: Self.verdict, now: 1)
        _ = table.create(Self.key(1), verdict: Self.verdict, now: 2)
        let third = table.create(Self.key(2), verdict: Self.verdict, now: 3)
        #expect(third.evicted?.key == Self.key6(1))
        #expect(third.evicted?.ipv4 == false)
        let fourth = table.create(Self.key6(2), verdict: Self.verdict, now: 4)
        #expect(fourth.evicted?.key == Self.key(1))
    }

    @Test("a client's reset releases a half-open entry at once; an accepted one stays for the relay to close")
    func resetReleasesHalfOpen() throws {
        let table = TCPNATTable(maxConnections: 10)
        let half = try #require(table.create(Self.key(1), verdict: Self.verdict, now: 0).port)
        let relayed = try #require(table.create(Self.key(2), verdict: Self.verdict, now: 0).port)
        table.markAccepted(port: relayed, ipv4: true)
        #expect(table.releaseHalfOpen(port: half, ipv4: true) == Self.key(1))
        #expect(table.releaseHalfOpen(port: relayed, ipv4: true) == nil)
        #expect(table.releaseHalfOpen(port: half, ipv4: true) == nil, "gone already")
        #expect(table.count == 1 && table.liveCount == 1)
    }

    @Test("under pressure (half full) never-accepted entries go after 5 s instead of 60 s")
    func pressureTimeout() throws {
        let relaxed = TCPNATTable(maxConnections: 100)
        let pressed = TCPNATTable(maxConnections: 4)
        for table in [relaxed, pressed] {
            _ = table.create(Self.key(1), verdict: Self.verdict, now: 0)
            let kept = try #require(table.create(Self.key(2), verdict: Self.verdict, now: 0).port)
            table.markAccepted(port: kept, ipv4: true)
        }
        #expect(relaxed.collect(now: 6 * Self.second).isEmpty)
        #expect(pressed.collect(now: 6 * Self.second).map(\.key) == [Self.key(1)])
        #expect(pressed.liveCount == 1, "the accepted one stays")
        #expect(relaxed.collect(now: 61 * Self.second).map(\.key) == [Self.key(1)])
    }

    @Test("a flood's last entries go after 5 s too, once the first ones went and the table fell below half")
    func pressureTail() throws {
        let table = TCPNATTable(maxConnections: 4)
        let half = Self.second / 2
        for n in 1...3 { _ = table.create(Self.key(n), verdict: Self.verdict, now: UInt64(n - 1) * half) }
        // 5.7 s: the two SYNs from 0 and 0.5 s are 5 s old; the one from 1 s is not yet.
        #expect(table.collect(now: 5 * Self.second + 7 * Self.second / 10).map(\.key) == [Self.key(1), Self.key(2)])
        #expect(table.liveCount == 1, "below half now")
        #expect(
            table.collect(now: 6 * Self.second + 7 * Self.second / 10).map(\.key) == [Self.key(3)], "not 60 s later")
        // A SYN after the flood, with the table below half, gets the full minute to complete.
        _ = table.create(Self.key(4), verdict: Self.verdict, now: 7 * Self.second)
        #expect(table.collect(now: 13 * Self.second).isEmpty)
        #expect(table.collect(now: 68 * Self.second).map(\.key) == [Self.key(4)])
    }

    @Test(
        "50,000 SYNs that never complete, at a limit of 1,000: established entries stay, a late real SYN gets in, O(1) each"
    )
    func flood() throws {
        let table = TCPNATTable(maxConnections: 1_000)
        var established: [UInt16] = []
        for n in 0..<100 {
            let port = try #require(table.create(Self.key(n), verdict: Self.verdict, now: 0).port)
            table.markAccepted(port: port, ipv4: true)
            established.append(port)
        }
        let started = MonotonicClock.now
        var evicted = 0
        var refused = 0
        for n in 100..<50_100 {
            let creation = table.create(Self.key(n), verdict: Self.verdict, now: UInt64(n))
            if creation.port == nil { refused += 1 }
            if creation.evicted != nil { evicted += 1 }
        }
        #expect(refused == 0)
        let elapsed = Double(MonotonicClock.now - started) / 1e9
        #expect(evicted == 50_000 - 900, "the table filled up to the limit, then every SYN pushed one out")
        #expect(table.liveCount == 1_000)
        for (n, port) in established.enumerated() { #expect(table.entry(port: port, ipv4: true)?.key == Self.key(n)) }
        // A real client amid the flood: its SYN gets an entry; accepted promptly, it survives the rest of the flood.
        let real = try #require(table.create(Self.key(60_000), verdict: Self.verdict, now: 60_000).port)
        table.markAccepted(port: real, ipv4: true)
        for n in 60_001..<62_000 { _ = table.create(Self.key(n), verdict: Self.verdict, now: UInt64(n)) }
        #expect(table.entry(port: real, ipv4: true)?.key == Self.key(60_000))
        #expect(elapsed < 5, "50,000 SYNs took \(elapsed) s")
    }
}
