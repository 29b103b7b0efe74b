import Logging
import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluiceRules
import Testing

@testable import SluiceRouting

/// Fail closed, from the configuration to the route: groups that can carry nothing reject, never DIRECT.
@Suite("Fail-closed routing")
struct FailClosedRoutingTests {
    @Test("fail closed: a connection to a group whose members are all unsupported is rejected, never sent DIRECT")
    func allUnsupportedGroupRejects() throws {
        let yaml = """
            proxies:
              - {name: v1, type: vless, server: 192.0.2.1, port: 443, uuid: 6f2a1b7e-8a1c-4c1e-9b1a-1a2b3c4d5e6f}
            proxy-groups:
              - {name: Proxy, type: select, proxies: [v1]}
              - {name: Outer, type: fallback, proxies: [Proxy]}
              - {name: Sub, type: url-test, use: [provider1]}
            rules:
              - DOMAIN-SUFFIX,outer.test,Outer
              - DOMAIN-SUFFIX,sub.test,Sub
              - MATCH,Proxy
            """
        let configuration = try #require(
            ConfigLoader.load(yaml: yaml, fileName: "t.yaml", catalog: OutboundRegistry.catalog).configuration)
        let groups = ProxyGroups(configuration.proxyGroupsWithGlobal, storePath: nil, logger: Logger(label: "test"))
        let table = RoutingTable(rules: RuleEngine(configuration: configuration), outbounds: [:], groups: groups)
        for host in ["a.test", "outer.test", "sub.test"] {
            let metadata = ConnectionMetadata(
                network: .tcp, source: IPAddress("10.0.0.2")!, sourcePort: 40000, destination: IPAddress("192.0.2.9")!,
                destinationPort: 443, host: host)
            let (decision, facts) = table.settle(table.rules.decide(metadata), key: host, source: "10.0.0.2")
            #expect(decision.target == "REJECT", "\(host): \(decision)")
            #expect(facts.chains.first == "REJECT")
        }
        let (decision, _) = table.settle(RuleDecision(target: "Outer", rule: "MATCH"), key: "", source: "")
        #expect(decision.rule == "MATCH → Outer (group Outer unavailable)")
        #expect(groups.status.filter { $0.name != "GLOBAL" }.map(\.now) == ["REJECT", "REJECT", "REJECT"])
        #expect(groups.status[0].unavailable == "its only member was left out: \"v1\" (vless not supported)")
        #expect(
            groups.problems == [
                "group Proxy is unavailable (its only member was left out: \"v1\" (vless not supported)); its traffic is rejected",
                "group Outer is unavailable (every member is unavailable: Proxy); its traffic is rejected",
                "group Sub is unavailable (proxy providers are not supported yet: provider1); its traffic is rejected",
            ])
    }
}
