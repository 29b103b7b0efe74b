import Logging
import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluiceRules
import SluiceSystem
import Synchronization
import Testing

@testable import SluiceRouting

/// The flow router on its own, without root or a TUN: a router built from a real configuration (the loader on YAML
/// text, the tun worker's routing table) and flows judged and routed as the packet paths would ask.
@Suite("Flow router")
struct FlowRouterTests {
    /// A DNS side with one fake-IP range and a fixed table of names; hijacks TCP and UDP to port 53 of 10.0.0.53.
    struct Names: FlowNames {
        var fake: [IPAddress: String] = [:]
        var real: [IPAddress: String] = [:]
        func catches(udp: Bool, _ destination: InetEndpoint) -> Bool {
            destination == InetEndpoint(IPAddress("10.0.0.53")!, 53)
        }
        func isFake(_ address: IPAddress) -> Bool { IPPrefix("198.18.0.0/16")!.contains(address) }
        func name(forFake address: IPAddress) -> String? { fake[address] }
        func name(forReal address: IPAddress) -> String? { real[address] }
    }

    /// Every flow comes from a local socket owned by uid 1000, whose process is `/usr/bin/curl`.
    struct Owners: SocketOwnerTable, ProcessDirectory {
        func owner(tcp: Bool, local: InetEndpoint, remote: InetEndpoint) -> SocketOwner? {
            SocketOwner(uid: 1000, inode: 42)
        }
        func executable(of owner: SocketOwner, timeoutMilliseconds: Int32) -> String? { "/usr/bin/curl" }
    }

    static let base = """
        mixed-port: 7890
        proxies:
          - {name: s5, type: socks5, server: 192.0.2.10, port: 1080}
          - {name: v1, type: vless, server: 192.0.2.1, port: 443, uuid: 6f2a1b7e-8a1c-4c1e-9b1a-1a2b3c4d5e6f}
        proxy-groups:
          - {name: Proxy, type: select, proxies: [s5, DIRECT]}
          - {name: Down, type: select, proxies: [v1]}

        """

    static func router(
        _ rules: String, extra: String = "", names: Names = Names(), owners: FlowOwners = .none
    ) throws -> (FlowRouter, SluiceConfiguration) {
        let yaml =
            base + extra + "rules:\n" + rules.split(separator: "\n").map { "  - \($0)" }.joined(separator: "\n") + "\n"
        let result = ConfigLoader.load(yaml: yaml, fileName: "t.yaml", catalog: OutboundRegistry.catalog)
        let configuration = try #require(result.configuration, "\(result.diagnostics.map(\.description))")
        let logger = Logger(label: "test")
        let table = RoutingTable.make(
            configuration, egress: EgressPolicy(routingMark: 0), resolver: NameResolver(dns: nil), logger: logger)
        let hijack = DirectOutbound(
            name: BuiltinTarget.dns.rawValue, dial: DialSettings(egress: EgressPolicy(routingMark: 0)))
        return (FlowRouter(table: table, names: names, owners: owners, hijack: hijack, logger: logger), configuration)
    }

    static let client = InetEndpoint(IPAddress("10.0.0.2")!, 40000)
    static func to(_ address: String, _ port: UInt16 = 443) -> InetEndpoint { InetEndpoint(IPAddress(address)!, port) }

    /// The route a SYN-decided flow gets once accepted; nil when the SYN was not admitted as routed.
    static func accepted(_ router: FlowRouter, to destination: InetEndpoint) -> TCPRoute? {
        guard case .admit(let verdict, _, _) = router.judgeSYN(source: client, destination: destination),
            case .routed = verdict,
            case .relay(let route) = router.admit(verdict, source: client, destination: destination)
        else { return nil }
        return route
    }

