import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The Clash API's streams and its maintenance endpoints (`/cache/...`, `/restart`, proxy providers) on a sluiced
/// without a TUN: with no worker at all (a controller-only configuration) and with the dns worker alone, in the
/// harness's own namespace, driven with curl and a WebSocket client.
@Suite(
    "external controller: streams, caches, restart", .serialized,
    .enabled(if: geteuid() == 0, "needs root for a namespace"))
struct ExternalControllerStreamTests {
    static let secret = "s3cret-\(UInt32.random(in: 0...UInt32.max))"

    /// No dns, no tun: sluiced runs the API and nothing else.
    static let controllerOnly = """
        log-level: info
        external-controller: 127.0.0.1:9090
        secret: \(secret)
        proxies:
          - {name: a, type: socks5, server: 127.0.0.1, port: 1}
        proxy-groups:
          - {name: Proxy, type: select, proxies: [a, DIRECT], url: "http://127.0.0.1:2/probe"}
        rules:
          - MATCH,DIRECT

        """

    /// The dns worker alone, fake-ip, with a real upstream for the names under `real.test`.
    static func dnsOnly(upstreamPort: UInt16) -> String {
        """
        log-level: info
        external-controller: 127.0.0.1:9090
        secret: \(secret)
        dns:
          enable: true
          listen: 127.0.0.1:1053
          enhanced-mode: fake-ip
          fake-ip-range: 198.18.0.1/16
          fake-ip-filter: ['+.real.test']
          nameserver: [127.0.0.1:\(upstreamPort)]
        rules:
          - MATCH,DIRECT

        """
    }

    final class Running {
        let harness: SluicedHarness

        init(config: String, before: (SluicedHarness) throws -> Void = { _ in }, name: String = #function) throws {
            harness = try SluicedHarness(config: config, name: name)
            try before(harness)
            try harness.start()
            // The reader of timed lines: each line of a command's output with the seconds since it started.
            try """
            import subprocess, sys, time
            start = time.monotonic()
            p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
            for line in p.stdout:
                print("%.3f %s" % (time.monotonic() - start, line.decode(errors="replace").rstrip("\\n")), flush=True)
            p.wait()

            """.write(toFile: harness.directory + "/timed.py", atomically: true, encoding: .utf8)
            guard
                harness.waitUntil(
                    10, { self.curl("-o /dev/null -w %{http_code} http://127.0.0.1:9090/version").1 == "401" })
            else {
                throw LabError("sluiced with the API did not come up; log:\n\(harness.log)")
            }
        }

        func stop() { harness.stop() }

        var client: ControllerClient {
            ControllerClient(harness: harness, secret: ExternalControllerStreamTests.secret)
        }

        @discardableResult
        func curl(_ arguments: String) -> (Int32, String) { client.curl(arguments) }

        func api(_ method: String, _ path: String, body: String? = nil) -> (Int, String) {
            client.api(method, path, body: body)
        }

        func json(_ path: String) -> [String: Any]? { client.json(path) }

