import SluiceConfig
import SluiceNet
import Testing

/// `rules:` and `rule-providers:`.
@Suite("rules")
struct RulesTests {
    private let header = """
        proxies:
          - {name: P, type: direct}
          - {name: V, type: vmess}
        rule-providers:
          ads: {type: inline, behavior: domain, payload: [+.ads.example]}
          bin: {type: http, behavior: domain, format: mrs, url: "https://x/y.mrs"}
        rules:

        """

    private func rules(_ lines: [String]) -> ConfigLoadResult {
        TestSupport.load(header + lines.map { "  - \"\($0)\"\n" }.joined())
    }

    @Test func parsesEveryType() throws {
        let result = rules([
            "DOMAIN,Example.COM,P", "DOMAIN-SUFFIX,example.org,DIRECT", "DOMAIN-KEYWORD,goog,REJECT",
            "DOMAIN-REGEX,^a[0-9]+\\\\.b$,P", "IP-CIDR,10.0.0.0/8,DIRECT,no-resolve", "IP-CIDR6,fd00::/8,P",
            "IP-SUFFIX,0.0.0.5/8,P", "SRC-IP-CIDR,192.168.1.0/24,P", "SRC-PORT,1000-2000,P",
            "DST-PORT,80/443/8000-8080,P",
            "IN-PORT,7890,P", "NETWORK,UDP,P", "PROCESS-NAME,curl,P", "PROCESS-PATH,/usr/bin/curl,P", "UID,1000,P",
            "RULE-SET,ads,REJECT-DROP", "AND,((DOMAIN,a.com),(NETWORK,UDP)),P",
            "OR,((NOT,((NETWORK,tcp))),(DST-PORT,53)),P", "MATCH,P",
        ])
        #expect(result.errors.isEmpty, "\(result.errors)")
        #expect(result.warnings.count == 2)  // the vmess proxy and the mrs provider of the header
        let parsed = try #require(result.configuration).rules
        #expect(parsed.count == 19)
        #expect(parsed[0].condition == .domain("example.com"))
        #expect(parsed[3].condition == .domainRegex("^a[0-9]+\\.b$"))
        #expect(parsed[4] == Rule(condition: .ipCIDR(IPPrefix("10.0.0.0/8")!), target: "DIRECT", noResolve: true))
        #expect(
            parsed[9].condition == .destinationPort([PortRange(80, 80), PortRange(443, 443), PortRange(8000, 8080)]))
        #expect(parsed[11].condition == .network(.udp))
        #expect(parsed[14].condition == .uid([UIDRange(1000, 1000)]))
        #expect(parsed[16].condition == .and([.domain("a.com"), .network(.udp)]))
        #expect(parsed[17].condition == .or([.not(.network(.tcp)), .destinationPort([PortRange(53, 53)])]))
        #expect(parsed[18] == Rule(condition: .match, target: "P"))
    }

    @Test func unsupportedAndLeftOut() throws {
        let result = rules([
            "GEOIP,CN,DIRECT", "DOMAIN,a.com,V", "RULE-SET,bin,P", "AND,((GEOSITE,x),(NETWORK,udp)),P",
            "DOMAIN,b.com,PASS", "MATCH,DIRECT",
        ])
        #expect(result.errors.isEmpty)
        #expect(
            result.warnings.map(\.message).suffix(5) == [
                "rule type GEOIP is not supported by sluice; rule skipped",
                "target \"V\" was left out; this rule rejects what it matches (sluice fails closed: never DIRECT in its place)",
                "rule provider \"bin\" was left out; rule skipped",
                "rule type GEOSITE is not supported by sluice; rule skipped",
                "target PASS is not supported by sluice (it only continues matching); rule skipped",
            ])
        // The rule whose target was left out stays, and rejects: skipping it would let a.com fall to MATCH,DIRECT.
        #expect(
            try #require(result.configuration).rules == [
                Rule(condition: .domain("a.com"), target: "REJECT"), Rule(condition: .match, target: "DIRECT"),
            ])
    }

    @Test func errorsNameTheRule() {
        let result = rules([
            "DOMAIN,a.com,Nowhere", "IP-CIDR,1.2.3.4/33,P", "DST-PORT,2000-1000,P", "NETWORK,icmp,P",
            "AND,((DOMAIN,a.com),(NETWORK,UDP),P", "FOO,bar,P", "RULE-SET,none,P", "DOMAIN-REGEX,(,P", "MATCH",
            "NOT,((DOMAIN,a),(DOMAIN,b)),P", "DOMAIN,a.com,P,bogus",
        ])
        let errors = result.errors.map { "\($0.keyPath): \($0.message)" }
        #expect(
            errors == [
                "rules[0]: no proxy or group named \"Nowhere\"; the target must be a proxy, a group, DIRECT, REJECT or REJECT-DROP",
                "rules[1]: IP-CIDR: expected an IP prefix such as 10.0.0.0/8, got \"1.2.3.4/33\"",
                "rules[2]: DST-PORT: expected a number, a range such as 1000-2000, or several joined by '/', got \"2000-1000\"",
                "rules[3]: NETWORK: expected tcp or udp, got \"icmp\"",
                "rules[4]: unbalanced parentheses: a '(' is never closed",
                "rules[5]: unknown rule type \"FOO\"",
                "rules[6]: RULE-SET: no rule provider named \"none\"; define it under rule-providers",
                "rules[7]: DOMAIN-REGEX: not a valid regular expression: \"(\"",
                "rules[8]: expected MATCH,TARGET, got \"MATCH\"",
                "rules[9]: NOT takes exactly one condition, got 2",
                "rules[10]: unknown rule option \"bogus\"; expected no-resolve or src",
            ])
        #expect(result.errors.first?.line == 8)
        #expect(result.errors.first?.column == 5)
    }

    @Test func deeplyNestedLogicalRuleIsRefused() {
        let nested = String(repeating: "NOT,((", count: 100) + "NETWORK,tcp" + String(repeating: "))", count: 100)
        let result = rules([nested + ",P"])
        #expect(result.hasErrors)
    }

    @Test func providers() throws {
        let yaml = """
            rule-providers:
              f: {type: file, behavior: ipcidr, format: text, path: /etc/sluice/f.txt}
              h: {type: http, behavior: classical, interval: 3600}
              i: {type: inline, behavior: classical, payload: ["DOMAIN,a.com", "BOGUS,x"]}
              j: {type: ftp, behavior: domain}
            """
        let messages = TestSupport.messages(yaml)
        #expect(
            messages == [
                "t.yaml:2:57: warning: rule-providers.f.path: the rule provider file \"/etc/sluice/f.txt\" does not "
                    + "exist; provider \"f\" is empty (its rules match nothing) until the file exists and the "
                    + "configuration is reloaded",
                "t.yaml:3:6: rule-providers.h: missing required key \"url\"",
                "t.yaml:4:68: rule-providers.i.payload[1]: unknown rule type \"BOGUS\"",
                "t.yaml:5:13: rule-providers.j.type: expected one of file, http, inline; got \"ftp\"",
            ])
        let ok = try #require(
            TestSupport.load("rule-providers:\n  i: {type: inline, behavior: domain, payload: [+.a.com]}\n")
                .configuration)
        #expect(
            ok.ruleProviders == [
                RuleProvider(
                    name: "i", source: .inline(payload: ["+.a.com"]), behavior: .domain,
                    contents: .domain([.suffix("a.com")]))
            ])
    }
}
