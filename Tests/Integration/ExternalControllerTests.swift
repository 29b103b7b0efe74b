import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The Clash API of a running sluiced (dns worker only: no TUN needed), driven with curl and a WebSocket client
/// inside the harness's own namespace.
@Suite("external controller (Clash API)", .serialized, .enabled(if: geteuid() == 0, "needs root for a namespace"))
struct ExternalControllerTests {
    static let secret = "t0ken-\(UInt32.random(in: 0...UInt32.max))"

    static func config(ui: String) -> String {
        """
        log-level: info
        external-controller: 127.0.0.1:9090
        secret: \(secret)
        external-ui: \(ui)
        dns:
          enable: true
          listen: 127.0.0.1:1053
          enhanced-mode: fake-ip
          nameserver: [127.0.0.1:5399]
        hosts:
          fixed.test: 10.1.2.3
        proxies:
          - {name: a, type: socks5, server: 127.0.0.1, port: 1}
          - {name: b, type: http, server: 127.0.0.1, port: 2}
        proxy-groups:
          - {name: Proxy, type: select, proxies: [a, b, DIRECT]}
        rules:
          - DOMAIN-SUFFIX,example.com,Proxy
          - IP-CIDR,10.0.0.0/8,DIRECT,no-resolve
          - AND,((NETWORK,UDP),(DST-PORT,443)),REJECT
          - MATCH,DIRECT

        """
    }

    final class Running {
        let harness: SluicedHarness
        let ui: String

        init() throws {
            let ui = "/tmp/sluice-ui-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: ui + "/assets", withIntermediateDirectories: true)
            try "<html><body>dashboard</body></html>".write(
                toFile: ui + "/index.html", atomically: true, encoding: .utf8)
            try "console.log(1)".write(toFile: ui + "/assets/app.js", atomically: true, encoding: .utf8)
            try "not for you".write(toFile: ui + "/../sluice-ui-secret-\(getpid())", atomically: true, encoding: .utf8)
            self.ui = ui
            harness = try SluicedHarness(config: ExternalControllerTests.config(ui: ui))
            try harness.start()
            guard harness.waitUntil(15, { harness.worker("dns")?.state == "ready" }),
                harness.waitUntil(
                    5, { self.curl("-o /dev/null -w %{http_code} http://127.0.0.1:9090/version").1 == "401" })
            else {
                throw LabError("sluiced with the API did not come up; log:\n\(harness.log)")
            }
        }

        func stop() {
            harness.stop()
            try? FileManager.default.removeItem(atPath: ui)
            unlink(ui + "/../sluice-ui-secret-\(getpid())")
        }

        var client: ControllerClient { ControllerClient(harness: harness, secret: ExternalControllerTests.secret) }

        @discardableResult
        func curl(_ arguments: String) -> (Int32, String) { client.curl(arguments) }

        func api(_ method: String, _ path: String, body: String? = nil) -> (Int, String) {
            client.api(method, path, body: body)
        }

        func json(_ path: String) -> [String: Any]? { client.json(path) }

        /// A WebSocket client for `seconds`: the text frames it got.
        func webSocket(_ path: String, seconds: Double) -> [String] {
            let servers = Shell.packageRoot() + "/Scripts/lab-servers.py"
            let (_, out) = Shell.run(
                "ip netns exec \(harness.namespace!) timeout 30 python3 \(servers) ws-read 127.0.0.1 9090 '\(path)' \(seconds)"
            )
            return out.split(separator: "\n").map(String.init)
        }
    }

