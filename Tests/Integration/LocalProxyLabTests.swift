import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The local proxy ports (issue 19): `mixed-port`, `socks-port`, `port` and `listeners:` carry TCP and UDP through
/// the same rules and groups as the TUN, with `authentication`, `allow-lan` and the LAN lists holding, listed in
/// `/connections` with their inbound, and their sockets outliving a tun worker crash.
@Suite("local proxy ports (lab)", .serialized, .enabled(if: geteuid() == 0, "needs root for namespaces and TUN"))
struct LocalProxyLabTests {
    static let rejectedHost = "10.77.200.13"
    static let secret = "lab-\(UInt32.random(in: 0...UInt32.max))"

    static let config = """
        log-level: info
        external-controller: 127.0.0.1:9090
        secret: \(secret)
        mixed-port: 7890
        socks-port: 7891
        port: 7892
        allow-lan: false
        authentication: ["alice:wonderland"]
        lan-disallowed-ips: [10.77.1.2/32]
        listeners:
          - {name: lan-mixed, type: mixed, port: 7893, listen: 0.0.0.0, users: [{username: bob, password: builder}]}
          - {name: lan-socks, type: socks, port: 7894, listen: 0.0.0.0}
        tun:
          enable: true
          device: sluice0
          auto-route: true
          auto-detect-interface: true
        dns:
          enable: true
          nameserver: [10.77.200.2]
        proxies:
          - {name: v1, type: vless, server: 10.77.200.2, port: 443, uuid: 6f2a1b7e-8a1c-4c1e-9b1a-1a2b3c4d5e6f}
        proxy-groups:
          - {name: Proxy, type: select, proxies: [v1]}
        rules:
          - DOMAIN,blocked.test,Proxy
          - IP-CIDR,\(rejectedHost)/32,Proxy
          - IN-PORT,7892,Proxy
          - MATCH,DIRECT

        """

    static let alice = "alice:wonderland@127.0.0.1"

    @Test("curl through socks5h, http and CONNECT; wrong credentials, LAN clients and unavailable groups are refused")
    func tcpThroughThePorts() throws {
        let lab = try Lab(config: Self.config)
        defer { lab.stop() }
        lab.run("wan", "ip addr add \(Self.rejectedHost)/32 dev lo")
        try lab.start()
        #expect(lab.harness.waitUntil(10) { lab.harness.worker("tun")?.detail.contains("DEFAULT-MIXED") == true })

        // SOCKS5 with the name resolved by sluice (socks5h), plain HTTP, and CONNECT, each on its port.
        for proxy in [
            "socks5h://\(Self.alice):7890", "http://\(Self.alice):7890", "socks5h://\(Self.alice):7891",
            "socks4a://127.0.0.1:7891",
        ] {
            let (status, output) = lab.run("router", "curl -sS -m 5 -x \(proxy) http://www.test/small")
            if proxy.hasPrefix("socks4a") {
                // SOCKS4 cannot carry a password: an authenticated port refuses it.
                #expect(status != 0, "\(proxy): \(output)")
            } else {
                #expect(status == 0 && output == "ok\n", "\(proxy): \(output)")
            }
        }
        // A plain request whose head is larger than a pipe surely holds (a 12 KB header) relays through buffers.
        let large = lab.run(
            "router",
            "curl -sS -m 5 -x http://\(Self.alice):7890 -H \"X-Pad: $(head -c 12000 /dev/zero | tr '\\0' a)\" http://www.test/small"
        )
        #expect(large.0 == 0 && large.1 == "ok\n", "\(large.1)")
        // IN-PORT,7892 sends everything from that port to the unavailable group: the HTTP proxy answers 403.
        let byPort = lab.run(
            "router", "curl -s -o /dev/null -w '%{http_code}' -m 5 -x http://\(Self.alice):7892 http://www.test/small")
        #expect(byPort.1 == "403", "\(byPort.1)")
        let (tunnelStatus, tunnelOutput) = lab.run(
            "router", "curl -sS -m 5 -p -x http://\(Self.alice):7890 http://10.77.200.2/small")
        #expect(tunnelStatus == 0 && tunnelOutput == "ok\n", "CONNECT: \(tunnelOutput)")

        // Wrong or missing credentials.
        let wrongSocks = lab.run("router", "curl -sS -m 5 -x socks5h://alice:nope@127.0.0.1:7890 http://www.test/small")
        #expect(wrongSocks.0 != 0 && !wrongSocks.1.contains("ok"), "\(wrongSocks.1)")
        let wrongHTTP = lab.run(
            "router",
            "curl -s -o /dev/null -w '%{http_code}' -m 5 -x http://alice:nope@127.0.0.1:7890 http://www.test/small")
        #expect(wrongHTTP.1 == "407", "\(wrongHTTP.1)")
        let none = lab.run("router", "curl -sS -m 5 -x socks5h://127.0.0.1:7890 http://www.test/small")
        #expect(none.0 != 0, "\(none.1)")

        // A group whose only member is unsupported rejects at once, by name and by address.
        for url in ["http://blocked.test/small", "http://\(Self.rejectedHost)/small"] {
            let started = MonotonicClock.now
            let (status, output) = lab.run("router", "curl -sS -m 5 -x socks5h://\(Self.alice):7890 \(url)")
            let seconds = Double(MonotonicClock.elapsed(from: started, to: MonotonicClock.now)) / 1e9
            #expect(status != 0 && !output.contains("ok"), "\(url) reached the server: \(output)")
            #expect(seconds < 2, "\(url) not refused at once (\(seconds) s)")
        }
        #expect(lab.harness.log.contains("→ Proxy (group Proxy unavailable)"), "\(lab.harness.log.suffix(1500))")

        // allow-lan: false binds the default ports to 127.0.0.1: a LAN client cannot reach them.
        let lan = lab.run(
            "client",
            "curl -sS -m 5 -x socks5h://\(Self.alice.replacingOccurrences(of: "127.0.0.1", with: "10.77.1.1")):7890 http://www.test/small"
        )
        #expect(lan.0 != 0 && lan.1.contains("Failed to connect"), "\(lan.1)")
        // A listener with its own users serves the LAN; one on the default credentials obeys lan-disallowed-ips.
        let bob = lab.run("client", "curl -sS -m 5 -x socks5h://bob:builder@10.77.1.1:7893 http://www.test/small")
        #expect(bob.0 == 0 && bob.1 == "ok\n", "\(bob.1)")
        let disallowed = lab.run(
            "client", "curl -sS -m 5 -x socks5h://alice:wonderland@10.77.1.1:7894 http://www.test/small")
        #expect(disallowed.0 != 0, "\(disallowed.1)")
        let local = lab.run(
            "router", "curl -sS -m 5 -x socks5h://alice:wonderland@127.0.0.1:7894 http://www.test/small")
        #expect(local.0 == 0 && local.1 == "ok\n", "\(local.1)")
    }