    @Test("a rule hit on a fake address's name: routed on the SYN, relayed through the group's choice with its facts")
    func ruleHitThroughGroup() throws {
        var names = Names()
        names.fake[IPAddress("198.18.0.7")!] = "www.example.com"
        let (router, _) = try Self.router("DOMAIN-SUFFIX,example.com,Proxy\nMATCH,DIRECT", names: names)
        guard
            case .admit(let verdict, let label, let pinsFake) = router.judgeSYN(
                source: Self.client, destination: Self.to("198.18.0.7"))
        else {
            Issue.record("not admitted")
            return
        }
        #expect(label == "tcp 10.0.0.2:40000 -> 198.18.0.7:443 (www.example.com)")
        #expect(pinsFake)
        guard case .relay(let route) = router.admit(verdict, source: Self.client, destination: Self.to("198.18.0.7"))
        else {
            Issue.record("not relayed")
            return
        }
        #expect(route.outbound.name == "s5")
        #expect(route.name == "www.example.com", "a proxy is sent the name behind the fake address")
        #expect(route.facts.route.chains == ["s5", "Proxy"])
        #expect(route.facts.route.condition == .domainSuffix("example.com"))
        #expect(route.facts.fake && route.facts.host == "www.example.com")
        let direct = try #require(Self.accepted(router, to: Self.to("192.0.2.99")))
        #expect(direct.outbound.name == "DIRECT" && direct.name == nil)
    }

    @Test("fail closed: an unavailable group, an unknown target and an unmapped fake address reset; REJECT-DROP drops")
    func failClosed() throws {
        let (router, configuration) = try Self.router(
            "IP-CIDR,192.0.2.1/32,Down\nIP-CIDR,192.0.2.2/32,REJECT-DROP\nIP-CIDR,192.0.2.3/32,REJECT\nMATCH,DIRECT")
        guard case .reset = router.judgeSYN(source: Self.client, destination: Self.to("192.0.2.1")) else {
            Issue.record("unavailable group not rejected")
            return
        }
        guard case .drop = router.judgeSYN(source: Self.client, destination: Self.to("192.0.2.2")) else {
            Issue.record("REJECT-DROP not dropped")
            return
        }
        guard case .reset = router.judgeSYN(source: Self.client, destination: Self.to("192.0.2.3")) else {
            Issue.record("REJECT not reset")
            return
        }
        guard case .reset = router.judgeSYN(source: Self.client, destination: Self.to("198.18.0.9")) else {
            Issue.record("unmapped fake address not reset")
            return
        }
        #expect(router.rejected.load(ordering: .relaxed) == 4)
        // A target that names nothing (a table whose outbounds lack it) rejects, never goes DIRECT.
        let ghost = RoutingTable(
            rules: RuleEngine(rules: [Rule(condition: .match, target: "ghost")]), outbounds: router.current.outbounds)
        router.install(ghost)
        guard case .reset = router.judgeSYN(source: Self.client, destination: Self.to("192.0.2.4")) else {
            Issue.record("unknown target not rejected")
            return
        }
        let datagram = router.judgeDatagram(
            client: Self.client, destination: Self.to("192.0.2.4", 53), in: router.current)
        #expect(datagram.disposition == .reject && datagram.outbound == nil)
        _ = configuration
    }

    @Test("hijacked DNS goes to the DNS outbound whatever the rules say")
    func dnsHijack() throws {
        let (router, _) = try Self.router("MATCH,REJECT")
        let route = try #require(Self.accepted(router, to: Self.to("10.0.0.53", 53)))
        #expect(route.outbound.name == "DNS")
        #expect(route.facts.route.chains == ["DNS"])
    }

