import SluiceConfig
import SluiceNet
import Testing

/// Shapes from real mihomo configs that mihomo v1.19.32 accepts (issue 19): each loads, with one warning for
/// whatever sluice skips, and means what it means in mihomo where sluice can do it.
@Suite("mihomo compatibility")
struct MihomoCompatibilityTests {
    // MARK: dns.listen

    /// `":1053"` is Go's net.Listen(":1053"): every address of both families, bound by sluice as [::] without
    /// IPV6_V6ONLY.
    @Test func dnsListenWithoutHostIsEveryAddress() throws {
        for port in [53, 1053] {
            let result = TestSupport.load("dns:\n  enable: true\n  listen: \":\(port)\"\n  nameserver: [1.1.1.1]\n")
            #expect(result.diagnostics.isEmpty)
            let configuration = try #require(result.configuration)
            let listen = try #require(configuration.dns.listen)
            #expect(listen == SocketEndpoint(host: .address(.v6(.any)), port: UInt16(port)))
        }
        #expect(TestSupport.messages("dns:\n  listen: \":0\"\n").count == 1)
        #expect(TestSupport.messages("dns:\n  listen: \":x\"\n").count == 1)
    }

    // MARK: fake-ip-filter

    @Test func geositeAndRuleSetListsInAnyCase() throws {
        let yaml = """
            rule-providers:
              a: {type: inline, behavior: domain, payload: [a.com]}
              b: {type: inline, behavior: domain, payload: [b.com]}
            dns:
              fake-ip-filter: ["GEOSITE:cn,private", "RULE-SET:a,b", "Rule-Set:a", "+.lan"]
            """
        let result = TestSupport.load(yaml)
        let dns = try #require(result.configuration).dns
        #expect(dns.fakeIPFilter == [.ruleSet("a"), .ruleSet("b"), .ruleSet("a"), .suffix("lan")])
        #expect(
            result.diagnostics.map(\.description) == [
                "t.yaml:5:20: warning: dns.fake-ip-filter[0]: geosite is not supported by sluice (no geosite data); geosite:cn skipped",
                "t.yaml:5:20: warning: dns.fake-ip-filter[0]: geosite is not supported by sluice (no geosite data); geosite:private skipped",
            ])
        // Blacklist: skipped names get fake addresses, as if unlisted.
        #expect(dns.fakeIPFilterWantsFake("x.cn"))
        #expect(!dns.fakeIPFilterWantsFake("printer.LAN"))
        #expect(TestSupport.messages("rule-providers: {}\ndns:\n  fake-ip-filter: [\"rule-set:a,nope\"]\n").count == 1)
    }

    /// In whitelist mode a skipped entry would make its names real; sluice fakes every name instead, and says so.
    @Test func whitelistWithASkippedEntryFakesEverything() throws {
        let yaml = """
            dns:
              fake-ip-filter-mode: whitelist
              fake-ip-filter: ["geosite:gfw", "+.google.com"]
            """
        let result = TestSupport.load(yaml)
        let dns = try #require(result.configuration).dns
        #expect(result.warnings.count == 2)
        #expect(result.warnings.contains { $0.message.contains("every name gets a fake address instead") })
        #expect(dns.fakeIPFilterMode == .blacklist && dns.fakeIPFilter.isEmpty)
        #expect(dns.fakeIPFilterWantsFake("twitter.com") && dns.fakeIPFilterWantsFake("www.google.com"))
    }

    @Test func ruleModeEntriesDecideInOrder() throws {
        let yaml = """
            rule-providers:
              cn: {type: inline, behavior: domain, payload: [+.cn]}
            dns:
              fake-ip-filter-mode: Rule
              fake-ip-filter:
                - DOMAIN,time.apple.com,REAL-IP
                - DOMAIN-SUFFIX,lan,real-ip
                - GEOSITE,private,real-ip
                - DOMAIN-KEYWORD,stun,real-ip
                - DOMAIN-SUFFIX,corp.lan,fake-ip
                - MATCH,fake-ip
            """
        let result = TestSupport.load(yaml)
        let dns = try #require(result.configuration).dns
        #expect(dns.fakeIPFilterMode == .rule)
        #expect(
            result.diagnostics.map(\.description) == [
                "t.yaml:8:7: warning: dns.fake-ip-filter[2]: GEOSITE is not supported by sluice (no geosite data); "
                    + "\"GEOSITE,private,real-ip\" skipped (its names go on to the entries below)"
            ])
        #expect(dns.fakeIPFilterRules.count == 5)
        #expect(!dns.fakeIPFilterWantsFake("time.apple.com"))
        #expect(!dns.fakeIPFilterWantsFake("nas.lan"))
        #expect(!dns.fakeIPFilterWantsFake("a.corp.lan"))  // the earlier DOMAIN-SUFFIX,lan wins
        #expect(!dns.fakeIPFilterWantsFake("stun.example.net"))
        #expect(dns.fakeIPFilterWantsFake("example.com"))
    }

    /// A skipped `fake-ip` entry must not let its names fall through to a later `real-ip`: it becomes MATCH,fake-ip.
    @Test func ruleModeSkippedFakeEntryStopsThere() throws {
        let yaml = """
            rule-providers:
              proxy: {type: inline, behavior: domain, payload: [+.google.com]}
            dns:
              fake-ip-filter-mode: rule
              fake-ip-filter:
                - DOMAIN-SUFFIX,lan,real-ip
                - RULE-SET,proxy,fake-ip
                - GEOSITE,gfw,fake-ip
                - MATCH,real-ip
            """
        let result = TestSupport.load(yaml)
        let dns = try #require(result.configuration).dns
        #expect(result.warnings.count == 2)
        #expect(result.warnings.allSatisfy { $0.message.contains("treated as MATCH,fake-ip") })
        #expect(!dns.fakeIPFilterWantsFake("nas.lan"))
        #expect(dns.fakeIPFilterWantsFake("www.google.com"))
        #expect(dns.fakeIPFilterWantsFake("baidu.com"))
    }

    @Test func ruleModeErrorsMatchMihomo() {
        let base = "dns:\n  fake-ip-filter-mode: rule\n  fake-ip-filter:\n    - "
        #expect(
            TestSupport.messages(base + "DOMAIN,a.com,direct\n") == [
                "t.yaml:4:7: dns.fake-ip-filter[0]: the action must be real-ip or fake-ip, got \"direct\""
            ])
        #expect(TestSupport.messages(base + "IP-CIDR,1.0.0.0/8,real-ip\n").count == 1)
        #expect(TestSupport.messages(base + "+.lan\n").count == 1)
        #expect(TestSupport.messages(base + "RULE-SET,nope,real-ip\n").count == 1)
        #expect(TestSupport.messages("dns:\n  fake-ip-filter-mode: greylist\n").count == 1)
    }

    // MARK: nameserver-policy

    @Test func nameserverPolicyKeysAreLists() throws {
        let yaml = """
            rule-providers:
              cn-domain: {type: inline, behavior: domain, payload: [+.cn]}
              private-domain: {type: inline, behavior: domain, payload: [+.lan]}
            dns:
              nameserver-policy:
                "geosite:gfw,geolocation-!cn": [8.8.8.8]
                "rule-set:cn-domain,private-domain": 223.5.5.5
                "+.a.com,+.b.com": 1.1.1.1
                "RULE-SET:cn-domain": 119.29.29.29
            """
        let result = TestSupport.load(yaml)
        let dns = try #require(result.configuration).dns
        #expect(
            dns.nameserverPolicy.map(\.pattern) == [
                .ruleSet("cn-domain"), .ruleSet("private-domain"), .suffix("a.com"), .suffix("b.com"),
                .ruleSet("cn-domain"),
            ])
        #expect(
            result.diagnostics.map(\.description) == [
                "t.yaml:6:5: warning: dns.nameserver-policy.geosite:gfw,geolocation-!cn: geosite is not supported by sluice (no geosite data); geosite:gfw skipped",
                "t.yaml:6:5: warning: dns.nameserver-policy.geosite:gfw,geolocation-!cn: geosite is not supported by sluice (no geosite data); geosite:geolocation-!cn skipped",
            ])
    }

    // MARK: logical rules

    @Test func logicalPartsTakeOptions() throws {
        let yaml = """
            rules:
              - NOT,((GEOIP,CN,no-resolve)),DIRECT
              - AND,((IP-CIDR,10.0.0.0/8,no-resolve),(DST-PORT,22)),REJECT
              - OR,((IP-CIDR,10.0.0.0/8,no-resolve),(IP-CIDR,192.168.0.0/16)),DIRECT
              - AND,((IP-CIDR,172.16.0.0/12,src),(NETWORK,UDP)),DIRECT
              - AND,((DOMAIN,a.com,bogus),(DST-PORT,443)),REJECT
              - MATCH,DIRECT
            """
        let result = TestSupport.load(yaml)
        let rules = try #require(result.configuration).rules
        #expect(
            result.diagnostics.map(\.description) == [
                "t.yaml:2:5: warning: rules[0]: rule type GEOIP is not supported by sluice; rule skipped",
                "t.yaml:6:5: warning: rules[4]: unknown option \"bogus\" in a part of a logical rule; ignored (as mihomo does)",
            ])
        #expect(rules.count == 5)
        // Every address part says no-resolve: the rule does not resolve.
        #expect(rules[0].noResolve)
        // One address part resolves: the rule resolves (and then every part sees the address), as in mihomo.
        #expect(!rules[1].noResolve)
        #expect(rules[2].condition == .and([.sourceIPCIDR(IPPrefix("172.16.0.0/12")!), .network(.udp)]))
        #expect(!rules[2].noResolve)
        #expect(TestSupport.messages("rules:\n  - AND,((IP-SUFFIX,10.0.0.0/8,src),(NETWORK,UDP)),DIRECT\n").count == 1)
    }
}
