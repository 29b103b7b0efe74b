import Foundation
import SluiceConfig
import SluiceNet
import Testing

/// `sub-rules:` and `SUB-RULE` as mihomo v1.19.32 loads them (`config.go`: `parseSubRules`, `parseRules`,
/// `verifySubRuleCircularReferences`; each refusal below is one `mihomo -t` refuses too).
@Suite("sub-rules loading")
struct SubRulesLoadingTests {
    static let head = """
        proxies:
          - {name: A, type: direct}
          - {name: v, type: vless, server: 192.0.2.1, port: 443, uuid: 6f2a1b7e-8a1c-4c1e-9b1a-1a2b3c4d5e6f}

        """

    @Test("every SUB-RULE carries the set it names, nested sets included")
    func setsAreFilledIn() throws {
        let result = TestSupport.load(
            Self.head + """
                sub-rules:
                  outer:
                    - DOMAIN,a.example,A
                    - SUB-RULE,(AND,((NETWORK,udp),(IP-CIDR,10.0.0.0/8,no-resolve))),inner
                  inner:
                    - MATCH,REJECT
                rules:
                  - SUB-RULE,(DST-PORT,443),outer
                  - MATCH,DIRECT
                """)
        let configuration = try #require(result.configuration, "\(result.diagnostics)")
        #expect(result.diagnostics.map(\.keyPath) == ["proxies[1]"], "\(result.diagnostics)")
        let inner = [Rule(condition: .match, target: "REJECT")]
        let outer = [
            Rule(condition: .domain("a.example"), target: "A"),
            Rule(
                condition: .subRule(
                    .and([.network(.udp), .ipCIDR(IPPrefix("10.0.0.0/8")!)]), name: "inner", rules: inner),
                target: "inner", noResolve: true),
        ]
        #expect(
            configuration.rules == [
                Rule(
                    condition: .subRule(.destinationPort([PortRange(443, 443)]), name: "outer", rules: outer),
                    target: "outer"),
                Rule(condition: .match, target: "DIRECT"),
            ])
        // The compact JSON the supervisor sends the tun worker keeps them.
        let decoded = try JSONDecoder().decode([Rule].self, from: JSONEncoder().encode(configuration.rules))
        #expect(decoded == configuration.rules)
        #expect(configuration.rules[0].condition.clashType == "SubRules")
        #expect(configuration.rules[0].condition.clashPayload == "(DST-PORT,443)")
    }

    @Test("rules in a set are checked as rules are, with their own key path")
    func rulesInSetsAreChecked() {
        let messages = TestSupport.messages(
            Self.head + """
                sub-rules:
                  web:
                    - DOMAIN,a.example,v
                    - GEOIP,CN,A
                    - DOMAIN,b.example,nobody
                rules:
                  - SUB-RULE,(NETWORK,tcp),web
                """)
        #expect(
            messages.filter { !$0.contains(": proxies[") } == [
                "t.yaml:6:7: warning: sub-rules.web[0]: target \"v\" was left out; this rule rejects what it matches (sluice fails closed: never DIRECT in its place)",
                "t.yaml:7:7: warning: sub-rules.web[1]: rule type GEOIP is not supported by sluice; rule skipped",
                "t.yaml:8:7: sub-rules.web[2]: no proxy or group named \"nobody\"; the target must be a proxy, a group, DIRECT, REJECT or REJECT-DROP",
            ])
    }

    @Test("a SUB-RULE naming no set is an error where it is written (mihomo: sub-rule [nope] not found)")
    func unknownSet() {
        #expect(
            TestSupport.messages(
                Self.head + """
                    sub-rules:
                      web:
                        - SUB-RULE,(NETWORK,tcp),nope
                    rules:
                      - SUB-RULE,(NETWORK,tcp),missing
                    """
            ).filter { !$0.contains(": proxies[") } == [
                "t.yaml:6:7: sub-rules.web[0]: SUB-RULE: no sub-rule set named \"nope\"; define it under sub-rules",
                "t.yaml:8:5: rules[0]: SUB-RULE: no sub-rule set named \"missing\"; define it under sub-rules",
            ])
    }

    @Test("in rules, a SUB-RULE naming a proxy never matches (mihomo accepts it): skipped with a warning")
    func namingAProxy() {
        #expect(
            TestSupport.messages(
                Self.head + """
                    rules:
                      - SUB-RULE,(NETWORK,tcp),A
                    """
            ).filter { !$0.contains(": proxies[") } == [
                "t.yaml:5:5: warning: rules[0]: SUB-RULE names \"A\", a proxy or group, not a set of sub-rules; it never matches (in mihomo too); rule skipped"
            ])
    }

    @Test("sets that name each other in a cycle are refused, once per cycle")
    func cycles() {
        #expect(
            TestSupport.messages(
                """
                sub-rules:
                  a:
                    - SUB-RULE,(NETWORK,udp),b
                  b:
                    - SUB-RULE,(NETWORK,tcp),c
                  c:
                    - SUB-RULE,(DST-PORT,53),a
                  self:
                    - SUB-RULE,(DST-PORT,80),self
                rules:
                  - SUB-RULE,(NETWORK,tcp),a
                """) == [
                    "t.yaml:7:7: sub-rules.c[0]: sub-rule sets name each other in a cycle: a -> b -> c -> a; matching would never end, so remove one of these SUB-RULEs",
                    "t.yaml:9:7: sub-rules.self[0]: sub-rule sets name each other in a cycle: self -> self; matching would never end, so remove one of these SUB-RULEs",
                ])
    }

    @Test("malformed SUB-RULEs are errors, as is SUB-RULE inside a logical rule (mihomo -t refuses each)")
    func malformed() {
        #expect(
            TestSupport.messages(
                """
                sub-rules:
                  s:
                    - MATCH,DIRECT
                rules:
                  - SUB-RULE,NETWORK,tcp,s
                  - SUB-RULE,(NETWORK,tcp),s,no-resolve
                  - SUB-RULE,((NETWORK,tcp),(DST-PORT,53)),s
                  - AND,((SUB-RULE,(NETWORK,tcp)),(DST-PORT,53)),DIRECT
                """) == [
                    "t.yaml:5:5: rules[0]: expected SUB-RULE,(CONDITION),NAME such as SUB-RULE,(NETWORK,udp),udp-rules, got \"SUB-RULE,NETWORK,tcp,s\"",
                    "t.yaml:6:5: rules[1]: expected SUB-RULE,(CONDITION),NAME such as SUB-RULE,(NETWORK,udp),udp-rules, got \"SUB-RULE,(NETWORK,tcp),s,no-resolve\"",
                    "t.yaml:7:5: rules[2]: SUB-RULE: each part must be (TYPE,PAYLOAD[,OPTION...]), got \"((NETWORK,tcp),(DST-PORT,53))\"",
                    "t.yaml:8:5: rules[3]: SUB-RULE cannot be used inside a logical rule; write it as a rule of its own",
                ])
    }

    @Test("an empty set loads; a SUB-RULE naming it never matches")
    func emptySet() throws {
        let result = TestSupport.load(
            """
            sub-rules:
              none:
              also-none: []
            rules:
              - SUB-RULE,(NETWORK,tcp),none
              - SUB-RULE,(NETWORK,tcp),also-none
            """)
        let configuration = try #require(result.configuration, "\(result.diagnostics)")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        #expect(configuration.rules.count == 2)
    }
}
