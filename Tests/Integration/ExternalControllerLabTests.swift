import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The Clash API steering real traffic through the TUN: selection, closing a live download, traffic numbers.
@Suite(
    "external controller with traffic (lab)", .serialized,
    .enabled(if: geteuid() == 0, "needs root for namespaces and TUN"))
struct ExternalControllerLabTests {
    static let selectHost = "10.77.200.12"
    static let secret = "lab-\(UInt32.random(in: 0...UInt32.max))"

    static let config = """
        log-level: info
        external-controller: 127.0.0.1:9090
        secret: \(secret)
        tun:
          enable: true
          device: sluice0
          auto-route: true
          auto-detect-interface: true
        proxies:
          - {name: s1, type: socks5, server: 10.77.200.2, port: 1080}
          - {name: s2, type: socks5, server: 10.77.200.2, port: 1180}
        proxy-groups:
          - {name: SEL, type: select, proxies: [s1, s2, DIRECT]}
        rules:
          - IP-CIDR,\(selectHost)/32,SEL
          - MATCH,DIRECT

        """

    /// An authorized request from the router namespace (where sluiced runs): (HTTP status, body).
    static func api(_ lab: Lab, _ method: String, _ path: String, body: String? = nil) -> (Int, String) {
        let data = body.map { "-H 'Content-Type: application/json' --data-raw '\($0)'" } ?? ""
        let (_, out) = lab.run(
            "router",
            "curl -sS -m 15 -X \(method) -H 'Authorization: Bearer \(secret)' \(data) -w '\\n%{http_code}' 'http://127.0.0.1:9090\(path)' 2>&1"
        )
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    static func json(_ lab: Lab, _ path: String) -> [String: Any]? {
        let (status, body) = api(lab, "GET", path)
        guard status == 200 else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }

    static func connections(_ lab: Lab) -> [[String: Any]] {
        json(lab, "/connections")?["connections"] as? [[String: Any]] ?? []
    }

    @Test("PUT /proxies/SEL changes the next connection's route; GET /connections names the chain and the rule")
    func selection() throws {
        let lab = try Lab(config: Self.config)
        defer { lab.stop() }
        lab.run("wan", "ip addr add \(Self.selectHost)/32 dev lo")
        let log1 = lab.harness.directory + "/s1.log"
        let log2 = lab.harness.directory + "/s2.log"
        _ = try ProxyGroupLabTests.socks(lab, port: 1080, log: log1)
        _ = try ProxyGroupLabTests.socks(lab, port: 1180, log: log2)
        try lab.start()
        #expect(lab.harness.waitUntil(10) { Self.api(lab, "GET", "/version").0 == 200 }, "\(lab.harness.log)")

        let group = try #require(Self.json(lab, "/proxies/SEL"))
        #expect(group["now"] as? String == "s1" && group["all"] as? [String] == ["s1", "s2", "DIRECT"])
        #expect(lab.run("client", "curl -sS -m 5 http://\(Self.selectHost)/small").1 == "ok\n")
        #expect(
            ProxyGroupLabTests.text(log1).contains(Self.selectHost)
                && !ProxyGroupLabTests.text(log2).contains(Self.selectHost))

        #expect(Self.api(lab, "PUT", "/proxies/SEL", body: "{\"name\":\"s2\"}").0 == 204)
        #expect(Self.json(lab, "/proxies/SEL")?["now"] as? String == "s2")
        #expect(lab.run("client", "curl -sS -m 5 http://\(Self.selectHost)/small").1 == "ok\n")
        #expect(
            ProxyGroupLabTests.text(log2).contains(Self.selectHost),
            "after PUT /proxies/SEL the next connection goes through s2")
        let (bad, why) = Self.api(lab, "PUT", "/proxies/SEL", body: "{\"name\":\"nosuch\"}")
        #expect(bad == 400 && why.contains("nosuch"), "\(why)")
        #expect(Self.api(lab, "PUT", "/proxies/NOGROUP", body: "{\"name\":\"s1\"}").0 == 404)
        // The selection is what `sluiced status` shows too.
        #expect(lab.harness.waitUntil(3) { lab.harness.status()?.groups.first { $0.name == "SEL" }?.now == "s2" })

