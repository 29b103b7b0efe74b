import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Fail closed: a group whose only member is an unsupported proxy rejects its connections at once instead of
/// sending them out DIRECT, and status and the Clash API say why.
@Suite("unavailable proxy groups (lab)", .serialized, .enabled(if: geteuid() == 0, "needs root for namespaces and TUN"))
struct UnavailableGroupLabTests {
    static let proxiedHost = "10.77.200.13"
    static let directHost = "10.77.200.14"
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
          - {name: v1, type: vless, server: 10.77.200.2, port: 443, uuid: 6f2a1b7e-8a1c-4c1e-9b1a-1a2b3c4d5e6f}
        proxy-groups:
          - {name: Proxy, type: select, proxies: [v1]}
        rules:
          - IP-CIDR,\(proxiedHost)/32,Proxy
          - MATCH,DIRECT

        """

    @Test("a group of unsupported proxies resets its connections at once, never DIRECT; status and /proxies say why")
    func rejectsAndSaysWhy() throws {
        let lab = try Lab(config: Self.config)
        defer { lab.stop() }
        // Both addresses answer in the wan namespace: whatever reaches them DIRECT gets "ok".
        lab.run("wan", "ip addr add \(Self.proxiedHost)/32 dev lo; ip addr add \(Self.directHost)/32 dev lo")
        try lab.start()

        #expect(
            lab.run("client", "curl -sS -m 5 http://\(Self.directHost)/small").1 == "ok\n", "the server answers DIRECT")
        let started = MonotonicClock.now
        let (status, output) = lab.run("client", "curl -sS -m 5 http://\(Self.proxiedHost)/small")
        let seconds = Double(MonotonicClock.elapsed(from: started, to: MonotonicClock.now)) / 1e9
        #expect(status != 0 && !output.contains("ok"), "reached the server: \(output)")
        #expect(seconds < 2, "not refused at once (\(seconds) s): \(output)")
        #expect(lab.harness.log.contains("→ Proxy (group Proxy unavailable)"), "\(lab.harness.log.suffix(1500))")

        let line =
            "group Proxy is unavailable (its only member was left out: \"v1\" (vless not supported)); its traffic is rejected"
        #expect(
            lab.harness.waitUntil(5) {
                lab.harness.status()?.workers.first { $0.name == "tun" }?.problems == [line]
            }, "\(String(describing: lab.harness.status()))")
        let group = lab.harness.status()?.groups.first { $0.name == "Proxy" }
        #expect(
            group?.now == "REJECT" && group?.unavailable == "its only member was left out: \"v1\" (vless not supported)"
        )
        let text = Shell.run(
            "\(SluicedHarness.productsDirectory)/sluiced status --runtime-dir \(lab.harness.runtimeDirectory) 2>&1"
        ).1
        #expect(text.contains("PROBLEM tun: \(line)"), "\(text)")

        // The Clash API, from the router namespace where sluiced runs.
        let (_, body) = lab.run(
            "router", "curl -sS -m 10 -H 'Authorization: Bearer \(Self.secret)' http://127.0.0.1:9090/proxies/Proxy")
        let proxy = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
        #expect(proxy?["now"] as? String == "REJECT")
        #expect(proxy?["alive"] as? Bool == false)
        #expect(proxy?["unavailable"] as? String == "its only member was left out: \"v1\" (vless not supported)")
        #expect(proxy?["all"] as? [String] == ["REJECT"])
    }
}
