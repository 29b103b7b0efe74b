import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Fake-IP DNS end to end: names answered by the dns worker (hijacked from the TUN),
/// connections to those addresses routed by name and sent to the real host.
@Suite("fake-IP through the TUN (lab)", .serialized, .enabled(if: geteuid() == 0, "needs root for namespaces and TUN"))
struct FakeIPLabTests {
    static func config(range: String, rules: [String] = []) -> String {
        Lab.config
            .replacingOccurrences(
                of: "  auto-detect-interface: true", with: "  auto-detect-interface: true\n  dns-hijack: [any:53]"
            )
            .replacingOccurrences(of: "rules:\n", with: "rules:\n" + rules.map { "  - \($0)\n" }.joined())
                + """

                dns:
                  enable: true
                  enhanced-mode: fake-ip
                  fake-ip-range: \(range)
                  fake-ip-filter: [real.test]
                  nameserver: [10.77.200.2]

                """
    }

    static func start(_ config: String, name: String = #function) throws -> Lab {
        let lab = try Lab(config: config, name: name)
        try lab.start()
        guard lab.harness.waitUntil(10, { lab.harness.worker("dns")?.state == "ready" }) else {
            lab.stop()
            throw LabError("dns worker not ready:\n\(lab.harness.log)")
        }
        return lab
    }

    /// Asks the hijacked DNS (any address, port 53) from `role`.
    static func resolve(_ lab: Lab, _ name: String, from role: String = "client") -> String {
        lab.run(role, "python3 \(lab.servers) dns-query 10.77.200.9 \(name)").1.trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    @Test("curl by name: DOMAIN-SUFFIX decides on the fake address's name; DIRECT reaches the real host; UDP too")
    func routedByName() throws {
        let lab = try Self.start(
            Self.config(
                range: "198.18.0.1/16",
                rules: [
                    "DOMAIN-SUFFIX,blocked.test,REJECT", "DOMAIN,a.test,DIRECT", "DOMAIN,udp.test,DIRECT",
                    "IP-CIDR,10.77.200.2/32,REJECT",
                ]))
        defer { lab.stop() }
        let a = Self.resolve(lab, "a.test")
        #expect(a.hasPrefix("198.18."), "a.test: \(a)")
        #expect(Self.resolve(lab, "real.test") == "10.77.200.2", "fake-ip-filter gives the real answer")
        for role in ["client", "router"] {
            let (status, body) = lab.run(role, "curl -sS -m 5 --resolve a.test:80:\(a) http://a.test/small")
            #expect(status == 0 && body.hasPrefix("ok"), "\(role): \(status) \(body)")
        }
        let blocked = Self.resolve(lab, "www.blocked.test")
        let (status, _) = lab.run(
            "client", "curl -sS -m 5 --resolve www.blocked.test:80:\(blocked) http://www.blocked.test/small")
        #expect(status == 7, "REJECT by name: connection refused at once")
        #expect(
            lab.harness.waitUntil(5) {
                lab.harness.log.contains("(www.blocked.test) [DOMAIN-SUFFIX,blocked.test] REJECT")
            })
        #expect(lab.harness.waitUntil(5) { lab.harness.log.contains("(a.test) [DOMAIN,a.test] DIRECT") })
        // An IP rule without no-resolve on a fake-IP connection tests the name's real address
        // (10.77.200.2 for every *.test name), as mihomo does.
        let byIP = Self.resolve(lab, "by-ip.test")
        let (refused, _) = lab.run("client", "curl -sS -m 5 http://\(byIP)/small")
        #expect(refused == 7)
        #expect(lab.harness.waitUntil(5) { lab.harness.log.contains("(by-ip.test) [IP-CIDR,10.77.200.2/32] REJECT") })
        // UDP to a fake address: the first datagram waits for the real address, the reply
        // comes back from the fake one (a connected socket accepts only that).
        let u = Self.resolve(lab, "udp.test")
        #expect(lab.run("client", "python3 \(lab.servers) udp-twice \(u) 7 0.2").1 == "echo echo\n")
        // An address from the pool that no name stands for is refused, not sent anywhere.
        let (unmapped, _) = lab.run("client", "curl -sS -m 5 http://198.18.200.200/small")
        #expect(unmapped == 7)
    }

