import SluiceConfig
import SluiceNet
import Testing

/// The `tun:` section, DNS section and their cross-checks.
@Suite("tun and dns")
struct TunSectionTests {
    /// mihomo's gvisor and mixed stacks load and run on sluice's system stack, with one warning saying so.
    @Test func userSpaceStacksRunTheSystemStack() throws {
        for stack in ["gvisor", "mixed", "Mixed"] {
            let result = TestSupport.load("tun:\n  stack: \(stack)\n")
            #expect(try #require(result.configuration).tun.stack == .system)
            #expect(
                result.diagnostics.map(\.description) == [
                    "t.yaml:2:10: warning: tun.stack: \"\(stack)\" is not implemented by sluice; running its \"system\" stack"
                ])
        }
        #expect(TestSupport.messages("tun:\n  stack: system\n") == [])
        #expect(
            TestSupport.messages("tun:\n  stack: lwip\n") == [
                "t.yaml:2:10: tun.stack: expected system, gvisor or mixed (sluice runs \"system\" for all three), got \"lwip\""
            ])
    }

    @Test func deviceNames() throws {
        #expect(try #require(TestSupport.load("tun:\n  device: utun-proxy\n").configuration).tun.device == "utun-proxy")
        #expect(TestSupport.messages("tun:\n  device: a-very-long-name-0\n").count == 1)
        #expect(TestSupport.messages("tun:\n  device: a/b\n").count == 1)
        #expect(try #require(TestSupport.load("tun:\n  device-url: dev://tun7\n").configuration).tun.device == "tun7")
        let fd = try #require(TestSupport.load("tun:\n  device-url: fd://5\n").configuration)
        #expect(fd.tun.inheritedFileDescriptor == 5)
        #expect(
            TestSupport.messages("tun:\n  device: x\n  device-url: fd://5\n") == [
                "t.yaml:3:15: tun.device-url: conflicts with tun.device (line 2); set only one"
            ])
        #expect(TestSupport.messages("tun:\n  device-url: fd://1\n").count == 1)
        #expect(TestSupport.messages("tun:\n  device-url: http://x\n").count == 1)
    }

    @Test func addressesAndRoutes() throws {
        let yaml = """
            tun:
              inet4-address: 10.0.0.1/30
              inet6-address: [fd00::1/126]
              route-address: [0.0.0.0/1]
              inet4-route-address: [128.0.0.0/1]
              inet6-route-address: ["::/1"]
              route-exclude-address: [10.0.0.0/8]
              inet6-route-exclude-address: [fc00::/7]
            """
        let tun = try #require(TestSupport.load(yaml).configuration).tun
        #expect(tun.inet4Address.map(\.description) == ["10.0.0.1/30"])
        #expect(tun.routeAddress.map(\.description) == ["0.0.0.0/1", "128.0.0.0/1", "::/1"])
        #expect(tun.routeExcludeAddress.map(\.description) == ["10.0.0.0/8", "fc00::/7"])
        #expect(
            TestSupport.messages("tun:\n  inet4-address: fd00::1/64\n") == [
                "t.yaml:2:18: tun.inet4-address: expected an IPv4 prefix, got fd00::1/64"
            ])
        #expect(
            TestSupport.messages("tun:\n  route-address: [1.2.3.4/33]\n") == [
                "t.yaml:2:19: tun.route-address[0]: expected an IP prefix such as 10.0.0.0/8 or fd00::/8, got \"1.2.3.4/33\""
            ])
    }

    @Test func dnsHijack() throws {
        let yaml =
            "tun:\n  dns-hijack: [any:53, tcp://any:53, udp://1.2.3.4:53, 0.0.0.0:5353, \"[::]:53\"]\n"
            + "  dns-listen: 172.19.0.2:53\n"
        let hijack = try #require(TestSupport.load(yaml).configuration).tun.dnsHijack
        #expect(
            hijack.map(\.description) == [
                "any:53", "tcp://any:53", "udp://1.2.3.4:53", "any:5353", "any:53", "172.19.0.2:53",
            ])
        #expect(TestSupport.messages("tun:\n  dns-hijack: [quic://any:53]\n").count == 1)
    }

    @Test func routingMark() throws {
        #expect(try #require(TestSupport.load("routing-mark: 6666\n").configuration).tun.routingMark == 6666)
        #expect(try #require(TestSupport.load("tun:\n  routing-mark: 0x10\n").configuration).tun.routingMark == 16)
        #expect(
            TestSupport.messages("routing-mark: 1\ntun:\n  routing-mark: 2\n") == [
                "t.yaml:1:15: warning: routing-mark: tun.routing-mark is also set; using tun.routing-mark (2)"
            ])
    }

    @Test func autoRedirectWarns() {
        #expect(
            TestSupport.messages("tun:\n  auto-redirect: true\n") == [
                "t.yaml:2:3: warning: tun.auto-redirect: not supported by sluice (it routes with policy rules); ignored"
            ])
    }

    @Test func dnsUpstreams() throws {
        let yaml = """
            dns:
              enable: true
              listen: 0.0.0.0:1053
              nameserver: [1.1.1.1, "udp://8.8.8.8:5353", "tcp://[2606:4700::1111]", "tls://1.1.1.1", "https://x/dns"]
              nameserver-policy:
                "+.corp.example": 10.0.0.53
                "geosite:cn": 223.5.5.5
            """
        let result = TestSupport.load(yaml)
        let dns = try #require(result.configuration).dns
        #expect(
            dns.nameserver.map(\.description) == [
                "udp://1.1.1.1:53", "udp://8.8.8.8:5353", "tcp://[2606:4700::1111]:53",
            ])
        #expect(result.warnings.count == 3)
        #expect(
            result.warnings.first?.description
                == "t.yaml:4:74: warning: dns.nameserver[3]: tls:// upstreams are not supported yet; this upstream is ignored"
        )
        #expect(dns.nameserverPolicy.map(\.pattern) == [.suffix("corp.example")])
    }

    @Test func fakeIPFilterPatterns() throws {
        let yaml = """
            rule-providers:
              lan: {type: inline, behavior: domain, payload: [+.lan]}
            dns:
              fake-ip-filter: ["*.lan", "+.example.com", ".example.org", exact.example, "rule-set:lan"]
            """
        let dns = try #require(TestSupport.load(yaml).configuration).dns
        #expect(
            dns.fakeIPFilter == [
                .wildcard("*.lan"), .suffix("example.com"), .subdomains("example.org"),
                .exact("exact.example"), .ruleSet("lan"),
            ])
        #expect(
            TestSupport.messages("dns:\n  fake-ip-filter: [\"rule-set:nope\"]\n") == [
                "t.yaml:2:20: dns.fake-ip-filter[0]: no rule provider named \"nope\"; define it under rule-providers"
            ])
        #expect(TestSupport.messages("dns:\n  fake-ip-filter: [\"a..b\"]\n").count == 1)
    }

    @Test func crossChecks() {
        #expect(
            TestSupport.messages("dns:\n  enable: true\n") == [
                "t.yaml:1:1: warning: dns: dns is enabled but nothing will reach it; set dns.listen or enable tun with tun.dns-hijack"
            ])
        let overlap = "tun:\n  inet4-address: 198.18.0.1/30\ndns:\n  enhanced-mode: fake-ip\n"
        #expect(
            TestSupport.messages(overlap) == [
                "t.yaml:3:1: dns.fake-ip-range: 198.18.0.1/16 overlaps tun.inet4-address 198.18.0.1/30; choose ranges that do not overlap"
            ])
    }

    @Test func hosts() throws {
        let yaml = "hosts:\n  a.lan: 10.0.0.1\n  b.lan: [10.0.0.2, fd00::2]\n  c.lan: a.lan\n  '+.d.lan': 10.0.0.4\n"
        let hosts = try #require(TestSupport.load(yaml).configuration).hosts
        #expect(hosts.map(\.name) == ["a.lan", "b.lan", "c.lan", "+.d.lan"])
        #expect(hosts[2].value == .alias("a.lan"))
        #expect(hosts[1].value == .addresses([IPAddress("10.0.0.2")!, IPAddress("fd00::2")!]))
    }
}
