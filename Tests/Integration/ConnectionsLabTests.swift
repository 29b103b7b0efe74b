import Foundation
import IPC
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The tun worker's side of the external controller, driven through sluiced's control socket as the HTTP API will
/// drive it: the connections list while a download runs, closing it by id (the client's download ends at once),
/// UDP flows, and delay tests of DIRECT, a dead proxy and a whole group.
@Suite(
    "connections and delay tests over the control socket (lab)", .serialized,
    .enabled(if: geteuid() == 0, "needs root for namespaces and TUN"))
struct ConnectionsLabTests {
    static let config = """
        log-level: info
        tun:
          enable: true
          device: sluice0
          auto-route: true
          auto-detect-interface: true
        proxies:
          - {name: dead, type: socks5, server: 10.77.200.2, port: 1}
        proxy-groups:
          - {name: Proxy, type: select, proxies: [DIRECT, dead]}
        rules:
          - DST-PORT,80,Proxy
          - MATCH,DIRECT

        """

    static let fullSize = 104_857_600

    /// One request over `<runtime>/control.sock`.
    static func request(_ lab: Lab, _ message: Message, timeoutMilliseconds: Int32 = 5000) -> Message? {
        lab.harness.request(message, timeoutMilliseconds: timeoutMilliseconds)
    }

    static func connections(_ lab: Lab) -> ConnectionsSnapshot? {
        guard case .connections(let document)? = request(lab, .connectionsRequest) else { return nil }
        return try? JSONDecoder().decode(ConnectionsSnapshot.self, from: Data(document))
    }

    static func close(_ lab: Lab, _ id: String) -> UInt32? {
        guard case .connectionsClosed(let count)? = request(lab, .closeConnections(CloseConnections(id: id))) else {
            return nil
        }
        return count
    }

    static func delay(_ lab: Lab, _ name: String, url: String = "http://10.77.200.2/small", wholeGroup: Bool = false)
        -> DelayResult?
    {
        let test = DelayTest(name: name, url: url, timeoutMilliseconds: 2000, wholeGroup: wholeGroup)
        guard case .delayResult(let result)? = request(lab, .delayTest(test), timeoutMilliseconds: 10_000) else {
            return nil
        }
        return result
    }

    @Test(
        "a running download is listed with its rule, chain and growing bytes; closing it by id ends the client's download at once"
    )
    func listAndClose() throws {
        let lab = try Lab(config: Self.config)
        defer { lab.stop() }
        try lab.start()
        let result = lab.harness.directory + "/download.out"

        // 100 MiB at 5 MB/s: about 20 s if nothing stops it. A paced reader rather than curl --limit-rate, which
        // does not look at its socket while it waits out the rate (for a second or more), so it would time curl.
        lab.run(
            "client", "python3 \(lab.servers) slow-get 10.77.200.2 80 /100m.bin 5000000 >\(result) 2>&1 </dev/null &")
        var listed: ConnectionsSnapshot.Connection?
        _ = lab.harness.waitUntil(10) {
            listed = Self.connections(lab)?.connections.first {
                $0.metadata.destinationPort == "80" && $0.metadata.destinationIP == "10.77.200.2" && $0.download > 0
            }
            return listed != nil
        }
        let connection = try #require(listed, "the download is not listed:\n\(lab.harness.log.suffix(2000))")
        #expect(connection.metadata.network == "tcp")
        #expect(connection.metadata.type == "Tun")
        #expect(connection.metadata.sourceIP == "10.77.1.2")
        #expect(connection.metadata.dnsMode == "normal")
        #expect(connection.metadata.remoteDestination == "10.77.200.2")
        #expect(connection.rule == "DstPort" && connection.rulePayload == "80")
        #expect(connection.chains == ["DIRECT", "Proxy"])
        #expect(connection.upload > 0, "the request went up")
        usleep(500_000)
        let later = try #require(Self.connections(lab)?.connections.first { $0.id == connection.id })
        #expect(
            later.download > connection.download, "download bytes grow: \(connection.download) then \(later.download)")
        #expect(later.start == connection.start)

        #expect(Self.close(lab, "00000000-0000-4000-8000-000000000000") == 0, "an unknown id closes nothing")
        let closedAt = MonotonicClock.now
        #expect(Self.close(lab, connection.id) == 1)
        var output = ""
        let ended = lab.harness.waitUntil(2) {
            output = (try? String(contentsOfFile: result, encoding: .utf8)) ?? ""
            return !output.isEmpty
        }
        let seconds = Double(MonotonicClock.now - closedAt) / 1e9
        #expect(ended, "the client still downloading 2 s after the close")
        let fields = output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        let received = fields.first.flatMap { Int($0) } ?? -1
        #expect(received > 0 && received < Self.fullSize, "the client got \(output) (of \(Self.fullSize))")
        #expect(fields.count == 2 && fields[1] == "reset", "the client saw a reset: \(output)")
        print(
            "closed after \(later.download) bytes listed; the client ended \(String(format: "%.3f", seconds)) s after the close: \(output)"
        )