    @Test("access: the secret is required (Bearer, or ?token= on a WebSocket), CORS preflight answers without it")
    func access() throws {
        let sluice = try Running()
        defer { sluice.stop() }
        let (_, unauthorized) = sluice.curl("-w ' %{http_code}' http://127.0.0.1:9090/proxies")
        #expect(unauthorized == "{\"message\":\"Unauthorized\"} 401")
        let (_, wrong) = sluice.curl(
            "-H 'Authorization: Bearer nope' -o /dev/null -w %{http_code} http://127.0.0.1:9090/configs")
        #expect(wrong == "401")
        #expect(sluice.api("GET", "/version").0 == 200)
        let (_, preflight) = sluice.curl(
            "-X OPTIONS -H 'Origin: http://dashboard.test' -H 'Access-Control-Request-Method: PUT' -D - -o /dev/null http://127.0.0.1:9090/proxies/Proxy"
        )
        #expect(preflight.contains("204") && preflight.contains("Access-Control-Allow-Origin: *"), "\(preflight)")
        #expect(preflight.contains("Access-Control-Allow-Headers: Content-Type, Authorization"))
        // WebSockets: a token in the query works; without it the upgrade is refused with 401.
        #expect(sluice.webSocket("/memory", seconds: 1.5) == ["refused 401"])
        let memory = sluice.webSocket("/memory?token=\(Self.secret)", seconds: 2.5)
        let inuse = memory.compactMap { line -> Int? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                return nil
            }
            return object["inuse"] as? Int
        }
        #expect(inuse.count >= 2 && inuse.allSatisfy { $0 > 1_000_000 }, "\(memory)")
    }

    @Test("proxies, groups, rules, configs and errors in mihomo's shapes")
    func shapes() throws {
        let sluice = try Running()
        defer { sluice.stop() }
        let version = try #require(sluice.json("/version"))
        #expect(version["meta"] as? Bool == true && (version["version"] as? String)?.isEmpty == false)
        let proxies = try #require(sluice.json("/proxies")?["proxies"] as? [String: [String: Any]])
        #expect(Set(proxies.keys) == ["DIRECT", "REJECT", "GLOBAL", "a", "b", "Proxy"])
        #expect(proxies["a"]?["type"] as? String == "Socks5" && proxies["b"]?["type"] as? String == "Http")
        #expect(
            proxies["Proxy"]?["type"] as? String == "Selector"
                && proxies["Proxy"]?["all"] as? [String] == ["a", "b", "DIRECT"])
        #expect(proxies["Proxy"]?["now"] as? String == "a")
        #expect(proxies["GLOBAL"]?["type"] as? String == "Selector")
        let one = try #require(sluice.json("/proxies/Proxy"))
        #expect(one["name"] as? String == "Proxy")
        #expect(sluice.api("GET", "/proxies/nosuch") == (404, "{\"message\":\"Resource not found\"}"))
        #expect(sluice.api("GET", "/nosuch").0 == 404)
        // Selection needs the tun worker, which this sluiced does not run: a clear 4xx/5xx, not a hang.
        let (selectStatus, selectBody) = sluice.api("PUT", "/proxies/Proxy", body: "{\"name\":\"b\"}")
        #expect(selectStatus == 400 && selectBody.contains("tun worker"), "\(selectStatus) \(selectBody)")
        #expect(sluice.api("PUT", "/proxies/Proxy", body: "not json").0 == 400)
        #expect(sluice.api("GET", "/proxies/a/delay?url=http://x.test/").0 == 400, "timeout is required")
        #expect(sluice.api("GET", "/proxies/a/delay?url=ftp://x&timeout=100").0 == 400)

        let rules = try #require(sluice.json("/rules")?["rules"] as? [[String: Any]])
        #expect(rules.map { $0["type"] as? String ?? "" } == ["DomainSuffix", "IPCIDR", "AND", "Match"])
        #expect(
            rules.map { $0["payload"] as? String ?? "" } == [
                "example.com", "10.0.0.0/8", "((NETWORK,UDP),(DST-PORT,443))", "",
            ])
        #expect(rules.map { $0["proxy"] as? String ?? "" } == ["Proxy", "DIRECT", "REJECT", "DIRECT"])

        let configs = try #require(sluice.json("/configs"))
        #expect(configs["mode"] as? String == "rule" && configs["log-level"] as? String == "info")
        #expect(sluice.api("PATCH", "/configs", body: "{\"mode\":\"Global\",\"log-level\":\"debug\"}").0 == 204)
        let patched = try #require(sluice.json("/configs"))
        #expect(patched["mode"] as? String == "global" && patched["log-level"] as? String == "debug")
        let (badStatus, badBody) = sluice.api("PATCH", "/configs", body: "{\"mode\":\"sideways\"}")
        #expect(badStatus == 400 && badBody.contains("rule, global, direct"))
        // PUT /configs: a bad payload is refused with the place of the error; the running config stays.
        let (refused, why) = sluice.api("PUT", "/configs", body: "{\"payload\":\"mode: wrong\\n\"}")
        #expect(refused == 400 && why.contains(":1:7:") && why.contains("mode"), "\(why)")
        #expect(sluice.json("/configs")?["mode"] as? String == "global")
        // An empty PUT reloads the file: the runtime patch is gone, as in mihomo.
        #expect(sluice.api("PUT", "/configs?force=true", body: "{\"path\":\"\",\"payload\":\"\"}").0 == 204)
        #expect(sluice.json("/configs")?["mode"] as? String == "rule")
        let (missing, missingWhy) = sluice.api("PUT", "/configs", body: "{\"path\":\"/nonexistent/config.yaml\"}")
        #expect(missing == 400 && missingWhy.contains("/nonexistent/config.yaml"))
        // A payload may not change the API itself, nor name files outside the configuration's directory.
        let moved = Self.config(ui: "/").replacingOccurrences(of: "\n", with: "\\n")
        let (uiStatus, uiWhy) = sluice.api("PUT", "/configs", body: "{\"payload\":\"\(moved)\"}")
        #expect(uiStatus == 400 && uiWhy.contains("cannot change external-controller"), "\(uiWhy)")
        let provider =
            "rule-providers:\\n  p: {type: file, behavior: classical, path: /etc/passwd}\\nrules:\\n  - RULE-SET,p,DIRECT\\n"
        let (providerStatus, providerWhy) = sluice.api("PUT", "/configs", body: "{\"payload\":\"\(provider)\"}")
        #expect(providerStatus == 400 && !providerWhy.contains("root:"), "\(providerWhy)")
        // Only files beside the configuration (mihomo's SAFE_PATHS): not any file root can read.
        let (outside, outsideWhy) = sluice.api("PUT", "/configs", body: "{\"path\":\"/etc/passwd\"}")
        #expect(
            outside == 400 && outsideWhy.contains("not inside the configuration's directory")
                && !outsideWhy.contains("root:"), "\(outsideWhy)")
    }

    @Test("dns/query asks the dns worker (hosts, fake-ip); logs stream; metrics; external-ui files and nothing outside")
    func dnsLogsMetricsUI() throws {
        let sluice = try Running()
        defer { sluice.stop() }
        let fixed = try #require(sluice.json("/dns/query?name=fixed.test&type=A"))
        let answers = try #require(fixed["Answer"] as? [[String: Any]])
        #expect(answers.first?["data"] as? String == "10.1.2.3" && fixed["Status"] as? Int == 0)
        let fake = try #require(sluice.json("/dns/query?name=www.example.com"))
        let fakeData = ((fake["Answer"] as? [[String: Any]])?.first?["data"] as? String) ?? ""
        #expect(fakeData.hasPrefix("198.18."), "\(fake)")
        #expect(sluice.api("GET", "/dns/query").0 == 400)
        #expect(sluice.api("GET", "/dns/query?name=x.test&type=BOGUS").0 == 400)

        // /logs over HTTP (chunked): a reload from another file while following shows sluiced's lines and the
        // dns worker's (its hosts changed, so it applies the new generation); the new file is the config now.
        let ns = sluice.harness.namespace!
        let out = sluice.harness.directory + "/logs.out"
        Shell.run(
            "(ip netns exec \(ns) timeout 4 curl -sS -N -H 'Authorization: Bearer \(Self.secret)' 'http://127.0.0.1:9090/logs?level=debug' > \(out) 2>&1 &) ; sleep 1"
        )
        let second = sluice.harness.directory + "/second.yaml"
        try Self.config(ui: sluice.ui).replacingOccurrences(of: "10.1.2.3", with: "10.4.5.6").write(
            toFile: second, atomically: true, encoding: .utf8)
        #expect(sluice.api("PUT", "/configs", body: "{\"path\":\"\(second)\"}").0 == 204)
        let reloaded = sluice.harness.waitUntil(8) {
            ((sluice.json("/dns/query?name=fixed.test")?["Answer"] as? [[String: Any]])?.first?["data"] as? String)
                == "10.4.5.6"
        }
        #expect(reloaded, "the dns worker answers from the new file's hosts")
        #expect(sluice.harness.status()?.configPath == second)
        _ = sluice.harness.waitUntil(6) {
            (try? String(contentsOfFile: out, encoding: .utf8))?.contains("[dns]") == true
        }
        let lines = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(lines.contains { $0.contains("\"type\":\"info\"") && $0.contains("[sluiced]") }, "\(lines)")
        #expect(lines.contains { $0.contains("[dns]") }, "the dns worker's lines reach /logs: \(lines)")
        #expect(sluice.api("GET", "/logs?level=loud").0 == 400)

        var (metricsStatus, metrics) = (0, "")
        _ = sluice.harness.waitUntil(8) {
            (metricsStatus, metrics) = sluice.api("GET", "/metrics")
            return metrics.contains("sluice_dns_queries_total")
        }
        #expect(metricsStatus == 200)
        #expect(metrics.contains("sluice_worker_restarts_total{worker=\"dns\"} 0"), "\(metrics)")
        #expect(metrics.contains("sluice_dns_queries_total"))
        #expect(metrics.contains("sluice_fakeip_pool_used"))
        #expect(metrics.contains("sluice_worker_heartbeat_latency_seconds{worker=\"dns\"}"))

        // external-ui needs no secret (like mihomo); paths stay inside the folder.
        #expect(sluice.curl("http://127.0.0.1:9090/ui/").1.contains("dashboard"))
        #expect(sluice.curl("http://127.0.0.1:9090/ui/assets/app.js").1 == "console.log(1)")
        #expect(sluice.curl("-o /dev/null -w %{http_code} http://127.0.0.1:9090/ui").1 == "301")
        #expect(
            sluice.curl(
                "-o /dev/null -w %{http_code} --path-as-is http://127.0.0.1:9090/ui/../sluice-ui-secret-\(getpid())"
            ).1 == "404")
        #expect(
            sluice.curl(
                "-o /dev/null -w %{http_code} --path-as-is 'http://127.0.0.1:9090/ui/%2e%2e/sluice-ui-secret-\(getpid())'"
            ).1 == "404")
        #expect(
            sluice.curl("http://127.0.0.1:9090/ui/proxies").1.contains("dashboard"),
            "a dashboard's own routes get its index")
    }
}