        // A live connection through the group: listed with its chain (outbound first) and rule.
        lab.run("client", "(curl -s --limit-rate 200K -m 20 -o /dev/null http://\(Self.selectHost)/100m.bin &) ; true")
        var listed: [String: Any]?
        _ = lab.harness.waitUntil(8) {
            listed = Self.connections(lab).first {
                ($0["metadata"] as? [String: Any])?["destinationIP"] as? String == Self.selectHost
            }
            return listed != nil
        }
        let connection = try #require(listed, "the download is listed by GET /connections")
        #expect(connection["chains"] as? [String] == ["s2", "SEL"])
        #expect(
            connection["rule"] as? String == "IPCIDR" && connection["rulePayload"] as? String == "\(Self.selectHost)/32"
        )
        let metadata = connection["metadata"] as? [String: Any] ?? [:]
        #expect(metadata["network"] as? String == "tcp" && metadata["destinationPort"] as? String == "80")
        // `sluiced status` lists it too (table and JSON).
        let sluiced = "\(SluicedHarness.productsDirectory)/sluiced"
        let (_, table) = Shell.run("\(sluiced) status --runtime-dir \(lab.harness.runtimeDirectory) 2>&1")
        #expect(
            table.contains("traffic: up") && table.contains("SEL > s2") && table.contains("\(Self.selectHost):80"),
            "\(table)")
        let (_, json) = Shell.run("\(sluiced) status --json --top 1 --runtime-dir \(lab.harness.runtimeDirectory) 2>&1")
        let document = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any]
        #expect((document?["connections"] as? [[String: Any]])?.count == 1 && document?["traffic"] != nil, "\(json)")
        #expect(Self.api(lab, "DELETE", "/connections").0 == 204)

        // Delay tests through a member and the whole group (the lab's web server answers /small).
        let (delayStatus, delayBody) = Self.api(
            lab, "GET", "/proxies/s1/delay?url=http://10.77.200.2/small&timeout=3000")
        #expect(delayStatus == 200 && delayBody.contains("\"delay\""), "\(delayBody)")
        let groupDelay = Self.json(lab, "/group/SEL/delay?url=http://10.77.200.2/small&timeout=3000") ?? [:]
        #expect(Set(groupDelay.keys) == ["s1", "s2", "DIRECT"], "\(groupDelay)")
        #expect(Self.api(lab, "GET", "/proxies/nosuch/delay?url=http://10.77.200.2/small&timeout=1000").0 == 404)
    }

    @Test("DELETE /connections/:id closes a live download at once; /traffic streams what the transfer moved")
    func closeAndTraffic() throws {
        let lab = try Lab(config: Self.config)
        defer { lab.stop() }
        try lab.start()
        #expect(lab.harness.waitUntil(10) { Self.api(lab, "GET", "/version").0 == 200 }, "\(lab.harness.log)")

        // /traffic while exactly one known transfer runs: 100 MiB down through the TUN.
        let out = lab.harness.directory + "/traffic.out"
        lab.run(
            "router",
            "(timeout 9 curl -sS -N -H 'Authorization: Bearer \(Self.secret)' http://127.0.0.1:9090/traffic > \(out) 2>&1 &) ; sleep 1.5"
        )
        let (fetched, size) = lab.run(
            "client", "curl -s -m 20 -o /dev/null -w '%{size_download}' http://10.77.200.2/100m.bin")
        #expect(fetched == 0 && size == "104857600", "\(size)")
        Thread.sleep(forTimeInterval: 8)
        let samples = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
        let down = samples.reduce(0) { $0 + ($1["down"] as? Int ?? 0) }
        let up = samples.reduce(0) { $0 + ($1["up"] as? Int ?? 0) }
        #expect(samples.count >= 5, "one sample a second: \(samples.count)")
        // The body plus the response head; the request and ACK-only segments carry no payload.
        #expect(down >= 104_857_600 && down <= 104_857_600 + 4096, "sum of down \(down)")
        #expect(up > 0 && up < 4096, "sum of up \(up)")
        #expect(
            samples.contains { ($0["down"] as? Int ?? 0) > 1_000_000 } && samples.allSatisfy { $0["downTotal"] != nil })
        // A finished download leaves the list (what a dashboard shows as closed); the slow one below is then the only one.
        #expect(lab.harness.waitUntil(5) { Self.connections(lab).isEmpty }, "still listed: \(Self.connections(lab))")

        // A slow download, closed from the API while it runs: the reader sees the reset within 3 s. It reads at
        // 500 KB/s through a 64 KiB receive buffer: curl's --limit-rate would let the kernel queue megabytes
        // unread (10 MB seen), and a reset socket still hands out what it queued before it reports the reset.
        let result = lab.harness.directory + "/slow.out"
        lab.run(
            "client", "python3 \(lab.servers) slow-get 10.77.200.2 80 /100m.bin 500000 >\(result) 2>&1 </dev/null &")
        var id: String?
        _ = lab.harness.waitUntil(8) {
            id =
                Self.connections(lab).first {
                    ($0["metadata"] as? [String: Any])?["destinationPort"] as? String == "80"
                        && ($0["download"] as? Int ?? 0) > 0
                }?["id"] as? String
            return id != nil
        }
        let live = try #require(id, "the slow download is listed")
        let started = Date()
        #expect(Self.api(lab, "DELETE", "/connections/\(live)").0 == 204)
        let ended = lab.harness.waitUntil(5) { !((try? String(contentsOfFile: result, encoding: .utf8)) ?? "").isEmpty }
        let seconds = Date().timeIntervalSince(started)
        let report = ((try? String(contentsOfFile: result, encoding: .utf8)) ?? "").split(
            whereSeparator: \.isWhitespace)
        #expect(
            ended && seconds < 3,
            "the reader ended \(seconds) s after the DELETE of \(live); listed now: \(Self.connections(lab)); reader: \(report); log: \(lab.harness.log.suffix(6000))"
        )
        #expect(
            (Int(report.first ?? "") ?? Int.max) < 104_857_600 && report.last == "reset", "the reader got \(report)")
        #expect(!Self.connections(lab).contains { $0["id"] as? String == live })
        // Deleting an id that is gone is not an error (mihomo answers 204 too).
        #expect(Self.api(lab, "DELETE", "/connections/\(live)").0 == 204)
    }

    @Test(
        "groups are proxy providers; GET /providers/proxies/SEL/healthcheck tests every member (204) and GET /proxies shows the delays"
    )
    func providerHealthCheck() throws {
        let config = Self.config.replacingOccurrences(
            of: "{name: SEL, type: select, proxies: [s1, s2, DIRECT]}",
            with:
                "{name: SEL, type: select, proxies: [s1, s2, DIRECT], url: \"http://10.77.200.2/small\", timeout: 3000}"
        )
        let lab = try Lab(config: config)
        defer { lab.stop() }
        _ = try ProxyGroupLabTests.socks(lab, port: 1080, log: lab.harness.directory + "/s1.log")  // s2 has no server
        try lab.start()
        #expect(lab.harness.waitUntil(10) { Self.api(lab, "GET", "/version").0 == 200 }, "\(lab.harness.log)")

        let providers = try #require(Self.json(lab, "/providers/proxies")?["providers"] as? [String: [String: Any]])
        let sel = try #require(providers["SEL"], "\(providers.keys)")
        #expect(
            sel["vehicleType"] as? String == "Compatible" && sel["testUrl"] as? String == "http://10.77.200.2/small")
        #expect((sel["proxies"] as? [[String: Any]])?.map { $0["name"] as? String ?? "" } == ["s1", "s2", "DIRECT"])
        func history(_ name: String) -> [[String: Any]] {
            ((Self.json(lab, "/proxies")?["proxies"] as? [String: [String: Any]])?[name]?["history"] as? [[String: Any]])
                ?? []
        }
        #expect(history("s1").isEmpty, "no check yet: \(history("s1"))")

        let started = Date()
        let (status, body) = Self.api(lab, "GET", "/providers/proxies/SEL/healthcheck")
        #expect(status == 204, "\(status) \(body)")
        #expect(Date().timeIntervalSince(started) < 5, "bounded by the group's timeout")
        // Right after the answer, not at the next heartbeat: the new delays are in GET /proxies.
        let proxies = try #require(Self.json(lab, "/proxies")?["proxies"] as? [String: [String: Any]])
        for alive in ["s1", "DIRECT"] {
            let delay = (proxies[alive]?["history"] as? [[String: Any]])?.last?["delay"] as? Int ?? 0
            #expect(delay > 0 && proxies[alive]?["alive"] as? Bool == true, "\(alive): \(proxies[alive] ?? [:])")
        }
        #expect(proxies["s2"]?["alive"] as? Bool == false, "s2 has no server: \(proxies["s2"] ?? [:])")
        #expect(Self.api(lab, "GET", "/providers/proxies/nosuch/healthcheck").0 == 404)
    }

    @Test(
        "POST /cache/fakeip/flush through the TUN: an old fake address reaches no name, names get fresh addresses that work"
    )
    func fakeIPFlush() throws {
        let config =
            "external-controller: 127.0.0.1:9090\nsecret: \(Self.secret)\n"
            + FakeIPLabTests.config(range: "198.18.0.1/16", rules: ["DOMAIN,a.test,DIRECT", "DOMAIN,b.test,DIRECT"])
        let lab = try FakeIPLabTests.start(config)
        defer { lab.stop() }
        let a1 = FakeIPLabTests.resolve(lab, "a.test")
        #expect(a1.hasPrefix("198.18."), "\(a1)")
        #expect(lab.run("client", "curl -sS -m 5 --resolve a.test:80:\(a1) http://a.test/small").1.hasPrefix("ok"))

        #expect(Self.api(lab, "POST", "/cache/fakeip/flush").0 == 204)
        #expect(
            (FakeIPStoreFile.size(lab.harness.directory + "/state/fake-ip.store") ?? 0) == FakeIPStoreFile.headerSize,
            "the store is empty on the disk")
        // A client that kept the old answer: refused at once (the tun worker's mirror forgot the name), so it asks again.
        let (old, oldOutput) = lab.run("client", "curl -sS -m 5 --resolve a.test:80:\(a1) http://a.test/small")
        #expect(old == 7, "\(old) \(oldOutput)")
        #expect(
            lab.harness.waitUntil(5) { lab.harness.log.contains("\(a1) is a fake address that stands for no name") })
        let a2 = FakeIPLabTests.resolve(lab, "a.test")
        let b2 = FakeIPLabTests.resolve(lab, "b.test")
        #expect(a2.hasPrefix("198.18.") && a2 != a1 && b2 != a1 && b2 != a2, "\(a1) then \(a2), \(b2)")
        for (name, address) in [("a.test", a2), ("b.test", b2)] {
            let (status, body) = lab.run("client", "curl -sS -m 5 --resolve \(name):80:\(address) http://\(name)/small")
            #expect(status == 0 && body.hasPrefix("ok"), "\(name) at \(address): \(status) \(body)")
        }
    }
}
