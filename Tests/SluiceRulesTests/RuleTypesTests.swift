import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluiceRules
import Testing

/// Every rule type with its edge cases, from the config text to the decision, for both strategies:
/// each row is one rule line (target REJECT, followed by `MATCH,DIRECT`), a connection and whether
/// the rule matches it.
@Suite("Rule types")
struct RuleTypesTests {
    /// Providers every row may use through RULE-SET.
    static let providers = """
        rule-providers:
          dom:
            type: inline
            behavior: domain
            payload: [+.ads.example, .sub.example, "*.wild.example", exact.example, "+.*.deep.example", Bücher.example]
          nets: {type: inline, behavior: ipcidr, payload: [10.0.0.0/8, "2001:db8::/32"]}
          cls:
            type: inline
            behavior: classical
            payload:
              - DOMAIN-SUFFIX,cls.example
              - DST-PORT,8443
              - IP-CIDR,198.51.100.0/24,no-resolve
              - AND,((NETWORK,udp),(DOMAIN-KEYWORD,quic))
              - PROCESS-NAME,curl

        """

    /// A connection: `tcp 192.168.1.2:40000 -> 1.1.1.1:443` unless told otherwise.
    struct Conn: CustomStringConvertible, Sendable {
        var network = ConnectionMetadata.Network.tcp
        var source = "192.168.1.2"
        var sourcePort: UInt16 = 40000
        var destination = "1.1.1.1"
        var port: UInt16 = 443
        var host: String?
        var fake = false
        var uid: UInt32?
        var process: String?

        var metadata: ConnectionMetadata {
            ConnectionMetadata(
                network: network, source: IPAddress(source)!, sourcePort: sourcePort,
                destination: IPAddress(destination)!, destinationPort: port, host: host, destinationIsFake: fake,
                uid: uid,
                processPath: process)
        }

        var description: String {
            "\(network) \(source):\(sourcePort) -> \(destination):\(port)\(host.map { " (\($0))" } ?? "")\(fake ? " fake" : "")"
        }
    }

    static func host(_ name: String, fake: Bool = false) -> Conn { Conn(host: name, fake: fake) }
    static func dst(_ address: String, _ port: UInt16 = 443) -> Conn { Conn(destination: address, port: port) }

