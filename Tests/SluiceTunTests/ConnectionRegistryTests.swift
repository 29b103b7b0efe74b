import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceRouting
import SluiceRules
import SluiceSystem
import Synchronization
import Testing

@testable import SluiceTun

@Suite("Connection registry")
struct ConnectionRegistryTests {
    static func facts(
        _ network: ConnectionFacts.Network = .tcp, sourcePort: UInt16 = 40000, destination: String = "10.77.200.2",
        port: UInt16 = 80,
        route: RouteFacts = RouteFacts(condition: .ipCIDR(IPPrefix("10.77.200.0/24")!), chains: ["ss1", "Proxy"])
    ) -> ConnectionFacts {
        ConnectionFacts(
            network: network, source: InetEndpoint(IPAddress("10.77.1.2")!, sourcePort),
            destination: InetEndpoint(IPAddress(destination)!, port), route: route)
    }

    @Test("ids are version-4 UUIDs, unique, sharing the registry's prefix; another registry has another prefix")
    func ids() throws {
        let registry = ConnectionRegistry()
        let pattern = try Regex("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$")
        var ids: Set<String> = []
        for i in 0..<2000 {
            let id = registry.register(Self.facts(sourcePort: UInt16(1000 + i))) {}.id
            #expect(id.wholeMatch(of: pattern) != nil, "\(id)")
            ids.insert(id)
        }
        #expect(ids.count == 2000)
        #expect(Set(ids.map { $0.prefix(24) }).count == 1, "one prefix per registry, the counter in the last group")
        let other = ConnectionRegistry().register(Self.facts()) {}.id
        #expect(!ids.contains(other) && other.prefix(24) != ids.first!.prefix(24))
        #expect(registry.count == 2000)
    }

