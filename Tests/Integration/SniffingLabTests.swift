import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Sniffing end to end: connections to the wan host's REAL address (no fake IP, no DNS
/// answer naming it) are routed by the name in their first bytes: the HTTP Host header and
/// the TLS ClientHello's SNI.
@Suite("sniffing through the TUN (lab)", .serialized, .enabled(if: geteuid() == 0, "needs root for namespaces and TUN"))
struct SniffingLabTests {
    static let config =
        Lab.config.replacingOccurrences(
            of: "rules:\n", with: "rules:\n  - DOMAIN-SUFFIX,blocked.test,REJECT\n")
            + """

            sniffer:
              enable: true
              override-destination: false
              sniff:
                HTTP:
                  ports: [80, 8080-8880]
                  override-destination: true
                TLS:
                  ports: ["443", 2525]
            dns:
              enable: true
              enhanced-mode: normal
              nameserver: [10.77.200.2]

            """

    /// The lab with an HTTPS server (self-signed for x.test, made here) on :443 and a server
    /// that speaks first on :2525, both on 10.77.200.2.
    static func start(name: String = #function) throws -> Lab {
        let lab = try Lab(config: config, name: name)
        do {
            let directory = lab.harness.directory
            let (made, output) = Lab.shell(
                "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=x.test -keyout \(directory)/tls.key "
                    + "-out \(directory)/tls.crt 2>&1")
            guard made == 0 else { throw LabError("openssl req: \(output)") }
            for command in [
                "python3 \(lab.servers) https /tmp/sluice-lab-www 443 \(directory)/tls.crt \(directory)/tls.key",
                "python3 \(lab.servers) banner 10.77.200.2 2525",
            ] {
                let (status, output) = Lab.shell(
                    "LAB=\(lab.name) bash \(Lab.packageRoot)/Scripts/lab.sh spawn wan \(directory)/servers.log \(command)"
                )
                guard status == 0 else { throw LabError("starting \(command): \(output)") }
            }
            let (ready, listening) = lab.run(
                "wan",
                "for i in $(seq 1 50); do (exec 3<>/dev/tcp/10.77.200.2/443) 2>/dev/null && "
                    + "(exec 3<>/dev/tcp/10.77.200.2/2525) 2>/dev/null && exit 0; sleep 0.1; done; ss -ltn; exit 1")
            guard ready == 0 else { throw LabError("servers did not start listening:\n\(listening)") }
            try lab.start()
            guard lab.harness.waitUntil(10, { lab.harness.worker("dns")?.state == "ready" }) else {
                throw LabError("dns worker not ready:\n\(lab.harness.log)")
            }
        } catch {
            lab.stop()
            throw error
        }
        return lab
    }

    @Test(
        "HTTP Host and TLS SNI to a real address: REJECT by name, DIRECT works; a server that speaks first still works")
    func routedBySniffedName() throws {
        let lab = try Self.start()
        defer { lab.stop() }
        // HTTP: the Host header names the connection.
        let (status, body) = lab.run(
            "client", "curl -sS -m 5 --resolve allowed.test:80:10.77.200.2 http://allowed.test/small")
        #expect(status == 0 && body.hasPrefix("ok"), "\(status) \(body)")
        let (rejected, rejectedOutput) = lab.run(
            "client", "curl -sS -m 5 --resolve blocked.test:80:10.77.200.2 http://blocked.test/small")
        #expect(rejected != 0 && rejected != 28, "reset, not a timeout: \(rejected) \(rejectedOutput)")
        // override-destination (on for HTTP): DIRECT connects to the name's own address,
        // resolved through the dns worker, not to the address the client used.
        let (overridden, overriddenBody) = lab.run(
            "client", "curl -sS -m 5 --resolve elsewhere.test:80:10.77.200.99 http://elsewhere.test/small")
        #expect(overridden == 0 && overriddenBody.hasPrefix("ok"), "\(overridden) \(overriddenBody)")
        // A Host that is an address names nothing: decided without a name.
        let (byAddress, plain) = lab.run("client", "curl -sS -m 5 http://10.77.200.2/small")
        #expect(byAddress == 0 && plain.hasPrefix("ok"))
        // TLS: the ClientHello's SNI names it (override-destination off: to the address the client used).
        let (tls, tlsBody) = lab.run("client", "curl -sSk -m 5 --resolve x.test:443:10.77.200.2 https://x.test/small")
        #expect(tls == 0 && tlsBody.hasPrefix("ok"), "\(tls) \(tlsBody)")
        let (tlsRejected, _) = lab.run(
            "client", "curl -sSk -m 5 --resolve www.blocked.test:443:10.77.200.2 https://www.blocked.test/small")
        #expect(tlsRejected != 0 && tlsRejected != 28)
        // From the router itself too.
        let (local, localBody) = lab.run(
            "router", "curl -sSk -m 5 --resolve x.test:443:10.77.200.2 https://x.test/small")
        #expect(local == 0 && localBody.hasPrefix("ok"), "\(local) \(localBody)")
        // A server that speaks first on a sniffed port: the client sends nothing, the wait
        // runs out, and the connection is decided without a name and works.
        // The client times connect() to the banner itself: a loaded machine's process start-up is not in it.
        func firstLine() -> (Int32, String, Double) {
            let (code, output) = lab.run("client", "python3 \(lab.servers) first-line-timed 10.77.200.2 2525")
            // By bytes: "\r\n" is one Character to Swift, so split(separator: "\n") would not cut there.
            let lines = output.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
                .map { String(decoding: $0, as: UTF8.self) }
            let seconds = lines.count >= 2 ? Double(lines[lines.count - 2]) ?? -1 : -1
            return (code, (lines.first ?? "") + "\n", seconds)
        }
        let (banner, line, elapsed) = firstLine()
        #expect(banner == 0 && line == "220 banner\r\n", "\(banner) \(line.debugDescription) \(elapsed)")
        #expect(elapsed >= 0.3 && elapsed < 2.5, "\(elapsed) s")
        // After five such waits the destination is decided at once (as mihomo's skip list does).
        for _ in 1...4 { _ = firstLine() }
        let (quick, quickLine, quickElapsed) = firstLine()
        #expect(quick == 0 && quickLine == "220 banner\r\n")
        #expect(quickElapsed >= 0 && quickElapsed < 0.25, "\(quickElapsed) s")

        _ = lab.harness.waitUntil(3) { lab.harness.log.contains("-> 10.77.200.2:2525 [") }
        let log = lab.harness.log
        for expected in [
            "-> 10.77.200.2:80 (allowed.test) [MATCH] DIRECT",
            "-> 10.77.200.2:80 (blocked.test) [DOMAIN-SUFFIX,blocked.test] REJECT",
            "-> 10.77.200.99:80 (elsewhere.test) [MATCH] DIRECT",
            "-> 10.77.200.2:443 (x.test) [MATCH] DIRECT",
            "-> 10.77.200.2:443 (www.blocked.test) [DOMAIN-SUFFIX,blocked.test] REJECT",
            "-> 10.77.200.2:2525 [MATCH] DIRECT",
        ] {
            #expect(log.contains(expected), "missing \(expected)\n\(log.suffix(3000))")
        }
    }
}