    static let rows: [(String, Conn, Bool)] = [
        // DOMAIN: case, trailing dots on both sides, IDN both ways
        ("DOMAIN,Example.COM", host("example.com"), true),
        ("DOMAIN,example.com", host("EXAMPLE.com."), true),
        ("DOMAIN,example.com.", host("example.com"), true),
        ("DOMAIN,example.com", host("www.example.com"), false),
        ("DOMAIN,example.com", Conn(), false),
        ("DOMAIN,Bücher.example", host("xn--bcher-kva.example"), true),
        ("DOMAIN,xn--bcher-kva.example", host("bücher.example"), true),
        ("DOMAIN,例え.テスト", host("xn--r8jz45g.xn--zckzah"), true),
        // DOMAIN-SUFFIX: label boundaries
        ("DOMAIN-SUFFIX,example.com", host("example.com"), true),
        ("DOMAIN-SUFFIX,example.com", host("a.b.Example.com."), true),
        ("DOMAIN-SUFFIX,example.com", host("notexample.com"), false),
        ("DOMAIN-SUFFIX,example.com", host("example.com.cn"), false),
        ("DOMAIN-SUFFIX,COM", host("x.com"), true),
        ("DOMAIN-SUFFIX,bücher.example", host("shop.xn--bcher-kva.example"), true),
        // DOMAIN-KEYWORD: substring of the name as it arrives (ASCII)
        ("DOMAIN-KEYWORD,GOOG", host("www.google.com"), true),
        ("DOMAIN-KEYWORD,le.co", host("www.google.com"), true),
        ("DOMAIN-KEYWORD,goog", host("example.com"), false),
        ("DOMAIN-KEYWORD,goog", Conn(), false),
        // DOMAIN-REGEX: unanchored search, as Go's MatchString
        ("DOMAIN-REGEX,^ad[0-9]+\\.example\\.com$", host("ad12.example.com"), true),
        ("DOMAIN-REGEX,^ad[0-9]+\\.example\\.com$", host("ad.example.com"), false),
        ("DOMAIN-REGEX,tracker", host("eu.tracker.net"), true),
        // IP-CIDR / IP-CIDR6: host bits, v4-mapped destinations, fake destinations, src
        ("IP-CIDR,10.0.0.0/8", dst("10.1.2.3"), true),
        ("IP-CIDR,10.0.0.1/8", dst("10.200.0.1"), true),
        ("IP-CIDR,10.0.0.0/8", dst("11.0.0.1"), false),
        ("IP-CIDR,10.0.0.0/8", dst("::ffff:10.1.2.3"), true),
        ("IP-CIDR,0.0.0.0/0", dst("2001:db8::1"), false),
        ("IP-CIDR,10.0.0.0/8", Conn(destination: "10.1.2.3", host: "a.example", fake: true), false),
        ("IP-CIDR,192.168.0.0/16,src", Conn(source: "192.168.9.9"), true),
        ("IP-CIDR,192.168.0.0/16,src", Conn(source: "::ffff:192.168.9.9"), true),
        ("IP-CIDR,192.168.0.0/16,src", Conn(source: "10.0.0.1", destination: "192.168.1.1"), false),
        ("IP-CIDR,10.0.0.0/8,no-resolve", dst("10.1.2.3"), true),
        ("IP-CIDR6,2001:db8::/32", dst("2001:db8:1::1"), true),
        ("IP-CIDR6,2001:db8::/32", dst("2001:db9::1"), false),
        ("IP-CIDR6,::/0", dst("1.2.3.4"), false),
        ("IP-CIDR6,::ffff:0:0/96", dst("::ffff:10.1.2.3"), false),  // v4-mapped compares as IPv4
        // IP-SUFFIX: the low bits
        ("IP-SUFFIX,0.0.0.5/8", dst("10.1.2.5"), true),
        ("IP-SUFFIX,0.0.0.5/8", dst("10.1.2.6"), false),
        ("IP-SUFFIX,::1/16", dst("2001:db8::1"), true),
        // SRC-IP-CIDR
        ("SRC-IP-CIDR,192.168.1.0/24", Conn(source: "192.168.1.9"), true),
        ("SRC-IP-CIDR,192.168.1.0/24", Conn(source: "::ffff:192.168.1.9"), true),
        ("SRC-IP-CIDR,192.168.1.0/24", Conn(source: "192.168.2.1"), false),
        ("SRC-IP-CIDR,fd00::/8", Conn(source: "fd12::1"), true),
        // Ports: single, list, ranges with their bounds; ICMP has no destination port
        ("DST-PORT,80/443/1000-2000", dst("1.1.1.1", 80), true),
        ("DST-PORT,80/443/1000-2000", dst("1.1.1.1", 443), true),
        ("DST-PORT,80/443/1000-2000", dst("1.1.1.1", 1000), true),
        ("DST-PORT,80/443/1000-2000", dst("1.1.1.1", 1500), true),
        ("DST-PORT,80/443/1000-2000", dst("1.1.1.1", 2000), true),
        ("DST-PORT,80/443/1000-2000", dst("1.1.1.1", 999), false),
        ("DST-PORT,80/443/1000-2000", dst("1.1.1.1", 2001), false),
        ("DST-PORT,80/443/1000-2000", dst("1.1.1.1", 444), false),
        ("DST-PORT,0-65535", Conn(network: .icmp, port: 0), false),
        ("SRC-PORT,40000-40010", Conn(sourcePort: 40010), true),
        ("SRC-PORT,40000-40010", Conn(sourcePort: 39999), false),
        // NETWORK
        ("NETWORK,TCP", Conn(network: .tcp), true),
        ("NETWORK,tcp", Conn(network: .udp), false),
        ("NETWORK,udp", Conn(network: .udp), true),
        ("NETWORK,udp", Conn(network: .icmp), false),
        // AND / OR / NOT and nesting
        ("AND,((NETWORK,UDP),(DST-PORT,53))", Conn(network: .udp, port: 53), true),
        ("AND,((NETWORK,UDP),(DST-PORT,53))", Conn(network: .tcp, port: 53), false),
        ("AND,((NETWORK,UDP),(DST-PORT,53))", Conn(network: .udp, port: 54), false),
        ("OR,((DOMAIN,a.com),(DST-PORT,22))", host("a.com"), true),
        ("OR,((DOMAIN,a.com),(DST-PORT,22))", dst("1.1.1.1", 22), true),
        ("OR,((DOMAIN,a.com),(DST-PORT,22))", host("b.com"), false),
        ("NOT,((NETWORK,tcp))", Conn(network: .udp), true),
        ("NOT,((NETWORK,tcp))", Conn(network: .tcp), false),
        ("NOT,((IP-CIDR,10.0.0.0/8))", Conn(destination: "10.1.2.3", host: "a.example", fake: true), true),
        (
            "AND,((NOT,((SRC-IP-CIDR,10.0.0.0/8))),(OR,((DST-PORT,80),(AND,((DOMAIN-SUFFIX,example.org),"
                + "(NETWORK,udp))))))", Conn(network: .udp, host: "www.example.org"), true
        ),
        (
            "AND,((NOT,((SRC-IP-CIDR,10.0.0.0/8))),(OR,((DST-PORT,80),(AND,((DOMAIN-SUFFIX,example.org),"
                + "(NETWORK,udp))))))", Conn(network: .tcp, host: "www.example.org"), false
        ),
        (
            "AND,((NOT,((SRC-IP-CIDR,10.0.0.0/8))),(OR,((DST-PORT,80),(AND,((DOMAIN-SUFFIX,example.org),"
                + "(NETWORK,udp))))))", Conn(source: "10.0.0.1", port: 80), false
        ),
        ("OR,((RULE-SET,dom),(NETWORK,udp))", host("x.ads.example"), true),
        // RULE-SET, domain behaviour: +. . * and exact; IDN entries
        ("RULE-SET,dom", host("ads.example"), true),
        ("RULE-SET,dom", host("x.y.ads.example"), true),
        ("RULE-SET,dom", host("sub.example"), false),
        ("RULE-SET,dom", host("a.b.sub.example"), true),
        ("RULE-SET,dom", host("a.wild.example"), true),
        ("RULE-SET,dom", host("a.b.wild.example"), false),
        ("RULE-SET,dom", host("wild.example"), false),
        ("RULE-SET,dom", host("exact.example"), true),
        ("RULE-SET,dom", host("www.exact.example"), false),
        ("RULE-SET,dom", host("x.deep.example"), true),
        ("RULE-SET,dom", host("a.b.x.deep.example"), true),
        ("RULE-SET,dom", host("deep.example"), false),
        ("RULE-SET,dom", host("xn--bcher-kva.example"), true),
        ("RULE-SET,dom", Conn(), false),
        // RULE-SET, ipcidr behaviour: destination, or source with src; fake destinations without a resolver
        ("RULE-SET,nets", dst("10.2.3.4"), true),
        ("RULE-SET,nets", dst("2001:db8::5"), true),
        ("RULE-SET,nets", dst("11.2.3.4"), false),
        ("RULE-SET,nets", Conn(destination: "10.2.3.4", host: "a.example", fake: true), false),
        ("RULE-SET,nets,src", Conn(source: "10.9.9.9"), true),
        ("RULE-SET,nets,src", dst("10.2.3.4"), false),
        // RULE-SET, classical behaviour
        ("RULE-SET,cls", host("www.cls.example"), true),
        ("RULE-SET,cls", dst("1.1.1.1", 8443), true),
        ("RULE-SET,cls", dst("198.51.100.7"), true),
        ("RULE-SET,cls", Conn(network: .udp, host: "quic.example"), true),
        ("RULE-SET,cls", Conn(network: .tcp, host: "quic.example"), false),
        ("RULE-SET,cls", Conn(network: .udp, host: "other.example"), false),
        // Not implemented yet: never match
        // PROCESS-NAME: the executable's last path part (exactly); PROCESS-PATH: the whole path
        ("PROCESS-NAME,curl", Conn(), false),
        ("PROCESS-NAME,curl", Conn(process: "/usr/bin/curl"), true),
        ("PROCESS-NAME,curl", Conn(process: "/usr/bin/curlx"), false),
        ("PROCESS-NAME,Curl", Conn(process: "/usr/bin/curl"), false),
        ("PROCESS-PATH,/usr/bin/curl", Conn(), false),
        ("PROCESS-PATH,/usr/bin/curl", Conn(process: "/usr/bin/curl"), true),
        ("PROCESS-PATH,/usr/bin/curl", Conn(process: "/usr/local/bin/curl"), false),
        // UID: the local socket's owner; flows without one (gateway mode) never match
        ("UID,0-65535", Conn(), false),
        ("UID,1000", Conn(uid: 1000), true),
        ("UID,1000", Conn(uid: 1001), false),
        ("UID,0-999", Conn(uid: 0), true),
        ("UID,1000-1999", Conn(uid: 1999), true),
        ("UID,1000-1999", Conn(uid: 2000), false),
        ("IN-PORT,443", Conn(), false),
        // MATCH
        ("MATCH", Conn(network: .icmp), true),
        ("MATCH", host("anything.example", fake: true), true),
    ]

