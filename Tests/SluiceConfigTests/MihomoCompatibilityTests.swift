import SluiceConfig
import SluiceNet
import Testing

/// Shapes from real mihomo configs that mihomo v1.19.32 accepts (issue 19): each loads, with one warning for
/// whatever sluice skips, and means what it means in mihomo where sluice can do it.
@Suite("mihomo compatibility")
struct MihomoCompatibilityTests {
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
