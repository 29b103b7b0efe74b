import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluiceRules
import Testing

/// IP rules on connections to fake addresses: the resolver is asked lazily, at most once, only
/// when an IP rule without `no-resolve` is reached, and later IP rules see its answer (mihomo).
@Suite("Resolving names for IP rules")
struct ResolutionTests {
    static func engine(_ lines: [String], strategy: RuleEngine.Strategy) throws -> RuleEngine {
        let yaml = """
            proxies:
            \((["A", "B", "C", "D", "E", "F"]).map { "  - {name: \($0), type: direct}" }.joined(separator: "\n"))
            rule-providers:
              nets: {type: inline, behavior: ipcidr, payload: [172.16.0.0/12]}
              names: {type: inline, behavior: domain, payload: [+.listed.example]}
              cls: {type: inline, behavior: classical, payload: ["IP-CIDR,192.0.2.0/24", "DOMAIN,c.example"]}
              clsnr: {type: inline, behavior: classical, payload: ["IP-CIDR,192.0.2.0/24,no-resolve"]}
            rules:
            \(lines.map { "  - \($0)" }.joined(separator: "\n"))
              - MATCH,F

            """
        let result = ConfigLoader.load(yaml: yaml, fileName: "r.yaml", catalog: OutboundRegistry.catalog)
        return RuleEngine(configuration: try #require(result.configuration, "\(result.errors)"), strategy: strategy)
    }

    static func fake(_ host: String?) -> ConnectionMetadata {
        ConnectionMetadata(
            network: .tcp, source: IPAddress("192.168.1.2")!, sourcePort: 40000, destination: IPAddress("198.18.0.7")!,
            destinationPort: 443, host: host, destinationIsFake: true)
    }

    /// The decision's target and how many times the resolver was asked.
    static func decide(_ engine: RuleEngine, _ m: ConnectionMetadata, answer: [String]) -> (String, Int) {
        var calls = 0
        let decision = engine.decide(m) { name in
            calls += 1
            #expect(name == m.host)
            return answer.map { IPAddress($0)! }
        }
        return (decision.target, calls)
    }

    static let ordered = [
        "DOMAIN-SUFFIX,x.example,A", "IP-CIDR,10.0.0.0/8,B,no-resolve", "IP-CIDR,1.0.0.0/8,C", "IP-CIDR,10.0.0.0/8,D",
    ]

    @Test(arguments: [RuleEngine.Strategy.indexed, .linear])
    func resolvesOnceWhenAnIPRuleIsReached(strategy: RuleEngine.Strategy) throws {
        let engine = try Self.engine(Self.ordered, strategy: strategy)
        // B is reached first but does not resolve; C resolves; D (and not B, already passed) sees the answer.
        #expect(Self.decide(engine, Self.fake("y.example"), answer: ["10.1.1.1"]) == ("D", 1))
        #expect(Self.decide(engine, Self.fake("y.example"), answer: ["1.2.3.4"]) == ("C", 1))
        #expect(Self.decide(engine, Self.fake("y.example"), answer: ["8.8.8.8", "10.0.0.1"]) == ("D", 1))
        #expect(Self.decide(engine, Self.fake("y.example"), answer: ["::ffff:1.2.3.4"]) == ("C", 1))
        #expect(Self.decide(engine, Self.fake("y.example"), answer: []) == ("F", 1))  // resolution failed
        // A domain rule before any IP rule: never resolves.
        #expect(Self.decide(engine, Self.fake("www.x.example"), answer: ["1.2.3.4"]) == ("A", 0))
        // No name: nothing to resolve.
        #expect(Self.decide(engine, Self.fake(nil), answer: ["1.2.3.4"]) == ("F", 0))
        // Without a resolver, IP rules do not match a fake destination.
        #expect(engine.decide(Self.fake("y.example")).target == "F")
        // A real destination is tested as it is, no-resolve or not, and never resolved.
        var real = Self.fake("y.example")
        real.destinationIsFake = false
        real.destination = IPAddress("10.9.9.9")!
        #expect(Self.decide(engine, real, answer: ["1.2.3.4"]) == ("B", 0))
    }

    @Test(arguments: [RuleEngine.Strategy.indexed, .linear])
    func laterNoResolveRulesSeeTheAnswer(strategy: RuleEngine.Strategy) throws {
        let engine = try Self.engine(["IP-CIDR,1.0.0.0/8,C", "IP-CIDR,10.0.0.0/8,B,no-resolve"], strategy: strategy)
        #expect(Self.decide(engine, Self.fake("y.example"), answer: ["10.1.1.1"]) == ("B", 1))
    }

    @Test(arguments: [RuleEngine.Strategy.indexed, .linear])
    func whichRulesResolve(strategy: RuleEngine.Strategy) throws {
        let cases: [(String, String, (String, Int))] = [
            ("IP-CIDR,10.0.0.0/8,A,no-resolve", "10.1.1.1", ("F", 0)),
            ("IP-CIDR,10.0.0.0/8,A,src", "10.1.1.1", ("F", 0)),
            ("SRC-IP-CIDR,10.0.0.0/8,A", "10.1.1.1", ("F", 0)),
            ("IP-CIDR6,2001:db8::/32,A", "2001:db8::1", ("A", 1)),
            ("IP-SUFFIX,0.0.0.1/8,A", "10.1.1.1", ("A", 1)),
            ("RULE-SET,nets,A", "172.16.5.5", ("A", 1)),
            ("RULE-SET,nets,A,no-resolve", "172.16.5.5", ("F", 0)),
            ("RULE-SET,names,A", "172.16.5.5", ("F", 0)),
            ("RULE-SET,cls,A", "192.0.2.9", ("A", 1)),
            ("RULE-SET,clsnr,A", "192.0.2.9", ("F", 0)),
            ("AND,((NETWORK,tcp),(IP-CIDR,10.0.0.0/8)),A", "10.1.1.1", ("A", 1)),
            ("AND,((NETWORK,tcp),(IP-CIDR,10.0.0.0/8)),A,no-resolve", "10.1.1.1", ("F", 0)),
            ("NOT,((IP-CIDR,10.0.0.0/8)),A", "10.1.1.1", ("F", 1)),
            ("NOT,((IP-CIDR,10.0.0.0/8)),A", "11.1.1.1", ("A", 1)),
        ]
        for (rule, answer, expected) in cases {
            let engine = try Self.engine([rule], strategy: strategy)
            #expect(Self.decide(engine, Self.fake("y.example"), answer: [answer]) == expected, "\(rule)")
        }
    }

    @Test func modeDirectNeverResolves() {
        let engine = RuleEngine(
            rules: [Rule(condition: .ipCIDR(IPPrefix("0.0.0.0/0")!), target: "REJECT")], mode: .direct)
        #expect(Self.decide(engine, Self.fake("y.example"), answer: ["1.1.1.1"]) == ("DIRECT", 0))
    }
}