    @Test(arguments: rows)
    func rule(line: String, connection: Conn, matches: Bool) throws {
        let rule = line == "MATCH" ? "MATCH,REJECT" : line.withTarget("REJECT")
        let yaml = Self.providers + "rules:\n  - '\(rule.replacing("'", with: "''"))'\n  - MATCH,DIRECT\n"
        let result = ConfigLoader.load(yaml: yaml, fileName: "rules.yaml", catalog: OutboundRegistry.catalog)
        let configuration = try #require(result.configuration, "\(result.errors)")
        #expect(configuration.rules.count == 2, "\(line)")
        for strategy in [RuleEngine.Strategy.indexed, .linear] {
            let decision = RuleEngine(configuration: configuration, strategy: strategy).decide(connection.metadata)
            #expect(decision.target == (matches ? "REJECT" : "DIRECT"), "\(line) for \(connection) (\(strategy))")
            if matches {
                #expect(decision.rule == RuleEngine.describe(configuration.rules[0].condition))
            }
        }
    }

    @Test("descriptions are the rule as written (normalised), as before")
    func descriptions() throws {
        let yaml =
            Self.providers + """
                rules:
                  - IP-CIDR6,2001:DB8::/32,REJECT
                  - RULE-SET,nets,REJECT,no-resolve
                  - DST-PORT,80/1000-2000,REJECT
                  - AND,((NETWORK,udp),(NOT,((DOMAIN,Example.com)))),REJECT

                """
        let rules = try #require(
            ConfigLoader.load(yaml: yaml, fileName: "r.yaml", catalog: OutboundRegistry.catalog).configuration
        ).rules
        #expect(
            rules.map { RuleEngine.describe($0.condition) } == [
                "IP-CIDR6,2001:db8::/32", "RULE-SET,nets", "DST-PORT,80/1000-2000",
                "AND,((NETWORK,UDP),(NOT,((DOMAIN,example.com))))",
            ])
    }

    @Test("unsupported kinds are named; RULE-SET only when its provider is missing")
    func unsupportedKinds() throws {
        let configuration = try #require(
            ConfigLoader.load(
                yaml: Self.providers + "rules:\n  - RULE-SET,cls,REJECT\n  - UID,1000,REJECT\n", fileName: "u.yaml",
                catalog: OutboundRegistry.catalog
            ).configuration)
        #expect(RuleEngine(configuration: configuration).unsupportedKinds == [])
        let withoutProviders = RuleEngine(rules: configuration.rules)
        #expect(withoutProviders.unsupportedKinds == ["RULE-SET"])
        #expect(withoutProviders.decide(Self.host("www.cls.example").metadata).target == "DIRECT")
    }
}

extension String {
    /// `TYPE,PAYLOAD[,OPTIONS]` with `target` put where a rule line has it (after the payload, or
    /// after the logical rule's parenthesised payload).
    fileprivate func withTarget(_ target: String) -> String {
        var depth = 0
        var commas = 0
        for (offset, character) in enumerated() {
            switch character {
            case "(": depth += 1
            case ")": depth -= 1
            case "," where depth == 0:
                commas += 1
                if commas == 2 {
                    let index = self.index(startIndex, offsetBy: offset)
                    return String(self[..<index]) + ",\(target)" + String(self[index...])
                }
            default: break
            }
        }
        return self + ",\(target)"
    }
}
