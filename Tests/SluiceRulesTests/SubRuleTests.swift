import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluiceRules
import Testing

/// SUB-RULE as mihomo matches it (`rules/logic/logic.go`, `matchSubRules`): when the condition matches, the set's
/// first matching rule decides; when none does, matching goes on with the next rule; sets nest.
@Suite("SUB-RULE")
struct SubRuleTests {
    static let yaml = """
        proxies:
        \((["A", "B", "C", "D", "E", "F"]).map { "  - {name: \($0), type: direct}" }.joined(separator: "\n"))
        rule-providers:
          names: {type: inline, behavior: domain, payload: [+.listed.example]}
          nets: {type: inline, behavior: ipcidr, payload: [172.16.0.0/12]}
        sub-rules:
          web:
            - DOMAIN-SUFFIX,video.example,A
            - SUB-RULE,(DST-PORT,443),tls
            - RULE-SET,names,B
          tls:
            - DOMAIN,secure.example,C
            - IP-CIDR,10.0.0.0/8,D,no-resolve
            - AND,((RULE-SET,nets),(SRC-PORT,40000)),E
          udp:
            - DST-PORT,53,E
        rules:
          - SUB-RULE,(NETWORK,tcp),web
          - SUB-RULE,(NETWORK,udp),udp
          - DOMAIN-SUFFIX,after.example,B
          - MATCH,F

        """

