import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluiceRules
import Testing

/// IN-TYPE, IN-NAME, IN-USER and IN-PORT: what mihomo tests about how a connection came in (the TUN, or a local proxy
/// port), in both matchers, alone and inside logical rules.
@Suite("inbound rules")
struct InboundRuleTests {
    static let yaml = """
        proxies:
        \((["A", "B", "C", "D", "E", "F"]).map { "  - {name: \($0), type: direct}" }.joined(separator: "\n"))
        rules:
          - IN-USER,alice/carol,A
          - IN-NAME,lan-socks,B
          - AND,((IN-TYPE,HTTPS),(DST-PORT,443)),C
          - IN-PORT,7890-7891,D
          - IN-TYPE,socks/tun,E
          - MATCH,F

        """

    static func flow(_ inbound: ConnectionMetadata.Inbound, port: UInt16 = 443) -> ConnectionMetadata {
        var m = ConnectionMetadata(
            network: .tcp, source: IPAddress("127.0.0.1")!, sourcePort: 40000, destination: IPAddress("10.0.0.1")!,
            destinationPort: port)
        m.inbound = inbound
        return m
    }

    static let cases: [(ConnectionMetadata.Inbound, UInt16, String)] = [
        (.init(type: "SOCKS5", name: "DEFAULT-MIXED", user: "carol", port: 7890), 443, "A"),
        (.init(type: "SOCKS5", name: "lan-socks", user: "bob", port: 7894), 443, "B"),
        (.init(type: "HTTPS", name: "DEFAULT-HTTP", port: 7892), 443, "C"),
        // A CONNECT to another port is not C; its port 7892 is not D's either: IN-TYPE,socks/tun does not take HTTPS.
        (.init(type: "HTTPS", name: "DEFAULT-HTTP", port: 7892), 80, "F"),
        (.init(type: "HTTP", name: "DEFAULT-MIXED", port: 7891), 80, "D"),
        (.init(type: "SOCKS4", name: "x", port: 9000), 80, "E"),
        (.tun, 443, "E"),
    ]

    @Test(arguments: [RuleEngine.Strategy.indexed, .linear])
    func decides(strategy: RuleEngine.Strategy) throws {
        let result = ConfigLoader.load(yaml: Self.yaml, fileName: "in.yaml", catalog: OutboundRegistry.catalog)
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let engine = RuleEngine(configuration: try #require(result.configuration), strategy: strategy)
        #expect(engine.unsupportedKinds.isEmpty)
        for (inbound, port, target) in Self.cases {
            #expect(engine.decide(Self.flow(inbound, port: port)).target == target, "\(inbound) :\(port)")
        }
    }

    @Test func unknownTypesAreRefusedAsMihomoRefusesThem() {
        let result = ConfigLoader.load(
            yaml: "rules:\n  - IN-TYPE,SOCKS6,DIRECT\n", fileName: "in.yaml", catalog: OutboundRegistry.catalog)
        #expect(
            result.errors.first?.description.contains("IN-TYPE: unknown type \"SOCKS6\"") == true,
            "\(result.diagnostics)")
    }
}
