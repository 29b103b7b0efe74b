import Foundation
import SluiceConfig
import SluiceNet
import SluiceOutbounds
import Testing

/// `rule-providers:` contents: files (text and YAML, relative to the config), inline payloads,
/// http cache files, and what is reported when a provider cannot be used.
@Suite("rule providers")
struct RuleProvidersTests {
    /// A fresh directory holding `files` (name → contents) and `config.yaml`.
    final class Directory {
        let path: String

        init(config: String, files: [String: String] = [:]) throws {
            path = NSTemporaryDirectory() + "sluice-providers-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: path + "/rules", withIntermediateDirectories: true)
            try write("config.yaml", config)
            for (name, text) in files { try write(name, text) }
        }

        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: path + "/" + name, atomically: true, encoding: .utf8)
        }

        var configPath: String { path + "/config.yaml" }

        func load() -> ConfigLoadResult {
            ConfigLoader.load(contentsOfFile: configPath, catalog: OutboundRegistry.catalog)
        }

        /// Diagnostics with the directory replaced by `D`.
        func messages() -> [String] {
            load().diagnostics.map { $0.description.replacingOccurrences(of: path, with: "D") }
        }

        deinit {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    @Test func fileProvidersAreReadRelativeToTheConfig() throws {
        let directory = try Directory(
            config: """
                rule-providers:
                  ads: {type: file, behavior: domain, format: text, path: rules/ads.txt}
                  nets: {type: file, behavior: ipcidr, path: rules/nets.yaml}
                  mixed: {type: file, behavior: classical, format: yaml, path: rules/mixed.yaml}
                rules:
                  - RULE-SET,ads,REJECT
                  - RULE-SET,nets,DIRECT,no-resolve
                  - RULE-SET,mixed,DIRECT
                """,
            files: [
                "rules/ads.txt":
                    "# ads\n\n+.ads.example\r\n  .track.example  \nexact.example.\n*.cdn.example\nBÜCHER.example\n",
                "rules/nets.yaml": "payload:\n  - 10.0.0.0/8\n  - 'fd00::/8'\n  - 192.0.2.1\n",
                "rules/mixed.yaml": """
                payload:
                  - DOMAIN-SUFFIX,Example.org
                  - IP-CIDR,198.51.100.0/24,no-resolve
                  - IP-CIDR6,2001:db8::/32,src
                  - DOMAIN-REGEX,^a{1,3}\\.b$
                  - AND,((NETWORK,udp),(DST-PORT,443))
                  - GEOIP,CN
                """,
            ])
        let result = directory.load()
        #expect(
            directory.messages() == [
                "D/rules/mixed.yaml:7:5: warning: rule-providers.mixed.payload[5]: rule type GEOIP is not supported by "
                    + "sluice; rule skipped"
            ])
        let providers = try #require(result.configuration).ruleProviders
        #expect(providers.map(\.name) == ["ads", "nets", "mixed"])
        #expect(
            providers[0].contents
                == .domain([
                    .suffix("ads.example"), .subdomains("track.example"), .exact("exact.example"),
                    .wildcard("*.cdn.example"), .exact("bücher.example"),
                ]))
        #expect(providers[0].source == .file(path: "rules/ads.txt"))
        #expect(providers[0].format == .text)
        #expect(
            providers[1].contents
                == .ipcidr([IPPrefix("10.0.0.0/8")!, IPPrefix("fd00::/8")!, IPPrefix("192.0.2.1/32")!]))
        #expect(
            providers[2].contents
                == .classical([
                    ProviderRule(condition: .domainSuffix("example.org")),
                    ProviderRule(condition: .ipCIDR(IPPrefix("198.51.100.0/24")!), noResolve: true),
                    ProviderRule(condition: .ipCIDR(IPPrefix("2001:db8::/32")!), matchSource: true),
                    ProviderRule(condition: .domainRegex("^a{1,3}\\.b$")),
                    ProviderRule(condition: .and([.network(.udp), .destinationPort([PortRange(443, 443)])])),
                ]))
    }

    @Test func reloadReadsTheFileAgain() throws {
        let directory = try Directory(
            config: "rule-providers:\n  p: {type: file, behavior: domain, format: text, path: rules/p.txt}\n",
            files: ["rules/p.txt": "a.example\n"])
        #expect(directory.load().configuration?.ruleProviders.first?.contents == .domain([.exact("a.example")]))
        try directory.write("rules/p.txt", "b.example\n")
        #expect(directory.load().configuration?.ruleProviders.first?.contents == .domain([.exact("b.example")]))
        try directory.write("rules/p.txt", "not a domain\n")
        #expect(
            directory.messages() == [
                "D/rules/p.txt:1:1: rule-providers.p: expected a domain such as example.com, +.example.com, "
                    + ".example.com or *.example.com, got \"not a domain\""
            ])
    }

    @Test func unreadableProvidersAreErrorsNamingThePathMissingOnesWarn() throws {
        let directory = try Directory(
            config: """
                rule-providers:
                  missing: {type: file, behavior: domain, path: rules/none.txt}
                  absolute: {type: file, behavior: domain, path: /nonexistent/x.yaml}
                  directory: {type: file, behavior: domain, path: rules}
                  badyaml: {type: file, behavior: domain, path: rules/bad.yaml}
                  nopayload: {type: file, behavior: domain, path: rules/nopayload.yaml}
                  textlike: {type: file, behavior: ipcidr, path: rules/list.txt}
                """,
            files: [
                "rules/bad.yaml": "payload: [a.com\n", "rules/nopayload.yaml": "rules:\n  - a.com\n",
                "rules/list.txt": "10.0.0.0/8\n",
            ])
        #expect(directory.load().configuration == nil)
        #expect(
            directory.messages() == [
                "D/config.yaml:2:49: warning: rule-providers.missing.path: the rule provider file \"D/rules/none.txt\" "
                    + "does not exist; provider \"missing\" is empty (its rules match nothing) until the file exists "
                    + "and the configuration is reloaded",
                "D/config.yaml:3:50: warning: rule-providers.absolute.path: the rule provider file "
                    + "\"/nonexistent/x.yaml\" does not exist; provider \"absolute\" is empty (its rules match nothing) "
                    + "until the file exists and the configuration is reloaded",
                "D/config.yaml:4:51: rule-providers.directory.path: the rule provider file \"D/rules\" is not a "
                    + "regular file (relative paths start from the configuration file's directory, \"D\")",
                "D/rules/bad.yaml:2:1: rule-providers.badyaml: YAML syntax error: while parsing a flow sequence: did "
                    + "not find expected ',' or ']'",
                "D/rules/nopayload.yaml:1:1: rule-providers.nopayload: expected a mapping with a payload: list (or set "
                    + "format: text for one entry per line); there is no payload key",
                "D/rules/list.txt:1:1: rule-providers.textlike: expected a mapping with a payload: list (or set "
                    + "format: text for one entry per line), got \"10.0.0.0/8\"",
            ])
    }

    @Test func aBrokenProviderGivesNoFollowOnDiagnostics() throws {
        let directory = try Directory(
            config: """
                rule-providers:
                  p: {type: file, behavior: domain, format: text, path: rules/p.txt}
                rules:
                  - RULE-SET,p,REJECT
                dns:
                  fake-ip-filter: ["rule-set:p"]
                """,
            files: ["rules/p.txt": "a b\n"])
        #expect(
            directory.messages().filter { !$0.contains("dns") } == [
                "D/rules/p.txt:1:1: rule-providers.p: expected a domain such as example.com, +.example.com, "
                    + ".example.com or *.example.com, got \"a b\""
            ])
    }

    @Test func manyBadEntriesAreCounted() throws {
        let lines = (0..<25).map { "bad/\($0)" }.joined(separator: "\n")
        let directory = try Directory(
            config: "rule-providers:\n  p: {type: file, behavior: ipcidr, format: text, path: rules/p.txt}\n",
            files: ["rules/p.txt": "10.0.0.0/8\n" + lines + "\n"])
        let messages = directory.messages()
        #expect(messages.count == 11)
        #expect(
            messages.first
                == "D/rules/p.txt:2:1: rule-providers.p: expected an IP prefix such as 10.0.0.0/8, got \"bad/0\"")
        #expect(
            messages.last
                == "D/rules/p.txt:26:1: rule-providers.p: 15 more invalid entries in this provider (25 in all)")
    }

    @Test func classicalEntries() throws {
        let result = TestSupport.load(
            """
            rule-providers:
              c:
                type: inline
                behavior: classical
                payload:
                  - DOMAIN,a.com,DIRECT
                  - RULE-SET,c
                  - MATCH
                  - AND,((DOMAIN,a.com),(RULE-SET,c))
                  - IP-CIDR,1.2.3.0/24,src,no-resolve
            """)
        #expect(
            result.diagnostics.map(\.description) == [
                "t.yaml:6:9: warning: rule-providers.c.payload[0]: \"DIRECT\" ignored: entries of a rule provider take "
                    + "only no-resolve and src (the target is the RULE-SET rule's)",
                "t.yaml:7:9: rule-providers.c.payload[1]: RULE-SET cannot be used inside a rule provider",
                "t.yaml:8:9: rule-providers.c.payload[2]: expected TYPE,PAYLOAD, got \"MATCH\"",
                "t.yaml:9:9: rule-providers.c.payload[3]: RULE-SET cannot be used inside a rule provider",
            ])
        let ok = TestSupport.load(
            "rule-providers:\n  c: {type: inline, behavior: classical, payload: [\"IP-CIDR,1.2.3.0/24,src,no-resolve\"]}\n"
        )
        #expect(
            ok.configuration?.ruleProviders.first?.contents
                == .classical([
                    ProviderRule(condition: .ipCIDR(IPPrefix("1.2.3.0/24")!), noResolve: true, matchSource: true)
                ]))
    }

    @Test func httpProvidersUseTheirCacheFile() throws {
        let directory = try Directory(
            config: """
                rule-providers:
                  cached: {type: http, behavior: domain, url: "https://x/a.yaml", path: rules/cached.yaml}
                  uncached: {type: http, behavior: domain, url: "https://x/b.yaml", path: rules/none.yaml}
                  nopath: {type: http, behavior: domain, url: "https://x/c.yaml"}
                rules:
                  - RULE-SET,cached,REJECT
                  - RULE-SET,uncached,REJECT
                  - MATCH,DIRECT
                """,
            files: ["rules/cached.yaml": "payload:\n  - +.cached.example\n"])
        #expect(
            directory.messages() == [
                "D/config.yaml:3:13: warning: rule-providers.uncached: provider \"uncached\" is not downloaded yet "
                    + "(no D/rules/none.yaml); its rules match nothing until sluiced has fetched https://x/b.yaml",
                "D/config.yaml:4:11: warning: rule-providers.nopath: provider \"nopath\" is not downloaded yet "
                    + "(no D/ruleset/nopath.yaml); its rules match nothing until sluiced has fetched https://x/c.yaml",
            ])
        let configuration = try #require(directory.load().configuration)
        // Every provider stays (sluiced fetches the missing ones and reloads); those not yet
        // fetched are empty, and their rules are kept.
        #expect(configuration.ruleProviders.map(\.name) == ["cached", "uncached", "nopath"])
        #expect(configuration.ruleProviders[0].contents == .domain([.suffix("cached.example")]))
        #expect(configuration.ruleProviders[1].contents == .domain([]))
        #expect(configuration.rules.count == 3)
    }

    @Test func contentsSurviveTheConfigPush() throws {
        let configuration = try #require(
            ConfigLoader.load(contentsOfFile: TestSupport.example("full.yaml"), catalog: OutboundRegistry.catalog)
                .configuration)
        #expect(configuration.ruleProviders.map(\.contents.count) == [4, 3, 4, 3])
        let decoded = try JSONDecoder().decode(
            SluiceConfiguration.self, from: JSONEncoder().encode(configuration))
        #expect(decoded.ruleProviders == configuration.ruleProviders)
    }
}