    static func engine(_ yaml: String = yaml, strategy: RuleEngine.Strategy) throws -> RuleEngine {
        let result = ConfigLoader.load(yaml: yaml, fileName: "s.yaml", catalog: OutboundRegistry.catalog)
        return RuleEngine(configuration: try #require(result.configuration, "\(result.errors)"), strategy: strategy)
    }

    static func flow(
        _ network: ConnectionMetadata.Network, _ destination: String, _ port: UInt16, host: String? = nil,
        fake: Bool = false
    ) -> ConnectionMetadata {
        ConnectionMetadata(
            network: network, source: IPAddress("192.168.1.2")!, sourcePort: 40000,
            destination: IPAddress(destination)!, destinationPort: port, host: host, destinationIsFake: fake)
    }

    static let cases: [(ConnectionMetadata, String, String)] = [
        // The first rule of the set that matches decides.
        (
            flow(.tcp, "1.1.1.1", 80, host: "a.video.example"), "A",
            "SUB-RULE,(NETWORK,TCP),web → DOMAIN-SUFFIX,video.example"
        ),
        // Nested: web's SUB-RULE descends into tls.
        (
            flow(.tcp, "1.1.1.1", 443, host: "secure.example"), "C",
            "SUB-RULE,(NETWORK,TCP),web → SUB-RULE,(DST-PORT,443),tls → DOMAIN,secure.example"
        ),
        (
            flow(.tcp, "10.1.2.3", 443), "D",
            "SUB-RULE,(NETWORK,TCP),web → SUB-RULE,(DST-PORT,443),tls → IP-CIDR,10.0.0.0/8"
        ),
        (
            flow(.tcp, "172.16.9.9", 443), "E",
            "SUB-RULE,(NETWORK,TCP),web → SUB-RULE,(DST-PORT,443),tls → AND,((RULE-SET,nets),(SRC-PORT,40000))"
        ),
        // tls's condition fails (port 80): web goes on to its next rule.
        (
            flow(.tcp, "10.1.2.3", 80, host: "x.listed.example"), "B",
            "SUB-RULE,(NETWORK,TCP),web → RULE-SET,names"
        ),
        // tls is entered but nothing in it matches: web goes on to its next rule.
        (
            flow(.tcp, "1.1.1.1", 443, host: "x.listed.example"), "B",
            "SUB-RULE,(NETWORK,TCP),web → RULE-SET,names"
        ),
        // Nothing in web (nor in tls) matches: matching continues with the next top-level rule.
        (flow(.tcp, "1.1.1.1", 443, host: "www.after.example"), "B", "DOMAIN-SUFFIX,after.example"),
        (flow(.tcp, "1.1.1.1", 80, host: "secure.example"), "F", "MATCH"),
        (flow(.udp, "8.8.8.8", 53), "E", "SUB-RULE,(NETWORK,UDP),udp → DST-PORT,53"),
        (flow(.udp, "8.8.8.8", 123), "F", "MATCH"),
    ]

    @Test(arguments: [RuleEngine.Strategy.indexed, .linear])
    func decisions(strategy: RuleEngine.Strategy) throws {
        let engine = try Self.engine(strategy: strategy)
        for (metadata, target, rule) in Self.cases {
            let decision = engine.decide(metadata)
            #expect(decision.target == target, "\(metadata)")
            #expect(decision.rule == rule, "\(metadata)")
        }
    }

    @Test("the decision names the top-level SUB-RULE as mihomo's connections do (SubRules, its condition)")
    func decisionCondition() throws {
        let decision = try Self.engine(strategy: .indexed).decide(Self.cases[0].0)
        let condition = try #require(decision.condition)
        #expect(condition.clashType == "SubRules")
        #expect(condition.clashPayload == "(NETWORK,TCP)")
    }

    @Test("indexed and linear matching agree on a grid of flows")
    func strategiesAgree() throws {
        let indexed = try Self.engine(strategy: .indexed)
        let linear = try Self.engine(strategy: .linear)
        let hosts: [String?] = [
            nil, "a.video.example", "secure.example", "x.listed.example", "after.example", "o.test",
        ]
        for network in [ConnectionMetadata.Network.tcp, .udp] {
            for destination in ["1.1.1.1", "10.0.0.1", "172.20.0.1"] {
                for port: UInt16 in [53, 80, 443] {
                    for host in hosts {
                        let m = Self.flow(network, destination, port, host: host)
                        #expect(indexed.decide(m) == linear.decide(m), "\(m)")
                    }
                }
            }
        }
    }

    /// A set with a rule that resolves makes reaching the SUB-RULE resolve, before its condition is tested
    /// (mihomo's `ShouldResolveIP`); its no-resolve rules then see the answer too.
    static let resolving = """
        proxies:
        \((["A", "B", "C", "F"]).map { "  - {name: \($0), type: direct}" }.joined(separator: "\n"))
        sub-rules:
          resolving:
            - IP-CIDR,10.0.0.0/8,A,no-resolve
            - IP-CIDR,192.0.2.0/24,B
          quiet:
            - IP-CIDR,10.0.0.0/8,C,no-resolve
        rules:
          - DOMAIN,early.example,C
          - SUB-RULE,(DST-PORT,8443),quiet
          - SUB-RULE,(NETWORK,tcp),resolving
          - MATCH,F

        """

    @Test(arguments: [RuleEngine.Strategy.indexed, .linear])
    func resolvesWhenASetNeedsAnAddress(strategy: RuleEngine.Strategy) throws {
        let engine = try Self.engine(Self.resolving, strategy: strategy)
        func decide(_ host: String, port: UInt16 = 443) -> (String, Int) {
            var calls = 0
            let decision = engine.decide(Self.flow(.tcp, "198.18.0.7", port, host: host, fake: true)) { _ in
                calls += 1
                return [IPAddress("10.1.1.1")!]
            }
            return (decision.target, calls)
        }
        // Reached, the resolving set resolves once; its no-resolve rule sees the answer.
        #expect(decide("x.example") == ("A", 1))
        // Decided before: no resolution.
        #expect(decide("early.example") == ("C", 0))
        // The quiet set alone never resolves: on port 8443 the no-resolve rule sees no address, and matching goes
        // on to the resolving set, which does resolve.
        #expect(decide("y.example", port: 8443) == ("A", 1))
    }

    @Test("a set of only no-resolve rules does not resolve")
    func quietSetDoesNotResolve() throws {
        let yaml = """
            proxies: [{name: A, type: direct}, {name: F, type: direct}]
            sub-rules:
              quiet:
                - IP-CIDR,10.0.0.0/8,A,no-resolve
            rules:
              - SUB-RULE,(NETWORK,tcp),quiet
              - MATCH,F
            """
        for strategy in [RuleEngine.Strategy.indexed, .linear] {
            let engine = try Self.engine(yaml, strategy: strategy)
            var calls = 0
            let decision = engine.decide(Self.flow(.tcp, "198.18.0.7", 443, host: "x.example", fake: true)) { _ in
                calls += 1
                return [IPAddress("10.1.1.1")!]
            }
            #expect(decision.target == "F")
            #expect(calls == 0)
        }
    }

    @Test("sets used by several SUB-RULEs and rules with uid and process conditions inside sets are seen")
    func sharedSetsAndLookups() throws {
        let yaml = """
            proxies: [{name: A, type: direct}, {name: F, type: direct}]
            sub-rules:
              shared:
                - UID,1000,A
                - PROCESS-NAME,curl,A
            rules:
              - SUB-RULE,(DST-PORT,80),shared
              - SUB-RULE,(DST-PORT,443),shared
              - MATCH,F
            """
        let engine = try Self.engine(yaml, strategy: .indexed)
        #expect(engine.usesUID && engine.usesProcess)
        var m = Self.flow(.tcp, "1.1.1.1", 443)
        m.uid = 1000
        #expect(engine.decide(m).rule == "SUB-RULE,(DST-PORT,443),shared → UID,1000")
        m.uid = 1001
        #expect(engine.decide(m).target == "F")
    }
}