    @Test(
        "UDP ASSOCIATE carries datagrams through the rules; /connections shows the inbound; the ports outlive a crash")
    func udpConnectionsAndCrash() throws {
        let lab = try Lab(config: Self.config)
        defer { lab.stop() }
        try lab.start()
        #expect(lab.harness.waitUntil(10) { lab.harness.worker("tun")?.detail.contains("DEFAULT-MIXED") == true })

        // The echo server reports the source it saw: the router's own address, as DIRECT sends it.
        let (status, output) = lab.run(
            "router", "python3 \(lab.servers) socks-udp 127.0.0.1 7890 10.77.200.3 7 alice wonderland")
        #expect(status == 0 && output.hasPrefix("10.77.200.3 7 10.77.2.1 ") && output.hasSuffix("hello\n"), "\(output)")
        // Without an association (no TCP handshake), a datagram goes nowhere.
        let stray = lab.run(
            "router",
            "python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.sendto(bytes([0,0,0,1,10,77,200,3,0,7])+b\"x\", (\"127.0.0.1\", 7890)); print(s.recvfrom(100))'"
        )
        #expect(stray.0 != 0 && stray.1.contains("timed out"), "\(stray.1)")

        // A long download through SOCKS is listed with its inbound.
        let result = "/tmp/\(lab.name)-slow"
        lab.run(
            "router",
            "curl -s -o /dev/null --limit-rate 2M -m 30 -x socks5h://\(Self.alice):7890 http://www.test/100m.bin >\(result) 2>&1 </dev/null &"
        )
        var listed: [String: Any]?
        _ = lab.harness.waitUntil(10) {
            let (_, body) = lab.run(
                "router", "curl -sS -m 5 -H 'Authorization: Bearer \(Self.secret)' http://127.0.0.1:9090/connections")
            let document = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
            let connections = document?["connections"] as? [[String: Any]] ?? []
            listed = connections.first { ($0["metadata"] as? [String: Any])?["host"] as? String == "www.test" }
            return listed != nil
        }
        let metadata = listed?["metadata"] as? [String: Any]
        #expect(metadata?["type"] as? String == "Socks5", "\(String(describing: listed))")
        #expect(metadata?["inboundName"] as? String == "DEFAULT-MIXED")
        #expect(metadata?["inboundUser"] as? String == "alice")
        #expect(metadata?["inboundPort"] as? String == "7890")
        #expect(listed?["chains"] as? [String] == ["DIRECT"])

        // The tun worker dies: sluiced keeps the listening socket, so a client that connects meanwhile waits in its
        // backlog and is served by the next worker.
        let pid = try #require(lab.harness.worker("tun")?.pid)
        #expect(pid > 0)
        if pid > 0 { kill(pid, SIGKILL) }
        let (afterStatus, afterOutput) = lab.run(
            "router", "curl -sS -m 20 -x socks5h://\(Self.alice):7890 http://www.test/small")
        #expect(afterStatus == 0 && afterOutput == "ok\n", "after the crash: \(afterOutput)")
        #expect(lab.harness.waitUntil(15) { (lab.harness.worker("tun")?.pid ?? 0) != pid })
        lab.run("router", "rm -f \(result)")
    }
}