        /// The lines a stream sent in `seconds`, each with when it came (seconds since the client started), over
        /// HTTP (curl, chunked) or a WebSocket (`?token=`, as browsers do).
        func stream(_ path: String, webSocket: Bool, seconds: Double) -> [(at: Double, object: [String: Any])] {
            let client =
                webSocket
                ? "python3 \(Shell.packageRoot())/Scripts/lab-servers.py ws-read 127.0.0.1 9090 '\(path)\(path.contains("?") ? "&" : "?")token=\(ExternalControllerStreamTests.secret)' \(seconds)"
                : "timeout \(seconds) curl -sS -N -H 'Authorization: Bearer \(ExternalControllerStreamTests.secret)' 'http://127.0.0.1:9090\(path)'"
            let (_, out) = Shell.run(
                "ip netns exec \(harness.namespace!) python3 \(harness.directory)/timed.py \(client) 2>&1")
            return out.split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ", maxSplits: 1)
                guard parts.count == 2, let at = Double(parts[0]),
                    let object = (try? JSONSerialization.jsonObject(with: Data(parts[1].utf8))) as? [String: Any]
                else { return nil }
                return (at, object)
            }
        }
    }

    /// A stream's first sample within 1 s, the next about a period later.
    static func expectPrompt(
        _ samples: [(at: Double, object: [String: Any])], _ what: String, period: Double = 1,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(samples.count >= 2, "\(what): \(samples.map(\.at))", sourceLocation: sourceLocation)
        guard samples.count >= 2 else { return }
        #expect(samples[0].at < 1.0, "\(what): first sample after \(samples[0].at) s", sourceLocation: sourceLocation)
        let gap = samples[1].at - samples[0].at
        #expect(
            gap > period * 0.6 && gap < period * 1.4, "\(what): samples at \(samples.map(\.at))",
            sourceLocation: sourceLocation)
    }

    @Test(
        "no worker: /traffic, /memory and /connections send a sample at once and then every second (HTTP and WebSocket)"
    )
    func streamsWithoutWorkers() throws {
        let sluice = try Running(config: Self.controllerOnly)
        defer { sluice.stop() }
        for webSocket in [false, true] {
            let kind = webSocket ? "WebSocket" : "HTTP"
            let traffic = sluice.stream("/traffic", webSocket: webSocket, seconds: 2.5)
            Self.expectPrompt(traffic, "\(kind) /traffic")
            #expect(
                traffic.allSatisfy {
                    $0.object["up"] as? Int == 0 && $0.object["down"] as? Int == 0 && $0.object["upTotal"] as? Int == 0
                },
                "zeros without a tun worker: \(traffic.map(\.object))")
            let memory = sluice.stream("/memory", webSocket: webSocket, seconds: 2.5)
            Self.expectPrompt(memory, "\(kind) /memory")
            #expect(
                memory.allSatisfy { ($0.object["inuse"] as? Int ?? 0) > 1_000_000 },
                "sluiced's own memory: \(memory.map(\.object))")
        }
        // /connections streams over a WebSocket (plain HTTP answers once, as mihomo), empty without a tun worker.
        let connections = sluice.stream("/connections?interval=500", webSocket: true, seconds: 1.8)
        Self.expectPrompt(connections, "WebSocket /connections", period: 0.5)
        #expect(
            connections.allSatisfy {
                ($0.object["connections"] as? [Any])?.isEmpty == true && $0.object["downloadTotal"] as? Int == 0
            },
            "\(connections.map(\.object))")
        let started = MonotonicClock.now
        let once = try #require(sluice.json("/connections"))
        #expect((once["connections"] as? [Any])?.isEmpty == true && once["memory"] != nil)
        #expect(MonotonicClock.elapsed(from: started, to: MonotonicClock.now) < 1_000_000_000)
    }

    @Test(
        "no worker: flushes have nothing to empty (204, as mihomo), /restart keeps sluiced, groups are proxy providers")
    func endpointsWithoutWorkers() throws {
        let sluice = try Running(config: Self.controllerOnly)
        defer { sluice.stop() }
        #expect(sluice.api("POST", "/cache/fakeip/flush").0 == 204)
        #expect(sluice.api("POST", "/cache/dns/flush").0 == 204)
        #expect(sluice.api("GET", "/cache/fakeip/flush").0 == 404, "POST only")
        let (restartStatus, restartBody) = sluice.api("POST", "/restart")
        #expect(restartStatus == 200 && restartBody == "{\"status\":\"ok\"}", "\(restartStatus) \(restartBody)")
        #expect(sluice.harness.pollExit() == nil && sluice.harness.status()?.pid == sluice.harness.pid, "sluiced stays")

        // Every group is a compatible provider of its members, and `default` holds everything (mihomo's shape).
        let providers = try #require(sluice.json("/providers/proxies")?["providers"] as? [String: [String: Any]])
        #expect(Set(providers.keys) == ["Proxy", "default"], "\(providers.keys)")
        let group = try #require(providers["Proxy"])
        #expect(group["type"] as? String == "Proxy" && group["vehicleType"] as? String == "Compatible")
        #expect((group["proxies"] as? [[String: Any]])?.map { $0["name"] as? String ?? "" } == ["a", "DIRECT"])
        #expect(group["testUrl"] as? String == "http://127.0.0.1:2/probe" && group["expectedStatus"] as? String == "*")
        #expect(sluice.json("/providers/proxies/Proxy")?["name"] as? String == "Proxy")
        #expect(sluice.json("/providers/proxies/Proxy/a")?["type"] as? String == "Socks5")
        #expect(sluice.api("GET", "/providers/proxies/nosuch").0 == 404)
        #expect(sluice.api("GET", "/providers/proxies/Proxy/nosuch").0 == 404)
        // Health checks run in the tun worker: 503 saying what to enable; 404 for an unknown provider.
        let (checkStatus, checkBody) = sluice.api("GET", "/providers/proxies/Proxy/healthcheck")
        #expect(checkStatus == 503 && checkBody.contains("tun"), "\(checkStatus) \(checkBody)")
        #expect(sluice.api("GET", "/providers/proxies/nosuch/healthcheck").0 == 404)
        #expect(sluice.api("GET", "/providers/proxies/default/healthcheck").0 == 204, "no test URL: nothing to test")
        #expect(sluice.api("PUT", "/providers/proxies/Proxy").0 == 204)
    }

    @Test(
        "dns worker: the fake-IP flush empties pool and store (fresh addresses, in the order asked); the DNS flush asks upstream again; /restart gives the workers new pids"
    )
    func cachesAndRestart() throws {
        var upstream: Dnsmasq?
        let queryLog = "/tmp/sluice-dnsmasq-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(queryLog) }
        let port = UInt16.random(in: 20000...40000)
        let sluice = try Running(config: Self.dnsOnly(upstreamPort: port)) { harness in
            upstream = try Dnsmasq(
                port: port, namespace: harness.namespace,
                options: [
                    "--address=/real.test/10.7.7.7", "--local-ttl=300", "--log-queries", "--log-facility=\(queryLog)",
                ])
        }
        defer {
            sluice.stop()
            upstream?.stop()
        }
        let harness = sluice.harness
        #expect(harness.waitUntil(15) { harness.worker("dns")?.state == "ready" }, "\(harness.log)")
        func address(_ name: String) -> String {
            ((sluice.json("/dns/query?name=\(name)&type=A")?["Answer"] as? [[String: Any]])?.first?["data"] as? String)
                ?? ""
        }
        func upstreamQueries(_ name: String) -> Int {
            ((try? String(contentsOfFile: queryLog, encoding: .utf8)) ?? "").split(separator: "\n").filter {
                $0.contains("query[A] \(name) ")
            }.count
        }

        // The answer cache: asked upstream once, then cached; after the flush, upstream again.
        #expect(address("x.real.test") == "10.7.7.7" && address("x.real.test") == "10.7.7.7")
        #expect(harness.waitUntil(3) { upstreamQueries("x.real.test") == 1 }, "\(upstreamQueries("x.real.test"))")
        #expect(sluice.api("POST", "/cache/dns/flush").0 == 204)
        #expect(address("x.real.test") == "10.7.7.7")
        #expect(
            harness.waitUntil(3) { upstreamQueries("x.real.test") == 2 },
            "asked upstream again: \(upstreamQueries("x.real.test"))")

        // The fake-IP pool and its store.
        let store = harness.directory + "/state/fake-ip.store"
        let names = ["one.test", "two.test", "three.test"]
        let before = names.map(address)
        #expect(before.allSatisfy { $0.hasPrefix("198.18.0.") } && Set(before).count == 3, "\(before)")
        #expect(harness.waitUntil(3) { (FakeIPStoreFile.size(store) ?? 0) > FakeIPStoreFile.headerSize })
        #expect(sluice.api("POST", "/cache/fakeip/flush").0 == 204)
        #expect(FakeIPStoreFile.size(store) == FakeIPStoreFile.headerSize, "the store holds no record")
        let after = names.reversed().map(address)
        #expect(Set(after).isDisjoint(with: before), "fresh addresses: \(before) then \(after)")
        let order = after.map { Int($0.split(separator: ".").last ?? "") ?? 0 }
        #expect(
            after.allSatisfy { $0.hasPrefix("198.18.0.") } && order == order.sorted() && Set(order).count == 3,
            "\(after)")

        // /restart: every worker stops and starts again (new pid, not counted as a failure); sluiced stays.
        #expect(sluice.api("POST", "/cache/fakeip/flush").0 == 204)
        let oldPID = try #require(harness.worker("dns")?.pid)
        let (restartStatus, restartBody) = sluice.api("POST", "/restart")
        #expect(restartStatus == 200 && restartBody == "{\"status\":\"ok\"}", "\(restartStatus) \(restartBody)")
        #expect(
            harness.waitUntil(15) {
                guard let dns = harness.worker("dns"), let pid = dns.pid else { return false }
                return pid != oldPID && dns.state == "ready"
            }, "\(harness.log)")
        #expect(harness.status()?.pid == harness.pid && harness.pollExit() == nil)
        #expect(harness.worker("dns")?.restarts == 0, "a restart asked for is not a failure")
        // The emptied store stayed empty across the restart: the new worker restored nothing.
        let restored = { harness.log.split(separator: "\n").filter { $0.contains("mappings restored from") } }
        #expect(harness.waitUntil(5) { restored().count >= 2 }, "\(harness.log)")
        #expect(restored().last?.contains(": 0 mappings restored from 0 records") == true, "\(restored())")
        #expect(address("one.test").hasPrefix("198.18.0."))
    }
}

/// The fake-IP store file seen from outside (its format: `FakeIPStore`).
enum FakeIPStoreFile {
    static let headerSize = 16

    static func size(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int
    }
}
