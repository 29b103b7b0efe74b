import SluiceConfig
import SluiceNet
import Testing

/// The `sniffer:` section: mihomo's keys, defaults and older forms.
@Suite("sniffer section")
struct SnifferTests {
    static func sniffer(_ yaml: String) throws -> SnifferConfiguration {
        let result = TestSupport.load(yaml)
        #expect(result.errors.isEmpty, "\(result.diagnostics.map(\.description))")
        return try #require(result.configuration).sniffer
    }

    @Test func mihomoExample() throws {
        let yaml = """
            sniffer:
              enable: true
              force-dns-mapping: false
              parse-pure-ip: true
              override-destination: false
              sniff:
                HTTP:
                  ports: [80, 8080-8880]
                  override-destination: true
                TLS:
                  ports: ["443", 8443]
              force-domain:
                - +.v2ex.com
              skip-domain:
                - Mijia Cloud
                - dlg.io.mi.com
                - "*.lan"
              skip-src-address: [192.168.0.3/32, "fd00::/8"]
              skip-dst-address: [10.0.0.1]
            """
        let s = try Self.sniffer(yaml)
        #expect(s.enable && s.isActive)
        #expect(!s.forceDNSMapping && s.parsePureIP && !s.overrideDestination)
        // TLS first, whatever the order in the file.
        #expect(s.protocols.map(\.kind) == [.tls, .http])
        #expect(s.protocols[0].ports == [PortRange(443, 443), PortRange(8443, 8443)])
        #expect(s.protocols[0].overrideDestination == false, "inherits the top-level override-destination")
        #expect(s.protocols[1].ports == [PortRange(80, 80), PortRange(8080, 8880)])
        #expect(s.protocols[1].overrideDestination == true)
        #expect(s.protocolFor(port: 8443)?.kind == .tls)
        #expect(s.protocolFor(port: 8500)?.kind == .http)
        #expect(s.protocolFor(port: 22) == nil)
        #expect(s.forceDomain == [.suffix("v2ex.com")])
        #expect(s.skipDomain == [.exact("mijia cloud"), .exact("dlg.io.mi.com"), .wildcard("*.lan")])
        #expect(s.skipSourceAddress.map(\.description) == ["192.168.0.3/32", "fd00::/8"])
        #expect(s.skipDestinationAddress.map(\.description) == ["10.0.0.1/32"])
    }

    @Test func defaults() throws {
        let s = try Self.sniffer("sniffer:\n  enable: true\n  sniff:\n    TLS:\n    http: {}\n")
        #expect(s.overrideDestination && s.forceDNSMapping && s.parsePureIP)
        #expect(
            s.protocols == [
                SniffedProtocol(kind: .tls, ports: [PortRange(443, 443)], overrideDestination: true),
                SniffedProtocol(kind: .http, ports: [PortRange(80, 80)], overrideDestination: true),
            ])
        #expect(SluiceConfiguration().sniffer.isActive == false)
        #expect(try Self.sniffer("sniffer:\n  enable: false\n  sniff: {TLS: {}}\n").isActive == false)
    }

    @Test func olderSniffingForm() throws {
        let s = try Self.sniffer(
            "sniffer:\n  enable: true\n  sniffing: [tls, HTTP]\n  port-whitelist: [443, 80, 8000-9000]\n")
        #expect(s.protocols.map(\.kind) == [.tls, .http])
        #expect(s.protocols[1].ports == [PortRange(443, 443), PortRange(80, 80), PortRange(8000, 9000)])
        let d = try Self.sniffer("sniffer:\n  enable: true\n  sniffing: [http]\n")
        #expect(d.protocols == [SniffedProtocol(kind: .http, ports: [PortRange(80, 80)], overrideDestination: true)])
    }

    @Test func quicAndUnsupportedListsWarn() throws {
        let yaml = """
            sniffer:
              enable: true
              sniff:
                QUIC:
                  ports: [443]
                TLS: {ports: [443]}
              skip-domain: ["rule-set:cn", "geosite:cn"]
              skip-dst-address: ["geoip:private"]
            """
        #expect(
            TestSupport.messages(yaml) == [
                "t.yaml:4:5: warning: sniffer.sniff.QUIC: QUIC sniffing is not supported by sluice; ignored",
                "t.yaml:7:17: warning: sniffer.skip-domain[0]: \"rule-set:cn\": rule sets and geosite are not supported in sniffer lists yet; skipped",
                "t.yaml:7:32: warning: sniffer.skip-domain[1]: \"geosite:cn\": rule sets and geosite are not supported in sniffer lists yet; skipped",
                "t.yaml:8:22: warning: sniffer.skip-dst-address[0]: \"geoip:private\": rule sets and geoip are not supported in sniffer lists yet; skipped",
            ])
        #expect(try Self.sniffer(yaml).protocols.map(\.kind) == [.tls])
    }

    @Test func errorsSayWhere() {
        let yaml = """
            sniffer:
              enable: maybe
              sniff:
                SSH: {ports: [22]}
                TLS:
                  ports: [443, 0, 9000-8000, x]
                  override: true
              force-domain: ["bad..name"]
              skip-src-address: [10.0.0.0/33]
            """
        #expect(
            TestSupport.messages(yaml) == [
                "t.yaml:2:11: sniffer.enable: expected a boolean (true or false), got \"maybe\"",
                "t.yaml:4:5: sniffer.sniff.SSH: unknown sniffer \"SSH\"; expected TLS, HTTP or QUIC",
                "t.yaml:6:20: sniffer.sniff.TLS.ports[1]: expected a port (1-65535) or a range such as 8080-8880, got \"0\"",
                "t.yaml:6:23: sniffer.sniff.TLS.ports[2]: expected a port (1-65535) or a range such as 8080-8880, got \"9000-8000\"",
                "t.yaml:6:34: sniffer.sniff.TLS.ports[3]: expected a port (1-65535) or a range such as 8080-8880, got \"x\"",
                "t.yaml:7:7: warning: sniffer.sniff.TLS.override: unknown key; ignored (check the spelling)",
                "t.yaml:8:18: sniffer.force-domain[0]: expected a domain pattern such as example.com, *.lan, +.example.com or .example.com, got \"bad..name\"",
                "t.yaml:9:22: sniffer.skip-src-address[0]: expected an IP prefix such as 10.0.0.0/8 or fd00::/8, got \"10.0.0.0/33\"",
            ])
    }

    @Test func enabledWithNothingToSniffWarns() {
        #expect(
            TestSupport.messages("sniffer:\n  enable: true\n") == [
                "t.yaml:2:3: warning: sniffer: sniffer is enabled but sniffs nothing; add sniff: {TLS: ..., HTTP: ...}"
            ])
    }
}
