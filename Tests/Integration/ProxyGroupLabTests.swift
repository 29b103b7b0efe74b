import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Proxy groups with real proxies: two microsocks servers in the lab's wan namespace,
/// each with its own log, so the log that shows a connection tells which member took it.
@Suite(
    "proxy groups through the TUN (lab)", .serialized, .enabled(if: geteuid() == 0, "needs root for namespaces and TUN")
)
struct ProxyGroupLabTests {
    static let fallbackHost = "10.77.200.11"
    static let selectHost = "10.77.200.12"

    static let config = """
        log-level: info
        tun:
          enable: true
          device: sluice0
          auto-route: true
          auto-detect-interface: true
        proxies:
          - {name: s1, type: socks5, server: 10.77.200.2, port: 1080}
          - {name: s2, type: socks5, server: 10.77.200.2, port: 1180}
        proxy-groups:
          - {name: FB, type: fallback, proxies: [s1, s2], url: "http://10.77.200.2/small", interval: 1, lazy: false, timeout: 1000}
          - {name: SEL, type: select, proxies: [s1, s2, DIRECT]}
        rules:
          - IP-CIDR,\(fallbackHost)/32,FB
          - IP-CIDR,\(selectHost)/32,SEL
          - MATCH,DIRECT

        """

    /// Starts microsocks on `port` in the wan namespace; returns its PID.
    static func socks(_ lab: Lab, port: Int, log: String) throws -> pid_t {
        let (status, output) = Lab.shell(
            "LAB=\(lab.name) bash \(Lab.packageRoot)/Scripts/lab.sh spawn wan \(log) microsocks -i 10.77.200.2 -p \(port)"
        )
        guard status == 0, let pid = pid_t(output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw LabError("microsocks on \(port): \(output)")
        }
        let (ready, _) = lab.run(
            "wan",
            "for i in $(seq 1 50); do (exec 3<>/dev/tcp/10.77.200.2/\(port)) 2>/dev/null && exit 0; sleep 0.1; done; exit 1"
        )
        guard ready == 0 else { throw LabError("microsocks on \(port) did not listen") }
        return pid
    }

    static func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    func sluiced(_ lab: Lab, _ arguments: String) -> (Int32, String) {
        Shell.run(
            "\(SluicedHarness.productsDirectory)/sluiced \(arguments) --runtime-dir \(lab.harness.runtimeDirectory) 2>&1"
        )
    }

    @Test(
        "select follows sluiced select (and shows in status); fallback leaves a dead proxy within its interval and comes back"
    )
    func groups() throws {
        let lab = try Lab(config: Self.config)
        defer { lab.stop() }
        lab.run("wan", "ip addr add \(Self.fallbackHost)/32 dev lo; ip addr add \(Self.selectHost)/32 dev lo")
        let log1 = lab.harness.directory + "/s1.log"
        let log2 = lab.harness.directory + "/s2.log"
        let s1 = try Self.socks(lab, port: 1080, log: log1)
        _ = try Self.socks(lab, port: 1180, log: log2)
        try lab.start()

        // select: the first member, then what sluiced select says.
        #expect(lab.run("client", "curl -sS -m 5 http://\(Self.selectHost)/small").1 == "ok\n")
        #expect(Self.text(log1).contains(Self.selectHost) && !Self.text(log2).contains(Self.selectHost))
        let (status, output) = sluiced(lab, "select SEL s2")
        #expect(status == 0 && output.contains("SEL: now s2"), "\(output)")
        #expect(lab.run("client", "curl -sS -m 5 http://\(Self.selectHost)/small").1 == "ok\n")
        #expect(Self.text(log2).contains(Self.selectHost), "after select, s2 carries it")
        let (refused, why) = sluiced(lab, "select SEL nosuch")
        #expect(refused != 0 && why.contains("not a member of \"SEL\""), "\(why)")
        let (refusedKind, whyKind) = sluiced(lab, "select FB s2")
        #expect(refusedKind != 0 && whyKind.contains("fallback"), "\(whyKind)")
        _ = lab.harness.waitUntil(3) { lab.harness.status()?.groups.first { $0.name == "SEL" }?.now == "s2" }
        let status2 = lab.harness.status()
        #expect(status2?.groups.first { $0.name == "SEL" }?.now == "s2")
        #expect(sluiced(lab, "status").1.contains("SEL"))

        // fallback: s1 while it is up.
        #expect(lab.run("client", "curl -sS -m 5 http://\(Self.fallbackHost)/small").1 == "ok\n")
        #expect(Self.text(log1).contains(Self.fallbackHost) && !Self.text(log2).contains(Self.fallbackHost))
        // s1 dies: within the interval (1 s) plus a check's timeout, new connections take s2.
        kill(s1, SIGTERM)
        let moved = lab.harness.waitUntil(6) {
            lab.run("client", "curl -sS -m 2 http://\(Self.fallbackHost)/small").1 == "ok\n"
                && Self.text(log2).contains(Self.fallbackHost)
        }
        #expect(moved, "fallback did not move to s2:\n\(lab.harness.log.suffix(1500))")
        // sluiced refreshes the group state with the counters (about once a second).
        #expect(lab.harness.waitUntil(3) { lab.harness.status()?.groups.first { $0.name == "FB" }?.now == "s2" })
        // s1 is back: new connections return to it.
        let log1b = lab.harness.directory + "/s1-again.log"
        _ = try Self.socks(lab, port: 1080, log: log1b)
        let back = lab.harness.waitUntil(6) {
            _ = lab.run("client", "curl -sS -m 2 http://\(Self.fallbackHost)/small")
            return Self.text(log1b).contains(Self.fallbackHost)
        }
        #expect(back, "fallback did not return to s1")
        #expect(lab.harness.log.contains("proxy group FB: s1 -> s2 (health check)"))
    }
}