    @Test("a /28 pool: the 15th name recycles the oldest mapping, but never one held by an open connection")
    func pinnedNotRecycled() throws {
        let lab = try Self.start(Self.config(range: "198.18.0.1/28"))
        defer { lab.stop() }
        let pinned = Self.resolve(lab, "pinned.test")
        let early = Self.resolve(lab, "early.test")
        #expect(pinned.hasPrefix("198.18.0.") && early.hasPrefix("198.18.0."))
        // A UDP flow holds its fake address as well.
        let udpPinned = Self.resolve(lab, "udp-pinned.test")
        #expect(lab.run("client", "python3 \(lab.servers) udp-twice \(udpPinned) 7 0.1").1 == "echo echo\n")
        // Hold a connection to pinned.test open for the rest of the test.
        let holder = try OSThread.start(name: "holder") {
            _ = lab.run(
                "client",
                "python3 -c 'import socket,time; s=socket.create_connection((\"\(pinned)\", 80)); time.sleep(12)'",
                timeout: 30)
        }
        defer { holder.join() }
        #expect(lab.harness.waitUntil(5) { (lab.harness.worker("tun")?.stats["tcp.active"] ?? 0) >= 1 })
        usleep(300_000)  // the pin travels to the dns worker
        // 14 addresses, two held: 11 fresh ones, then the oldest free one (early.test's),
        // then n1.test's and n2.test's; pinned.test's and udp-pinned.test's never.
        var seen = Set<String>()
        for i in 1...14 { seen.insert(Self.resolve(lab, "n\(i).test")) }
        #expect(seen.count == 12, "\(seen)")
        #expect(!seen.contains(pinned), "the pinned address was handed to another name")
        #expect(!seen.contains(udpPinned), "the UDP flow's address was handed to another name")
        #expect(seen.contains(early), "the unpinned older mapping was recycled")
        #expect(Self.resolve(lab, "pinned.test") == pinned)
        let (status, body) = lab.run("client", "curl -sS -m 5 http://\(pinned)/small")
        #expect(status == 0 && body.hasPrefix("ok"))
    }

    @Test("kill -9 of the dns worker under a query loop: every address answered before maps to the same name after")
    func mappingSurvivesCrash() throws {
        let lab = try Self.start(Self.config(range: "198.18.0.1/16"))
        defer { lab.stop() }
        let pid = try #require(lab.harness.worker("dns")?.pid)
        let answers = lab.harness.directory + "/answers.txt"
        let loader = try OSThread.start(name: "dns-load") {
            _ = lab.run("client", "python3 \(lab.servers) dns-load 10.77.200.9 k 2000 \(answers)", timeout: 90)
        }
        _ = lab.harness.waitUntil(30) {
            ((try? String(contentsOfFile: answers, encoding: .utf8)) ?? "").split(separator: "\n").count > 300
        }
        kill(pid, SIGKILL)
        loader.join()
        #expect(
            lab.harness.waitUntil(5) { lab.harness.worker("dns").map { $0.pid != pid && $0.state == "ready" } ?? false }
        )
        let pairs = try String(contentsOfFile: answers, encoding: .utf8).split(separator: "\n").compactMap {
            line -> (String, String)? in
            let parts = line.split(separator: " ")
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }
        #expect(pairs.count > 600, "\(pairs.count) answers")
        // Connect to a sample of them: the tun worker names each destination from the
        // mapping the restarted dns worker sent it over the peer channel.
        let sample = pairs.enumerated().filter { $0.offset % 5 == 0 }.map(\.element)
        let addresses = sample.map(\.1).joined(separator: " ")
        let (status, output) = lab.run(
            "client",
            "python3 -c 'import socket,sys\nfor a in sys.argv[1:]:\n s=socket.create_connection((a,80),timeout=3); s.close()' \(addresses)",
            timeout: 120)
        #expect(status == 0, "\(output)")
        _ = lab.harness.waitUntil(5) { lab.harness.log.contains("-> \(sample.last!.1):80 (") }
        let log = lab.harness.log
        let missing = sample.filter { !log.contains("-> \($0.1):80 (\($0.0))") }
        #expect(
            missing.isEmpty, "\(missing.count) of \(sample.count) addresses lost their name, e.g. \(missing.prefix(3))")
    }
}

/// `type: http` rule providers: sluiced fetches the list, reloads, and fetches it again
/// every `interval`.
@Suite("rule providers over http (lab)", .serialized, .enabled(if: geteuid() == 0, "needs root for namespaces and TUN"))
struct RuleProviderLabTests {
    /// A one-pattern domain list on the lab's web server (whose folder every lab shares).
    struct ServedList {
        let path =
            (ProcessInfo.processInfo.environment["LAB_WWW"] ?? "/tmp/sluice-lab-www")
            + "/provider-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).yaml"
        var url: String { "http://10.77.200.2/" + (path as NSString).lastPathComponent }