    @Test("the snapshot has mihomo's field names and spellings")
    func jsonShape() throws {
        let registry = ConnectionRegistry()
        var facts = Self.facts(destination: "198.18.0.5", port: 443)
        facts.host = "a.test"
        facts.fake = true
        facts.sniffHost = "a.test"
        facts.remoteDestination = IPAddress("10.77.200.2")
        facts.route.processPath = "/usr/bin/curl"
        let tracked = registry.register(facts) {}
        tracked.upload.add(12, ordering: .relaxed)
        tracked.download.add(3400, ordering: .relaxed)
        let data = try JSONEncoder().encode(registry.snapshot())
        let top = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(top.keys) == ["uploadTotal", "downloadTotal", "connections"])
        let list = try #require(top["connections"] as? [[String: Any]])
        let connection = try #require(list.first)
        #expect(
            Set(connection.keys) == ["id", "metadata", "upload", "download", "start", "chains", "rule", "rulePayload"])
        let metadata = try #require(connection["metadata"] as? [String: Any])
        #expect(
            Set(metadata.keys) == [
                "network", "type", "sourceIP", "destinationIP", "sourcePort", "destinationPort", "host", "dnsMode",
                "processPath", "process", "sniffHost", "remoteDestination", "inboundName", "inboundIP", "inboundPort",
                "inboundUser",
            ])
        // A TUN connection came in on no local proxy port.
        #expect(metadata["inboundName"] as? String == "" && metadata["inboundPort"] as? String == "")
        #expect(metadata["network"] as? String == "tcp")
        #expect(metadata["type"] as? String == "Tun")
        #expect(metadata["sourceIP"] as? String == "10.77.1.2")
        #expect(metadata["sourcePort"] as? String == "40000", "ports are strings, as mihomo's")
        #expect(metadata["destinationIP"] as? String == "198.18.0.5")
        #expect(metadata["destinationPort"] as? String == "443")
        #expect(metadata["host"] as? String == "a.test")
        #expect(metadata["dnsMode"] as? String == "fake-ip")
        #expect(metadata["processPath"] as? String == "/usr/bin/curl")
        #expect(metadata["process"] as? String == "curl")
        #expect(metadata["sniffHost"] as? String == "a.test")
        #expect(metadata["remoteDestination"] as? String == "10.77.200.2")
        #expect(connection["upload"] as? Int == 12)
        #expect(connection["download"] as? Int == 3400)
        #expect(connection["chains"] as? [String] == ["ss1", "Proxy"])
        #expect(connection["rule"] as? String == "IPCIDR")
        #expect(connection["rulePayload"] as? String == "10.77.200.0/24")
        let start = try #require(connection["start"] as? String)
        #expect(start.wholeMatch(of: try Regex(#"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#)) != nil, "\(start)")
        // Within a few seconds of now.
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let parsed = try #require(formatter.date(from: start))
        #expect(abs(parsed.timeIntervalSinceNow) < 10)

        // A plain connection: normal DNS mode, empty strings rather than missing fields.
        let registry2 = ConnectionRegistry()
        _ = registry2.register(Self.facts(route: RouteFacts(condition: .match, chains: ["DIRECT"]))) {}
        let plain = try #require(registry2.snapshot().connections.first)
        #expect(plain.metadata.dnsMode == "normal")
        #expect(plain.metadata.host == "" && plain.metadata.process == "" && plain.metadata.remoteDestination == "")
        #expect(plain.rule == "Match" && plain.rulePayload == "" && plain.chains == ["DIRECT"])
    }

    @Test("counters add up; totals include connections that closed, TCP and UDP")
    func totals() throws {
        let registry = ConnectionRegistry()
        let a = registry.register(Self.facts()) {}
        let b = registry.register(Self.facts(.udp, port: 53)) {}
        a.upload.add(100, ordering: .relaxed)
        a.download.add(1000, ordering: .relaxed)
        b.upload.add(7, ordering: .relaxed)
        b.download.add(70, ordering: .relaxed)
        var snapshot = registry.snapshot()
        #expect(snapshot.connections.count == 2)
        #expect(snapshot.uploadTotal == 107 && snapshot.downloadTotal == 1070)
        #expect(snapshot.connections.map(\.metadata.network).sorted() == ["tcp", "udp"])
        registry.remove(a)
        registry.remove(a)  // idempotent: counted once
        snapshot = registry.snapshot()
        #expect(snapshot.connections.map(\.id) == [b.id])
        #expect(snapshot.uploadTotal == 107 && snapshot.downloadTotal == 1070, "a's bytes stay in the totals")
        b.download.add(30, ordering: .relaxed)
        registry.remove(b)
        snapshot = registry.snapshot()
        #expect(snapshot.connections.isEmpty)
        #expect(snapshot.uploadTotal == 107 && snapshot.downloadTotal == 1100)
    }

    @Test("close by id asks that connection's owner only; empty id asks every one; an unknown id none")
    func close() {
        let registry = ConnectionRegistry()
        let asked = Locked<[String]>([])
        var tracked: [TrackedConnection] = []
        for i in 0..<3 {
            let name = "c\(i)"
            tracked.append(
                registry.register(Self.facts(sourcePort: UInt16(2000 + i))) { asked.withLock { $0.append(name) } })
        }
        #expect(registry.close(id: tracked[1].id) == 1)
        #expect(asked.withLock { $0 } == ["c1"])
        #expect(registry.close(id: "00000000-0000-4000-8000-000000000000") == 0)
        #expect(asked.withLock { $0 } == ["c1"])
        // The owner removes it when it has closed it; then it is gone.
        registry.remove(tracked[1])
        #expect(registry.close(id: tracked[1].id) == 0)
        #expect(registry.close(id: "") == 2)
        #expect(asked.withLock { $0 }.sorted() == ["c0", "c1", "c2"])
    }

    @Test("rules in mihomo's spelling (the RuleCondition the engine decided with)")
    func ruleNames() {
        func clash(_ c: RuleCondition) -> String {
            c.clashPayload.isEmpty ? c.clashType : "\(c.clashType) \(c.clashPayload)"
        }
        #expect(clash(.domainSuffix("example.com")) == "DomainSuffix example.com")
        #expect(clash(.domain("a.example.com")) == "Domain a.example.com")
        #expect(clash(.domainKeyword("ads")) == "DomainKeyword ads")
        #expect(clash(.domainRegex("^a.*$")) == "DomainRegex ^a.*$")
        #expect(clash(.ipCIDR(IPPrefix("10.0.0.0/8")!)) == "IPCIDR 10.0.0.0/8")
        #expect(clash(.ipCIDR(IPPrefix("fd00::/8")!)) == "IPCIDR fd00::/8")
        #expect(clash(.sourceIPCIDR(IPPrefix("10.77.1.0/24")!)) == "SrcIPCIDR 10.77.1.0/24")
        #expect(clash(.destinationPort([PortRange(443, 443)])) == "DstPort 443")
        #expect(clash(.sourcePort([PortRange(1000, 2000)])) == "SrcPort 1000-2000")
        #expect(clash(.processName("curl")) == "ProcessName curl")
        #expect(clash(.processPath("/usr/bin/curl")) == "ProcessPath /usr/bin/curl")
        #expect(clash(.ruleSet("ads")) == "RuleSet ads")
        #expect(clash(.network(.udp)) == "Network UDP")
        #expect(clash(.uid([UIDRange(1000, 1000)])) == "Uid 1000")
        #expect(clash(.and([.domain("a"), .network(.tcp)])) == "AND ((DOMAIN,a),(NETWORK,TCP))")
        #expect(clash(.not(.domain("a"))) == "NOT ((DOMAIN,a))")
        #expect(clash(.match) == "Match")
        // The engine hands the deciding rule on; a decision no rule made has none (mihomo lists no rule either).
        let engine = RuleEngine(rules: [Rule(condition: .destinationPort([PortRange(80, 80)]), target: "DIRECT")])
        var m = ConnectionMetadata(
            network: .tcp, source: .v4(IPv4Address(10, 0, 0, 2)), sourcePort: 5000,
            destination: .v4(IPv4Address(10, 0, 0, 1)),
            destinationPort: 80)
        #expect(engine.decide(m).condition == .destinationPort([PortRange(80, 80)]))
        m.destinationPort = 81
        #expect(engine.decide(m).condition == nil)
    }

    @Test("whole-group measurements run on at most the given number of threads, results in member order")
    func boundedMeasurements() {
        let running = Locked((now: 0, most: 0))
        let items = (0..<40).map { "m\($0)" }
        let results = RunningDataPlane.measureAll(items, threads: 16) { item -> String in
            running.withLock { r in
                r.now += 1
                r.most = max(r.most, r.now)
            }
            usleep(20_000)
            running.withLock { $0.now -= 1 }
            return item.uppercased()
        }
        #expect(results == items.map { $0.uppercased() })
        let most = running.withLock { $0.most }
        #expect(most <= 16 && most > 1, "at most 16 at once, and more than one: \(most)")
    }
}
