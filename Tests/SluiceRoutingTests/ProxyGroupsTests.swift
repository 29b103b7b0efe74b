import Foundation
import Logging
import SluiceConfig
import SluiceRules
import Testing

@testable import SluiceRouting

@Suite("Proxy groups")
struct ProxyGroupsTests {
    static func group(
        _ name: String, _ kind: ProxyGroup.Kind, _ members: [String], configure: (inout ProxyGroup) -> Void = { _ in }
    )
        -> ProxyGroup
    {
        var g = ProxyGroup(name: name, kind: kind)
        g.members = members
        configure(&g)
        return g
    }

    @Test("select: the first member, then the chosen one, persisted across a restart; bad choices say why")
    func select() throws {
        let path = "/tmp/sluice-selected-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = [
            Self.group("Proxy", .select, ["ss1", "socks", "DIRECT"]),
            Self.group("Final", .select, ["Proxy", "REJECT"]),
        ]
        let groups = ProxyGroups(config, storePath: path, logger: Logger(label: "test"))
        #expect(groups.resolve("Final", key: "a.test") == "ss1", "nested: Final -> Proxy -> ss1")
        #expect(groups.resolve("DIRECT", key: "a.test") == "DIRECT")
        try groups.select("Proxy", "socks")
        #expect(groups.resolve("Final", key: "a.test") == "socks")
        #expect(throws: ProxyGroups.SelectionError.self) { try groups.select("Proxy", "nope") }
        #expect(throws: ProxyGroups.SelectionError.self) { try groups.select("Nope", "ss1") }
        let again = ProxyGroups(config, storePath: path, logger: Logger(label: "test"))
        #expect(again.resolve("Proxy", key: "") == "socks", "the choice survived a restart")
        #expect(again.status.map(\.now) == ["socks", "Proxy"])
    }

    @Test("fallback: the first member up; back to the first when it recovers")
    func fallback() throws {
        let groups = ProxyGroups(
            [Self.group("FB", .fallback, ["a", "b", "c"])], storePath: nil, logger: Logger(label: "test"))
        #expect(groups.resolve("FB", key: "") == "a")
        groups.apply(["a": .init(latencyMilliseconds: nil), "b": .init(latencyMilliseconds: 50)], to: "FB", at: 1)
        #expect(groups.resolve("FB", key: "") == "b")
        groups.apply(["a": .init(latencyMilliseconds: 300)], to: "FB", at: 2)
        #expect(groups.resolve("FB", key: "") == "a")
    }

    @Test("url-test: the fastest member, with tolerance against flapping")
    func urlTest() throws {
        let groups = ProxyGroups(
            [Self.group("Auto", .urlTest, ["a", "b"]) { $0.tolerance = 50 }], storePath: nil,
            logger: Logger(label: "test"))
        groups.apply(["a": .init(latencyMilliseconds: 100), "b": .init(latencyMilliseconds: 120)], to: "Auto", at: 1)
        #expect(groups.resolve("Auto", key: "") == "a")
        groups.apply(["a": .init(latencyMilliseconds: 100), "b": .init(latencyMilliseconds: 70)], to: "Auto", at: 2)
        #expect(groups.resolve("Auto", key: "") == "a", "30 ms better is within the tolerance")
        groups.apply(["a": .init(latencyMilliseconds: 100), "b": .init(latencyMilliseconds: 20)], to: "Auto", at: 3)
        #expect(groups.resolve("Auto", key: "") == "b")
        groups.apply(["b": .init(latencyMilliseconds: nil)], to: "Auto", at: 4)
        #expect(groups.resolve("Auto", key: "") == "a", "the current member is down")
    }

    @Test("load-balance: consistent hashing keeps destinations on their member; only a failed member's move")
    func loadBalance() throws {
        let groups = ProxyGroups(
            [Self.group("LB", .loadBalance, ["a", "b", "c"])], storePath: nil, logger: Logger(label: "test"))
        let keys = (0..<300).map { "host\($0).test" }
        let before = Dictionary(uniqueKeysWithValues: keys.map { ($0, groups.resolve("LB", key: $0)!) })
        #expect(Set(before.values) == ["a", "b", "c"])
        #expect(before.values.filter { $0 == "a" }.count > 50, "spread over the members")
        #expect(keys.allSatisfy { groups.resolve("LB", key: $0) == before[$0] }, "stable")
        groups.apply(["b": .init(latencyMilliseconds: nil)], to: "LB", at: 1)
        for key in keys {
            let now = groups.resolve("LB", key: key)!
            #expect(now != "b")
            if before[key] != "b" { #expect(now == before[key], "\(key) moved although its member is up") }
        }
    }

    @Test("a cycle of groups resolves to nothing instead of looping")
    func cycle() {
        let groups = ProxyGroups(
            [Self.group("A", .select, ["B"]), Self.group("B", .select, ["A"])], storePath: nil,
            logger: Logger(label: "test"))
        #expect(groups.resolve("A", key: "") == nil)
    }

    @Test("other groups pass over unavailable members and PASS; COMPATIBLE is DIRECT; a chosen PASS rejects")
    func unusableMembersAreSkipped() throws {
        let config = [
            Self.group("Empty", .select, []),
            Self.group("FB", .fallback, ["Empty", "PASS", "ss1"]),
            Self.group("LB", .loadBalance, ["Empty", "ss1", "ss2"]),
            Self.group("Pick", .select, ["Empty", "COMPATIBLE", "PASS"]),
        ]
        let groups = ProxyGroups(config, storePath: nil, logger: Logger(label: "test"))
        #expect(groups.resolve("FB", key: "") == "ss1")
        #expect(Set((0..<50).map { groups.resolve("LB", key: "h\($0)") }) == ["ss1", "ss2"])
        #expect(groups.resolvePath("Empty", key: "") == ["Empty", "REJECT"])
        let table = RoutingTable(rules: RuleEngine(rules: []), outbounds: [:], groups: groups)
        #expect(groups.resolve("Pick", key: "") == "COMPATIBLE", "the first usable member")
        #expect(table.settle(RuleDecision(target: "Pick", rule: "MATCH"), key: "", source: "").0.target == "DIRECT")
        try groups.select("Pick", "PASS")
        #expect(table.settle(RuleDecision(target: "Pick", rule: "MATCH"), key: "", source: "").0.target == "REJECT")
        try groups.select("Pick", "Empty")
        #expect(table.settle(RuleDecision(target: "Pick", rule: "MATCH"), key: "", source: "").0.target == "REJECT")
    }
}
