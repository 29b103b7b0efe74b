import Logging
import SluiceConfig
import SluiceRules
import Testing

@testable import SluiceRouting

/// The routing table's settling of a rule decision through groups, and group health fed by delay tests.
@Suite("routing table")
struct RoutingTableTests {
    @Test("chains: the outbound first, then the groups that led to it")
    func chains() {
        let groups = ProxyGroups(
            [
                ProxyGroupsTests.group("Proxy", .select, ["ss1", "socks", "DIRECT"]),
                ProxyGroupsTests.group("Final", .select, ["Proxy", "REJECT"]),
            ], storePath: nil, logger: Logger(label: "test"))
        let table = RoutingTable(rules: RuleEngine(rules: []), outbounds: [:], groups: groups)
        let (direct, directFacts) = table.settle(
            RuleDecision(target: "DIRECT", rule: "MATCH", condition: .match), key: "", source: "")
        #expect(direct.target == "DIRECT" && directFacts == RouteFacts(condition: .match, chains: ["DIRECT"]))
        let (proxy, proxyFacts) = table.settle(
            RuleDecision(target: "Proxy", rule: "DOMAIN-SUFFIX,a.test", condition: .domainSuffix("a.test")),
            key: "a.test", source: "")
        #expect(proxy.target == "ss1" && proxy.rule == "DOMAIN-SUFFIX,a.test → Proxy")
        #expect(proxyFacts == RouteFacts(condition: .domainSuffix("a.test"), chains: ["ss1", "Proxy"]))
        let (_, nested) = table.settle(RuleDecision(target: "Final", rule: "MATCH"), key: "", source: "")
        #expect(nested.chains == ["ss1", "Proxy", "Final"])
        #expect(groups.resolvePath("Final", key: "") == ["Final", "Proxy", "ss1"])
        #expect(groups.resolvePath("ss1", key: "") == ["ss1"])
        let cycle = ProxyGroups(
            [ProxyGroupsTests.group("A", .select, ["B"]), ProxyGroupsTests.group("B", .select, ["A"])], storePath: nil,
            logger: Logger(label: "test"))
        #expect(cycle.resolvePath("A", key: "") == nil)
    }

    @Test("a delay measured on request feeds every group listing the member; a url-test group may switch")
    func recordedDelay() {
        let groups = ProxyGroups(
            [
                ProxyGroupsTests.group("Auto", .urlTest, ["a", "b"]) { $0.tolerance = 10 },
                ProxyGroupsTests.group("Pick", .select, ["b", "DIRECT"]),
            ], storePath: nil, logger: Logger(label: "test"))
        groups.apply(["a": .init(latencyMilliseconds: 100), "b": .init(latencyMilliseconds: 200)], to: "Auto", at: 1)
        #expect(groups.resolve("Auto", key: "") == "a")
        groups.record("b", latencyMilliseconds: 20)
        #expect(
            groups.resolve("Auto", key: "") == "b", "b measured 20 ms on request: faster by more than the tolerance")
        let status = groups.status
        #expect(status.first { $0.name == "Pick" }?.health["b"]?.latencyMilliseconds == 20)
        #expect(status.first { $0.name == "Auto" }?.health["b"]?.latencyMilliseconds == 20)
        groups.record("b", latencyMilliseconds: nil)
        #expect(groups.resolve("Auto", key: "") == "a", "b failed: back to a")
    }
}