        // The closed connection leaves the list, and its bytes stay in the totals.
        var after: ConnectionsSnapshot?
        #expect(
            lab.harness.waitUntil(2) {
                after = Self.connections(lab)
                return after.map { !$0.connections.contains { $0.id == connection.id } } ?? false
            })
        #expect((after?.downloadTotal ?? 0) >= later.download)
        #expect(lab.harness.log.contains("closed on request"))
    }

    @Test("UDP flows are listed with their bytes and closed by id; an empty id closes every connection")
    func udpFlows() throws {
        let lab = try Lab(config: Self.config)
        defer { lab.stop() }
        try lab.start()
        let (status, output) = lab.run("client", "python3 \(lab.servers) udp-client 10.77.200.2 7 20")
        #expect(status == 0 && output.contains("received 20"), "\(output)")
        let flow = try #require(
            Self.connections(lab)?.connections.first {
                $0.metadata.network == "udp" && $0.metadata.destinationPort == "7"
            })
        #expect(flow.rule == "Match" && flow.chains == ["DIRECT"])
        #expect(flow.upload > 0 && flow.download > 0, "\(flow.upload) up, \(flow.download) down")
        #expect(Self.close(lab, flow.id) == 1)
        #expect(
            lab.harness.waitUntil(2) {
                Self.connections(lab).map { !$0.connections.contains { $0.id == flow.id } } ?? false
            })
        let totals = Self.connections(lab)
        #expect((totals?.uploadTotal ?? 0) >= flow.upload && (totals?.downloadTotal ?? 0) >= flow.download)
        // A new datagram makes a new flow: the client is not cut off.
        let (again, againOutput) = lab.run("client", "python3 \(lab.servers) udp-client 10.77.200.2 7 3")
        #expect(again == 0 && againOutput.contains("received 3"), "\(againOutput)")
        let count = Self.connections(lab)?.connections.count ?? 0
        #expect(count >= 1)
        #expect(Self.close(lab, "") == UInt32(count))
    }

    @Test(
        "delay tests: DIRECT answers in some milliseconds, a dead proxy 0; a whole group one entry per member; unknown names and non-groups say so"
    )
    func delays() throws {
        let lab = try Lab(config: Self.config)
        defer { lab.stop() }
        try lab.start()
        let direct = try #require(Self.delay(lab, "DIRECT"))
        #expect(direct.error == "" && direct.delays.count == 1)
        #expect((direct.delays.first?.milliseconds ?? 0) > 0, "\(direct)")
        let dead = try #require(Self.delay(lab, "dead"))
        #expect(dead.delays.map(\.name) == ["dead"] && dead.delays.first?.milliseconds == 0, "\(dead)")
        // A group alone: what it uses now (DIRECT).
        let group = try #require(Self.delay(lab, "Proxy"))
        #expect(group.delays.map(\.name) == ["Proxy"] && (group.delays.first?.milliseconds ?? 0) > 0, "\(group)")
        let whole = try #require(Self.delay(lab, "Proxy", wholeGroup: true))
        #expect(whole.delays.map(\.name) == ["DIRECT", "dead"], "\(whole)")
        #expect((whole.delays.first { $0.name == "DIRECT" }?.milliseconds ?? 0) > 0)
        #expect(whole.delays.first { $0.name == "dead" }?.milliseconds == 0)
        // The measurements show in the group's health (sluiced refreshes it about once a second).
        var health: [String: GroupState.Health] = [:]
        #expect(
            lab.harness.waitUntil(3) {
                health = lab.harness.status()?.groups.first { $0.name == "Proxy" }?.health ?? [:]
                return health["DIRECT"]?.latencyMilliseconds != nil && health["dead"] != nil
            }, "\(health)")
        #expect(health["dead"]?.latencyMilliseconds == nil)
        // A server that is not there within the timeout: 0 as well.
        let refused = try #require(Self.delay(lab, "DIRECT", url: "http://10.77.200.2:9/"))
        #expect(refused.delays.first?.milliseconds == 0, "\(refused)")
        let unknown = try #require(Self.delay(lab, "nosuch"))
        #expect(unknown.delays.isEmpty && unknown.error == "proxy nosuch not found")
        let notGroup = try #require(Self.delay(lab, "dead", wholeGroup: true))
        #expect(notGroup.delays.isEmpty && notGroup.error == "dead is not a proxy group")
    }
}
