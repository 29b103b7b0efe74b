import SluiceConfig
import SluiceNet
import SluiceOutbounds
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
        let config = ConfigLoader.load(yaml: yaml, fileName: "rules.yaml", catalog: OutboundRegistry.catalog)
            .configuration!
        return RuleEngine(configuration: config)
    }()

    static func tcp(_ dst: String, _ port: UInt16 = 443, from src: String = "192.168.1.2", host: String? = nil)
        -> ConnectionMetadata
    {
        ConnectionMetadata(
            network: .tcp, source: IPAddress(src)!, sourcePort: 40000, destination: IPAddress(dst)!,
            destinationPort: port, host: host)
    }

    static func udp(_ dst: String, _ port: UInt16) -> ConnectionMetadata {
        ConnectionMetadata(
            network: .udp, source: IPAddress("192.168.1.2")!, sourcePort: 40000, destination: IPAddress(dst)!,
            destinationPort: port)
    }

    @Test(
        "table of decisions",
        arguments: [
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
        #expect(
            Self.engine.decide(m)
                == RuleDecision(
                    target: "REJECT", rule: "DOMAIN-SUFFIX,example.com", condition: .domainSuffix("example.com")))
    }

    @Test("mode direct ignores the rules; no MATCH means DIRECT")
    func modes() {
        let direct = RuleEngine(rules: [Rule(condition: .match, target: "REJECT")], mode: .direct)
        #expect(direct.decide(Self.tcp("1.2.3.4")).target == "DIRECT")
        let empty = RuleEngine(rules: [])
        #expect(empty.decide(Self.tcp("1.2.3.4")) == RuleDecision(target: "DIRECT", rule: "no rule matched"))
    }
}

@Suite("WireGuard peer endpoints go DIRECT")
struct WireGuardEndpointRuleTests {
    @Test(
        "UDP to a link's peer endpoint (address or name, that port) is DIRECT ahead of the user's rules; other traffic is not"
    )
    func endpoints() throws {
        let key = String(repeating: "A", count: 43) + "="
        let yaml = """
            proxies:
              - {name: far, type: socks5, server: 127.0.0.1, port: 1080}
            rules:
              - MATCH,far
            wireguard:
              - name: wg0
                private-key: "\(key)"
                peers:
                  - {public-key: "\(key)", endpoint: "198.51.100.7:51820", allowed-ips: [10.0.0.2/32]}
                  - {public-key: "\(key)", endpoint: "VPN.example.test:51821", allowed-ips: [10.0.0.3/32]}
            """
        let result = ConfigLoader.load(yaml: yaml, fileName: "wg.yaml", catalog: OutboundRegistry.catalog)
        var config = try #require(result.configuration, "\(result.diagnostics)")
        #expect(config.wireguardEndpointRules.count == 2)
        config.rules = config.wireguardEndpointRules + config.rules
        let engine = RuleEngine(configuration: config)
        func udp(_ dst: String, _ port: UInt16, host: String? = nil) -> ConnectionMetadata {
            ConnectionMetadata(
                network: .udp, source: IPAddress("192.168.1.2")!, sourcePort: 40000, destination: IPAddress(dst)!,
                destinationPort: port, host: host)
        }
        #expect(engine.decide(udp("198.51.100.7", 51820)).target == "DIRECT")
        #expect(engine.decide(udp("198.51.100.7", 51821)).target == "far", "another port")
        #expect(engine.decide(RuleEngineTests.tcp("198.51.100.7", 51820)).target == "far", "TCP")
        #expect(engine.decide(udp("198.18.0.9", 51821, host: "vpn.example.test")).target == "DIRECT", "by name")
        #expect(engine.decide(udp("203.0.113.1", 51821)).target == "far")
    }
}
