import SluiceNet
import SluiceRules
import Testing

@testable import SluiceTun

/// The TCP NAT table's life cycle: ports, lingering after close, the accept timeout, and a collection that only
/// looks at what may have expired.
@Suite("TCP NAT table")
struct TCPNATTableTests {
    static func key(_ n: Int) -> TCPNATTable.Key {
        TCPNATTable.Key(
            source: IPAddress("10.\(n / 62_500).\(n / 250 % 250).\(n % 250 + 1)")!, sourcePort: UInt16(40000 + n % 20000),
            destination: IPAddress("198.51.100.7")!, destinationPort: 443)
    }

    static let decision = RuleDecision(target: "DIRECT", rule: "MATCH")
    static let second: UInt64 = 1_000_000_000

    @Test("closed entries linger 15 s, never-accepted ones go after 60 s, open ones stay; same key, same port")
    func expiry() throws {
        let table = TCPNATTable()
        let closed = try #require(table.create(Self.key(1), decision: Self.decision, host: nil, now: 0))
        let open = try #require(table.create(Self.key(2), decision: Self.decision, host: nil, now: 0))
        let stale = try #require(table.create(Self.key(3), decision: Self.decision, host: nil, now: 0))
        #expect(table.create(Self.key(1), decision: Self.decision, host: nil, now: 1) == closed, "same key, same port")
        #expect(Set([closed, open, stale]).count == 3)
        table.markAccepted(port: closed, ipv4: true)
        table.markAccepted(port: open, ipv4: true)
        table.markClosed(port: closed, ipv4: true, now: 10 * Self.second)
        #expect(table.collect(now: 20 * Self.second).isEmpty, "still lingering")
        #expect(table.entry(port: closed, ipv4: true) != nil)
        #expect(table.collect(now: 26 * Self.second) == [Self.key(1)], "15 s after the close")
        #expect(table.entry(port: closed, ipv4: true) == nil)
        #expect(table.collect(now: 61 * Self.second) == [Self.key(3)], "never accepted: 60 s")
        #expect(table.entry(port: open, ipv4: true) != nil, "accepted and open: kept")
        #expect(table.count == 1)
    }

    @Test("a port taken again after its entry went is not collected by the old entry's queue item")
    func reusedPort() throws {
        let table = TCPNATTable()
        // Fill and empty a stretch of ports so that the allocator wraps onto the same ones later.
        var ports: [UInt16] = []
        for n in 0..<64_512 {
            ports.append(try #require(table.create(Self.key(n), decision: Self.decision, host: nil, now: 0)))
            table.markAccepted(port: ports.last!, ipv4: true)
            table.markClosed(port: ports.last!, ipv4: true, now: 0)
        }
        #expect(table.create(Self.key(70_000), decision: Self.decision, host: nil, now: 0) == nil, "every port in use")
        #expect(table.collect(now: 16 * Self.second).count == 64_512)
        // The first port comes round again, opened late: the old queue items for it must not take it.
        let again = try #require(table.create(Self.key(70_001), decision: Self.decision, host: nil, now: 17 * Self.second))
        table.markAccepted(port: again, ipv4: true)
        #expect(table.collect(now: 100 * Self.second).isEmpty)
        #expect(table.entry(port: again, ipv4: true)?.key == Self.key(70_001))
    }
}