/// mihomo's plain proxy use: no TUN, only a local port. The tun worker then runs without a device and without any
/// capability, and the port still follows the rules.
@Suite("local proxy ports without a TUN (lab)", .serialized, .enabled(if: geteuid() == 0, "needs root for namespaces"))
struct LocalProxyWithoutTUNLabTests {
    static let config = """
        log-level: info
        mixed-port: 7890
        dns:
          enable: true
          nameserver: [10.77.200.2]
        rules:
          - DOMAIN,blocked.test,REJECT
          - MATCH,DIRECT

        """

    @Test("the port carries TCP and UDP by the rules; the worker holds no capability and made no device")
    func portOnly() throws {
        let lab = try Lab(config: Self.config)
        defer { lab.stop() }
        try lab.start()
        #expect(
            lab.harness.worker("tun")?.detail.contains("no TUN") == true,
            "\(String(describing: lab.harness.worker("tun")))")
        let ok = lab.run("router", "curl -sS -m 5 -x socks5h://127.0.0.1:7890 http://www.test/small")
        #expect(ok.0 == 0 && ok.1 == "ok\n", "\(ok.1)")
        let http = lab.run("router", "curl -sS -m 5 -x http://127.0.0.1:7890 http://www.test/small")
        #expect(http.0 == 0 && http.1 == "ok\n", "\(http.1)")
        let blocked = lab.run("router", "curl -sS -m 5 -x socks5h://127.0.0.1:7890 http://blocked.test/small")
        #expect(blocked.0 != 0, "\(blocked.1)")
        let udp = lab.run("router", "python3 \(lab.servers) socks-udp 127.0.0.1 7890 10.77.200.3 7")
        #expect(udp.0 == 0 && udp.1.hasPrefix("10.77.200.3 7 10.77.2.1 "), "\(udp.1)")

        let pid = try #require(lab.harness.worker("tun")?.pid)
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let effective = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
        #expect(effective == "CapEff:\t0000000000000000", "\(String(describing: effective))")
        #expect(lab.run("router", "ip link show sluice0").0 != 0, "a TUN device exists")
    }

    @Test("without a dns worker, names from SOCKS clients resolve with the system resolver, for TCP and for UDP")
    func namesWithoutDNS() throws {
        let lab = try Lab(config: "log-level: info\nmixed-port: 7890\nrules: [\"MATCH,DIRECT\"]\n")
        defer { lab.stop() }
        try lab.start()
        #expect(lab.harness.worker("dns") == nil || lab.harness.worker("dns")?.enabled == false)
        // localhost is in /etc/hosts: the system resolver's answer, 127.0.0.1, where an echo server waits.
        let pidFile = "/tmp/\(lab.name)-echo.pid"
        lab.run("router", "python3 \(lab.servers) udp-echo 9007 127.0.0.1 >/dev/null 2>&1 & echo $! >\(pidFile)")
        defer {
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0
            {
                kill(pid, SIGTERM)
            }
            unlink(pidFile)
        }
        var udp = (Int32(1), "")
        _ = lab.harness.waitUntil(5) {
            udp = lab.run("router", "python3 \(lab.servers) socks-udp 127.0.0.1 7890 localhost 9007")
            return udp.0 == 0
        }
        #expect(udp.0 == 0 && udp.1.hasPrefix("127.0.0.1 9007 127.0.0.1 ") && udp.1.hasSuffix("hello\n"), "\(udp.1)")
        let tcp = lab.run("router", "curl -sS -m 5 -x socks5h://127.0.0.1:7890 http://10.77.200.2/small")
        #expect(tcp.0 == 0 && tcp.1 == "ok\n", "\(tcp.1)")
    }
}