    @Test("sniff first: the SYN is admitted undecided; the sniffed name decides after accept")
    func sniffFirst() throws {
        let sniffer = """
            sniffer:
              enable: true
              parse-pure-ip: true
              sniff:
                TLS:
                  ports: [443]

            """
        let (router, _) = try Self.router("DOMAIN,sni.example,Proxy\nMATCH,DIRECT", extra: sniffer)
        let destination = Self.to("192.0.2.77")
        guard case .admit(let verdict, _, _) = router.judgeSYN(source: Self.client, destination: destination),
            case .sniff(let flow, let kinds) = router.admit(verdict, source: Self.client, destination: destination)
        else {
            Issue.record("not sniffed")
            return
        }
        #expect(kinds == [.tls])
        guard
            case .now(let route?) = router.decide(
                flow, source: Self.client, destination: destination, sniffed: (name: "sni.example", kind: .tls),
                timedOut: false,
                later: { _ in Issue.record("no lookup was needed") })
        else {
            Issue.record("not decided at once")
            return
        }
        #expect(route.outbound.name == "s5")
        #expect(route.facts.sniffHost == "sni.example")
        #expect(route.label == "tcp 10.0.0.2:40000 -> 192.0.2.77:443 (sni.example)")
    }

    @Test("PROCESS-NAME: the SYN is admitted undecided; the process lookup runs off the caller's thread")
    func processDeferred() async throws {
        let owners = FlowOwners(sockets: Owners(), processes: Owners())
        let (router, _) = try Self.router(
            "IP-CIDR,192.0.2.66/32,REJECT\nPROCESS-NAME,curl,Proxy\nMATCH,REJECT", owners: owners)
        guard case .reset = router.judgeSYN(source: Self.client, destination: Self.to("192.0.2.66", 80)) else {
            Issue.record("a refusal no process rule can change is not answered on the SYN")
            return
        }
        let destination = Self.to("192.0.2.80", 80)
        guard case .admit(let verdict, _, _) = router.judgeSYN(source: Self.client, destination: destination),
            case .decide(let flow) = router.admit(verdict, source: Self.client, destination: destination)
        else {
            Issue.record("not deferred")
            return
        }
        #expect(flow.owner == SocketOwner(uid: 1000, inode: 42))
        let route: TCPRoute? = await withCheckedContinuation { continuation in
            let answer = router.decide(
                flow, source: Self.client, destination: destination, sniffed: nil, timedOut: false
            ) { continuation.resume(returning: $0) }
            guard case .later = answer else {
                Issue.record("decided on the caller's thread")
                continuation.resume(returning: nil)
                return
            }
        }
        let found = try #require(route)
        #expect(found.outbound.name == "s5")
        #expect(found.facts.route.processPath == "/usr/bin/curl")
    }

    @Test("a local proxy client's name target: matched by name, through the listener")
    func localRequest() throws {
        let (router, configuration) = try Self.router("DOMAIN,a.example,Proxy\nMATCH,REJECT")
        let listener = try #require(configuration.inbound.listeners.first)
        let request = LocalRequest(
            network: .tcp, client: Self.client, local: InetEndpoint(IPAddress("127.0.0.1")!, 7890),
            target: SocketEndpoint(host: .name("a.example"), port: 443), listener: listener, kind: .socks5, user: nil)
        let route = router.decideLocal(request)
        #expect(route.outbound?.name == "s5")
        #expect(route.name == "a.example")
        #expect(route.label == "tcp 10.0.0.2:40000 -> a.example:443 via \(listener.name)")
        var other = request
        other.target = SocketEndpoint(host: .name("b.example"), port: 443)
        #expect(router.decideLocal(other).outbound == nil, "MATCH,REJECT refuses")
    }

    @Test("UDP: a pair's route holds until the table changes")
    func datagram() throws {
        let (router, _) = try Self.router("NETWORK,UDP,DIRECT\nMATCH,REJECT")
        let current = router.current
        let route = router.judgeDatagram(client: Self.client, destination: Self.to("192.0.2.5", 443), in: current)
        #expect(route.disposition == .forward && route.outbound?.name == "DIRECT")
        #expect(route.holds(for: current))
        let (reloaded, _) = try Self.router("MATCH,REJECT")
        #expect(!route.holds(for: reloaded.current))
        #expect(router.judgeEcho(source: Self.client.address, destination: IPAddress("192.0.2.5")!) == .reject)
    }
}
