import SluiceConfig
import SluiceNet
import SluiceRules
import Testing

/// First-match semantics over the rule kinds the data plane decides from packet facts.
@Suite("RuleEngine")
struct RuleEngineTests {
    static let engine: RuleEngine = {
        let yaml = """
            rules:
              - IP-CIDR,10.0.0.0/8,REJECT
              - IP-CIDR6,fd00::/8,REJECT-DROP
              - AND,((NETWORK,UDP),(DST-PORT,53)),DIRECT
              - DST-PORT,8000-8080/9000,REJECT
              - NETWORK,UDP,REJECT-DROP
              - DOMAIN-SUFFIX,example.com,REJECT
              - NOT,((SRC-IP-CIDR,192.168.0.0/16)),REJECT
              - MATCH,DIRECT
            """
        let config = ConfigLoader.load(yaml: yaml, fileName: "rules.yaml").configuration!
        return RuleEngine(configuration: config)
    }()

    static func tcp(_ dst: String, _ port: UInt16 = 443, from src: String = "192.168.1.2", host: String? = nil) -> ConnectionMetadata {
        ConnectionMetadata(
            network: .tcp, source: IPAddress(src)!, sourcePort: 40000, destination: IPAddress(dst)!, destinationPort: port, host: host)
    }

    static func udp(_ dst: String, _ port: UInt16) -> ConnectionMetadata {
        ConnectionMetadata(network: .udp, source: IPAddress("192.168.1.2")!, sourcePort: 40000, destination: IPAddress(dst)!, destinationPort: port)
    }

    @Test("table of decisions", arguments: [
        (tcp("10.1.2.3"), "REJECT", "IP-CIDR,10.0.0.0/8"),
        (tcp("::ffff:10.1.2.3"), "REJECT", "IP-CIDR,10.0.0.0/8"),  // v4-mapped v6 matches the v4 rule
        (tcp("11.0.0.1"), "DIRECT", "MATCH"),
        (tcp("fd12::1"), "REJECT-DROP", "IP-CIDR6,fd00::/8"),
        (udp("8.8.8.8", 53), "DIRECT", "AND,((NETWORK,UDP),(DST-PORT,53))"),
        (udp("8.8.8.8", 123), "REJECT-DROP", "NETWORK,UDP"),
        (tcp("1.1.1.1", 8000), "REJECT", "DST-PORT,8000-8080/9000"),
        (tcp("1.1.1.1", 8080), "REJECT", "DST-PORT,8000-8080/9000"),
        (tcp("1.1.1.1", 8081), "DIRECT", "MATCH"),
        (tcp("1.1.1.1", 9000), "REJECT", "DST-PORT,8000-8080/9000"),
        (tcp("1.1.1.1", host: "WWW.Example.COM."), "REJECT", "DOMAIN-SUFFIX,example.com"),
        (tcp("1.1.1.1", host: "notexample.com"), "DIRECT", "MATCH"),
        (tcp("1.1.1.1", from: "172.16.0.1"), "REJECT", "NOT,((SRC-IP-CIDR,192.168.0.0/16))"),
    ])
    func decisions(metadata: ConnectionMetadata, target: String, rule: String) {
        let decision = Self.engine.decide(metadata)
        #expect(decision.target == target, "\(metadata)")
        #expect(decision.rule == rule, "\(metadata)")
    }

    @Test("IP rules do not apply to a fake-IP destination; domain rules do")
    func fakeIP() {
        var m = Self.tcp("10.1.2.3", host: "a.example.com")
        m.destinationIsFake = true
        #expect(Self.engine.decide(m) == RuleDecision(target: "REJECT", rule: "DOMAIN-SUFFIX,example.com"))
    }

    @Test("mode direct ignores the rules; no MATCH means DIRECT")
    func modes() {
        let direct = RuleEngine(rules: [Rule(condition: .match, target: "REJECT")], mode: .direct)
        #expect(direct.decide(Self.tcp("1.2.3.4")).target == "DIRECT")
        let empty = RuleEngine(rules: [])
        #expect(empty.decide(Self.tcp("1.2.3.4")) == RuleDecision(target: "DIRECT", rule: "no rule matched"))
    }
}
