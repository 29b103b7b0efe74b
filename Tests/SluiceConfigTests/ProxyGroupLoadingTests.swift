import SluiceConfig
import Testing

/// The group shapes mihomo accepts (checked with `mihomo -t`, v1.19.32) and how sluice loads them: members from
/// `use:` providers and `include-all*`, `PASS` and `COMPATIBLE` as members, and groups left with no members, which
/// sluice makes unavailable (their traffic is rejected) where mihomo would send it out through `COMPATIBLE`.
@Suite("proxy-groups loading")
struct ProxyGroupLoadingTests {
    static let proxies = """
        proxies:
          - {name: v1, type: vless, server: 192.0.2.1, port: 443, uuid: 6f2a1b7e-8a1c-4c1e-9b1a-1a2b3c4d5e6f}
          - {name: v2, type: vless, server: 192.0.2.2, port: 443, uuid: 6f2a1b7e-8a1c-4c1e-9b1a-1a2b3c4d5e6f}
          - {name: s1, type: ss, server: 192.0.2.3, port: 8388, cipher: aes-128-gcm, password: x}
          - {name: h1, type: http, server: 192.0.2.4, port: 8080}

        """

    static func load(_ groups: String) throws -> (groups: [ProxyGroup], messages: [String]) {
        let result = TestSupport.load(proxies + "proxy-groups:\n" + groups)
        let messages = result.diagnostics.map(\.description)
        let configuration = try #require(result.configuration, "\(messages)")
        return (configuration.proxyGroups, messages.filter { !$0.contains(": proxies[") })
    }

    @Test("a group whose members were all left out loads with no members and is unavailable, never DIRECT")
    func allMembersLeftOut() throws {
        let (groups, messages) = try Self.load("  - {name: Proxy, type: select, proxies: [v1, v2]}\n")
        #expect(groups[0].members == [])
        #expect(
            groups[0].leftOutMembers == [
                ProxyGroup.LeftOutMember(name: "v1", reason: "vless not supported"),
                ProxyGroup.LeftOutMember(name: "v2", reason: "vless not supported"),
            ])
        #expect(
            ProxyGroup.unavailableGroups(groups) == [
                "Proxy": "all 2 members were left out: \"v1\" (vless not supported), \"v2\" (vless not supported)"
            ])
        #expect(
            messages == [
                "t.yaml:7:5: warning: proxy-groups[0]: group \"Proxy\" is unavailable (all 2 members were left out: \"v1\" (vless not supported), \"v2\" (vless not supported)); its connections will be rejected, not sent DIRECT"
            ])
    }

    @Test("use: each provider counts as empty, with one warning per provider naming it")
    func useProviders() throws {
        let (groups, messages) = try Self.load(
            """
              - {name: Sub, type: url-test, use: [sub1, sub2]}
              - {name: Mixed, type: select, proxies: [s1], use: [sub1]}

            """)
        #expect(groups.map(\.members) == [[], ["s1"]])
        #expect(groups.map(\.providers) == [["sub1", "sub2"], ["sub1"]])
        #expect(
            ProxyGroup.unavailableGroups(groups) == ["Sub": "proxy providers are not supported yet: sub1, sub2"])
        #expect(
            messages == [
                "t.yaml:7:5: warning: proxy-groups[0]: group \"Sub\" is unavailable (proxy providers are not supported yet: sub1, sub2); its connections will be rejected, not sent DIRECT",
                "t.yaml:7:39: warning: proxy-groups[0].use[0]: proxy provider \"sub1\" is not supported yet; groups using it get no members from it",
                "t.yaml:7:45: warning: proxy-groups[0].use[1]: proxy provider \"sub2\" is not supported yet; groups using it get no members from it",
            ])
    }

    @Test(
        "include-all, include-all-proxies: every supported proxy; with filters; the left-out ones they would take are named; none found is unavailable"
    )
    func includeAll() throws {
        let (groups, messages) = try Self.load(
            """
              - {name: All, type: select, include-all: true}
              - {name: AllProxies, type: fallback, include-all-proxies: true, proxies: [DIRECT]}
              - {name: Filtered, type: url-test, include-all-proxies: true, filter: "^zz"}
              - {name: NoSS, type: load-balance, include-all: true, exclude-type: "Shadowsocks|direct"}
              - {name: Providers, type: select, include-all-providers: true}
              - {name: OnlyV, type: select, include-all: true, filter: "^v"}
              - {name: NoVless, type: select, include-all: true, exclude-type: "Vless"}

            """)
        #expect(groups.map(\.members) == [["s1", "h1"], ["DIRECT", "s1", "h1"], [], ["h1"], [], [], ["s1", "h1"]])
        #expect(groups.map(\.leftOutMembers.count) == [2, 2, 0, 2, 0, 2, 0])
        let vless = "\"v1\" (vless not supported), \"v2\" (vless not supported)"
        #expect(
            ProxyGroup.unavailableGroups(groups) == [
                "Filtered": "include-all found no supported proxy", "Providers": "include-all found no supported proxy",
                "OnlyV": "all 2 members were left out: \(vless)",
            ])
        #expect(
            messages.filter { !$0.contains("is unavailable") } == [
                "t.yaml:7:44: warning: proxy-groups[0]: group \"All\": members left out: \(vless); it uses its other 2 members",
                "t.yaml:8:61: warning: proxy-groups[1]: group \"AllProxies\": members left out: \(vless); it uses its other 3 members",
                "t.yaml:10:51: warning: proxy-groups[3]: group \"NoSS\": members left out: \(vless); it uses its other member",
                "t.yaml:11:37: warning: proxy-groups[4].include-all-providers: proxy providers are not supported yet; this adds no members",
            ])
    }

    @Test("PASS and COMPATIBLE are members; a group of PASS alone is unavailable")
    func passAndCompatible() throws {
        let (groups, messages) = try Self.load(
            """
              - {name: G, type: select, proxies: [PASS, COMPATIBLE, DIRECT]}
              - {name: C, type: select, proxies: [COMPATIBLE]}
              - {name: P, type: select, proxies: [PASS]}

            """)
        #expect(groups.map(\.members) == [["PASS", "COMPATIBLE", "DIRECT"], ["COMPATIBLE"], ["PASS"]])
        #expect(
            ProxyGroup.unavailableGroups(groups) == [
                "P": "its only member is PASS, which sluice does not support in groups yet"
            ])
        #expect(messages.count == 1, "\(messages)")
    }

    @Test("unavailability spreads to groups whose every member is unavailable, not to groups with another way out")
    func nestedUnavailable() throws {
        let (groups, messages) = try Self.load(
            """
              - {name: Empty, type: url-test, proxies: [v1]}
              - {name: Outer, type: select, proxies: [Empty, PASS]}
              - {name: Spare, type: fallback, proxies: [Empty, s1]}

            """)
        #expect(
            ProxyGroup.unavailableGroups(groups) == [
                "Empty": "its only member was left out: \"v1\" (vless not supported)",
                "Outer": "every member is unavailable: Empty, PASS",
            ])
        #expect(messages.filter { $0.contains("is unavailable") }.count == 2, "\(messages)")
    }

    @Test("a group with nothing to take members from is still an error, as in mihomo")
    func nothingAtAll() {
        #expect(
            TestSupport.messages("proxy-groups:\n  - {name: G, type: select, proxies: []}\n") == [
                "t.yaml:2:5: proxy-groups[0]: group \"G\" has no members; list some under proxies, use or set include-all: true"
            ])
    }
}
