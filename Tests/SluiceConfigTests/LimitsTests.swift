import SluiceConfig
import Testing

/// `limits:` (a sluice extension): defaults, values, ranges and unknown keys.
@Suite("limits")
struct LimitsTests {
    @Test("an empty file has the documented defaults")
    func defaults() throws {
        let limits = try #require(TestSupport.load("").configuration).limits
        #expect(limits.maxConnections == 10_000)
        #expect(limits.udpMaxFlows == 65_536)
        #expect(limits.dnsMaxInFlight == 1_024)
    }

    @Test("values in range are taken, also in a flow mapping")
    func values() throws {
        let yaml = """
            limits:
              max-connections: 3
              udp-max-flows: 0x100
              dns-max-in-flight: 8
            """
        let limits = try #require(TestSupport.load(yaml).configuration).limits
        #expect(limits.maxConnections == 3)
        #expect(limits.udpMaxFlows == 256)
        #expect(limits.dnsMaxInFlight == 8)
        let flow = try #require(
            TestSupport.load("limits: {max-connections: 64512, dns-max-in-flight: 65536}\n").configuration)
        #expect(flow.limits.maxConnections == 64_512 && flow.limits.dnsMaxInFlight == 65_536)
        #expect(TestSupport.messages("limits: {max-connections: 64512, dns-max-in-flight: 65536}\n").isEmpty)
    }

    @Test("out of range, wrong type and unknown keys are reported at their position")
    func diagnostics() {
        #expect(
            TestSupport.messages("limits:\n  max-connections: 0\n") == [
                "t.yaml:2:20: limits.max-connections: expected an integer 1...64512, got \"0\""
            ])
        #expect(
            TestSupport.messages("limits:\n  max-connections: 64513\n") == [
                "t.yaml:2:20: limits.max-connections: expected an integer 1...64512, got \"64513\""
            ])
        #expect(
            TestSupport.messages("limits:\n  udp-max-flows: lots\n") == [
                "t.yaml:2:18: limits.udp-max-flows: expected an integer 1...1048576, got \"lots\""
            ])
        #expect(
            TestSupport.messages("limits:\n  dns-max-in-flight: -1\n") == [
                "t.yaml:2:22: limits.dns-max-in-flight: expected an integer 1...65536, got \"-1\""
            ])
        #expect(
            TestSupport.messages("limits:\n  max-conections: 5\n") == [
                "t.yaml:2:3: warning: limits.max-conections: unknown key; ignored (check the spelling)"
            ])
        #expect(
            TestSupport.load("limits:\n  max-connections: 0\n").configuration == nil,
            "an out-of-range limit is an error")
        #expect(
            TestSupport.messages("limits: 5\n") == [
                "t.yaml:1:9: limits: expected a mapping of keys to values, got \"5\""
            ])
    }
}