        func serve(_ pattern: String) throws {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try "payload:\n  - '\(pattern)'\n".write(toFile: path, atomically: true, encoding: .utf8)
        }

        func remove() { try? FileManager.default.removeItem(atPath: path) }
    }

    /// Whether a plain HTTP request to `name` (resolved through the dns worker) from the client gets through.
    static func reachable(_ lab: Lab, _ name: String) -> Bool {
        lab.run("client", "curl -sS -m 5 http://\(FakeIPLabTests.resolve(lab, name))/small").0 == 0
    }

    /// A lab whose rules REJECT what the http provider `remote` lists (`+.listed.test`, served from `list`, refreshed
    /// every `interval` seconds), once sluiced has fetched it. `more` is YAML after the `remote` entry.
    static func start(_ list: ServedList, interval: Int, more: String = "", name: String = #function) throws -> Lab {
        try list.serve("+.listed.test")
        let config =
            FakeIPLabTests.config(range: "198.18.0.1/16", rules: ["RULE-SET,remote,REJECT"])
                + """
                rule-providers:
                  remote: {type: http, behavior: domain, url: "\(list.url)", interval: \(interval)}
                \(more)

                """
        let lab = try FakeIPLabTests.start(config, name: name)
        #expect(
            lab.harness.waitUntil(15) { lab.harness.log.contains("rule provider remote: fetched") },
            "\(lab.harness.log.suffix(2000))")
        return lab
    }

    @Test("an http provider is fetched into its cache, applied, and refreshed on its interval")
    func httpProvider() throws {
        let list = ServedList()
        defer { list.remove() }
        let lab = try Self.start(list, interval: 2)
        defer { lab.stop() }
        _ = lab.harness.waitUntil(5) { lab.harness.status()?.generation ?? 0 >= 2 }
        let reachable = { Self.reachable(lab, $0) }
        #expect(!reachable("a.listed.test"), "listed by the downloaded provider: REJECT")
        #expect(reachable("a.other.test"))
        // The list changes upstream: within the interval (2 s) and a fetch, it applies.
        try list.serve("+.other.test")
        #expect(lab.harness.waitUntil(15) { reachable("b.listed.test") && !reachable("b.other.test") })
    }

    @Test(
        "PUT /providers/rules/:name fetches the list now and answers when it applies; a failed fetch keeps the old list and says why"
    )
    func updateThroughTheAPI() throws {
        let list = ServedList()
        defer { list.remove() }
        // interval 0: fetched once, then only when asked.
        let lab = try Self.start(
            list, interval: 0,
            more:
                "  local: {type: inline, behavior: domain, payload: [inline.test]}\nexternal-controller: 127.0.0.1:9090"
        )
        defer { lab.stop() }
        func api(_ method: String, _ path: String) -> (Int, String) {
            let (_, out) = lab.run(
                "router", "curl -sS -m 70 -X \(method) -w '\\n%{http_code}' http://127.0.0.1:9090\(path) 2>&1")
            let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }
        let reachable = { Self.reachable(lab, $0) }
        #expect(lab.harness.waitUntil(5) { !reachable("a.listed.test") }, "listed by the downloaded provider: REJECT")
        let (infoStatus, info) = api("GET", "/providers/rules/remote")
        #expect(
            infoStatus == 200 && info.contains("\"vehicleType\":\"HTTP\"") && info.contains("\"ruleCount\":1"),
            "\(info)")

        // The list changes upstream; with no interval only the API's update brings it, and the answer comes once it applies.
        try list.serve("+.other.test")
        let generation = lab.harness.status()?.generation ?? 0
        let (updated, body) = api("PUT", "/providers/rules/remote")
        #expect(updated == 204, "\(body)")
        #expect((lab.harness.status()?.generation ?? 0) > generation, "a new generation before the answer")
        // The workers take the pushed generation within milliseconds of the answer.
        #expect(lab.harness.waitUntil(5) { reachable("b.listed.test") && !reachable("b.other.test") })

        // Gone upstream: 503 with the reason, and the list in use stays.
        list.remove()
        let (failed, reason) = api("PUT", "/providers/rules/remote")
        #expect(
            failed == 503 && reason.contains("curl exit 22") && reason.contains("keeping what is there"), "\(reason)")
        #expect(!reachable("c.other.test"), "the previous list still applies")
        #expect(api("PUT", "/providers/rules/local").0 == 204, "inline: nothing to fetch")
        let (unknown, message) = api("PUT", "/providers/rules/nosuch")
        #expect(unknown == 404 && message.contains("message"), "\(message)")
    }
}
