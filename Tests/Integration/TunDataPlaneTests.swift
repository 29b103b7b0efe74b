import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real traffic through a real TUN device, in namespaces the tests make: local mode (traffic
/// from the router itself) and gateway mode (from the client namespace, forwarded).
@Suite("TUN data plane (lab)", .serialized, .enabled(if: geteuid() == 0, "needs root for namespaces and TUN"))
struct TunDataPlaneTests {
    /// Expected sha256 of the lab's 100 MiB file.
    static func expectedDigest(_ lab: Lab) -> String {
        let www = ProcessInfo.processInfo.environment["LAB_WWW"] ?? "/tmp/sluice-lab-www"
        return ((try? String(contentsOfFile: www + "/100m.sha256", encoding: .utf8)) ?? "").trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    @Test(
        "100 MiB download with the right sha256, and 1,000 sequential + 200 concurrent connections, local and gateway")
    func tcpThroughTun() throws {
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        let before = lab.routingState()
        try lab.start()
        let digest = Self.expectedDigest(lab)
        #expect(digest.count == 64)
        for role in ["router", "client"] {
            let (status, output) = lab.run(role, "curl -s --max-time 60 http://10.77.200.2/100m.bin | sha256sum")
            #expect(status == 0)
            #expect(output.hasPrefix(digest), "\(role): \(output)")
            let (_, many) = lab.run(role, "python3 \(lab.servers) tcp-many 10.77.200.2 80 1000 200", timeout: 300)
            #expect(many.contains("sequential 1000/1000 concurrent 200/200"), "\(role): \(many)")
        }
        // It really went through sluice: the tun worker counted the flows (stats are polled
        // every few heartbeats, so wait for the next poll).
        #expect(
            lab.harness.waitUntil(10) { (lab.harness.worker("tun")?.stats["tcp.flows"] ?? 0) >= 2402 },
            "\(lab.harness.worker("tun")?.stats ?? [:])")
        #expect(lab.harness.log.contains("tcp 10.77.1.2:"), "gateway connections are logged with their rule")
        lab.harness.signal(SIGTERM)
        #expect(lab.harness.waitUntil(10) { lab.harness.pollExit() != nil })
        #expect(lab.routingState() == before, "rules/routes after stop differ from before start")
    }

    @Test("uploads: iperf3 client to server through the TUN, and a server that closes mid-upload does not hurt sluice")
    func uploads() throws {
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        try lab.start()
        for role in ["client", "router"] {
            let (status, json) = lab.run(role, "iperf3 -c 10.77.200.2 -t 2 -J", timeout: 30)
            #expect(status == 0, "\(role): \(json.suffix(300))")
            let received =
                (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
                .flatMap { ($0["end"] as? [String: Any])?["sum_received"] as? [String: Any] }?["bytes"] as? Int ?? 0
            #expect(received > 10_000_000, "\(role): the server received \(received) bytes")
        }
        // POST 100 MiB to a server that answers 501 and closes while we are still sending:
        // the relay writes into a reset socket (EPIPE), which must not kill the worker.
        lab.run("client", "curl -s -m 20 -o /dev/null -F f=@/tmp/sluice-lab-www/100m.bin http://10.77.200.2/small")
        #expect(lab.run("client", "curl -s --max-time 5 http://10.77.200.2/small").1 == "ok\n")
        #expect(
            lab.harness.worker("tun")?.restarts == 0,
            "the tun worker restarted: \(lab.harness.worker("tun")?.lastExit.map { "\($0)" } ?? "")")
    }

    @Test("UDP: 10,000 datagrams echoed without loss, one source port for two servers (full cone), v4 and v6")
    func udpThroughTun() throws {
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        try lab.start()
        for (role, host) in [("client", "10.77.200.2"), ("router", "10.77.200.2"), ("client", "fd77:200::2")] {
            let (_, output) = lab.run(role, "python3 \(lab.servers) udp-client \(host) 7 10000")
            #expect(output.contains("sent 10000 received 10000 lost 0"), "\(role) \(host): \(output)")
        }
        for role in ["client", "router"] {
            let (_, cone) = lab.run(role, "python3 \(lab.servers) fullcone 10.77.200.2 10.77.200.3 7")
            let words = cone.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
            #expect(
                words.count == 4 && words[1] != "-" && words[1] == words[3],
                "\(role): both servers must see one source port: \(cone)")
        }
    }

    @Test("ping through the TUN is answered by the real host, and fails when it does not answer")
    func pingThroughTun() throws {
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        try lab.start()
        let (ok, output) = lab.run("client", "ping -c 3 -W 2 10.77.200.2")
        #expect(ok == 0, "\(output)")
        #expect(output.contains("3 received"), "\(output)")
        // The far host stops answering echo: a locally answering proxy would still reply.
        lab.run("wan", "sysctl -qw net.ipv4.icmp_echo_ignore_all=1")
        let (silent, silentOutput) = lab.run("client", "ping -c 2 -W 1 10.77.200.2")
        #expect(silent != 0, "ping succeeded although the host ignores echo:\n\(silentOutput)")
        lab.run("wan", "sysctl -qw net.ipv4.icmp_echo_ignore_all=0")
        // An address nobody has: no answer either.
        let (down, _) = lab.run("client", "ping -c 2 -W 1 10.77.200.99")
        #expect(down != 0)
        let stats = try #require(lab.harness.worker("tun")?.stats)
        _ = stats
        #expect(lab.harness.waitUntil(10) { (lab.harness.worker("tun")?.stats["icmp.replies"] ?? 0) >= 3 })
    }

    @Test("UID and PROCESS-NAME rules: local traffic is decided by the owner of its socket; forwarded traffic has none")
    func ownerRules() throws {
        let config = Lab.config.replacingOccurrences(
            of: "  - MATCH,DIRECT", with: "  - UID,65534,REJECT\n  - PROCESS-NAME,python3.11,REJECT\n  - MATCH,DIRECT")
        let lab = try Lab(config: config)
        defer { lab.stop() }
        try lab.start()
        let asNobody = "setpriv --reuid=65534 --regid=65534 --clear-groups"
        let (refused, _) = lab.run("router", "\(asNobody) curl -sS -m 5 http://10.77.200.2/small")
        #expect(refused == 7, "nobody's connection is refused by UID,65534")
        let udp = lab.run("router", "\(asNobody) /usr/bin/python3 \(lab.servers) udp-twice 10.77.200.2 7 0.1").1
        #expect(udp == "refused refused\n", "\(udp)")
        #expect(lab.run("router", "curl -sS -m 5 http://10.77.200.2/small").1 == "ok\n", "root's curl is not")
        // python3 is /usr/bin/python3.11 (or pyenv's python3.11): refused by its name, as root too.
        let python = lab.run("router", "python3 \(lab.servers) tcp-many 10.77.200.2 80 1 0").1
        #expect(python.contains("sequential 0/1"), "\(python)")
        #expect(
            lab.run("client", "python3 \(lab.servers) tcp-many 10.77.200.2 80 1 0").1.contains("sequential 1/1"),
            "forwarded traffic has no local owner")
        let log = lab.harness.log
        #expect(log.contains("[UID,65534] REJECT"))
        #expect(log.contains("[PROCESS-NAME,python3.11] REJECT"))
    }

    @Test("TCP keep-alive (keep-alive-idle, keep-alive-interval) on both sides of a relayed connection")
    func keepAlive() throws {
        let lab = try Lab(config: "keep-alive-idle: 40\nkeep-alive-interval: 7\n" + Lab.config)
        defer { lab.stop() }
        try lab.start()
        let holder = try OSThread.start(name: "holder") {
            _ = lab.run(
                "client",
                "python3 -c 'import socket,time; s=socket.create_connection((\"10.77.200.2\", 80)); time.sleep(4)'")
        }
        defer { holder.join() }
        #expect(lab.harness.waitUntil(3) { (lab.harness.worker("tun")?.stats["tcp.active"] ?? 0) >= 1 })
        // The relay's two sockets in the router: to the server, and the accepted client side.
        let sockets = lab.run("router", "ss -tnoH state established").1
        let kept = sockets.split(separator: "\n").filter { $0.contains("timer:(keepalive,") }
        #expect(kept.count >= 2, "\(sockets)")
        #expect(kept.contains { $0.contains("10.77.200.2:80") }, "the server side: \(sockets)")
        #expect(
            kept.allSatisfy { line in
                // ss prints the time left before the first probe: at most the configured 40 s.
                guard let range = line.range(of: "keepalive,") else { return false }
                let rest = line[range.upperBound...]
                return rest.hasPrefix("3") || rest.hasPrefix("40") || rest.hasPrefix("2")
            }, "\(kept)")
    }

    @Test("REJECT gives the client a fast refusal (RST, ICMP unreachable), not a timeout")
    func rejectIsFast() throws {
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        try lab.start()
        let started = Date()
        let (status, output) = lab.run("client", "curl -sS --max-time 10 http://10.77.200.4/small")
        let elapsed = Date().timeIntervalSince(started)
        // curl exit 7: could not connect (the RST answered the SYN); 28 would be a timeout.
        #expect(status == 7, "\(output)")
        #expect(elapsed < 2, "refusal took \(elapsed) s")
        let (_, udp) = lab.run("client", "python3 \(lab.servers) udp-client 10.77.200.4 7 5")
        #expect(udp.contains("received 0"), "\(udp)")
    }

    @Test("connections the server closed first leave no TIME_WAIT behind on sluice's listener once their NAT ports go")
    func noTimeWaitLeft() throws {
        // With a server that closes first, the listener's socket sends the first FIN and would sit in TIME_WAIT for
        // 60 s; a NAT port that comes round within that time (4 s at 16,000 connections a second) would meet it, and
        // a new client's SYN with a lower sequence number stalls a second. sluice resets that TIME_WAIT when the port's
        // entry goes (15 s after the close).
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        try lab.start()
        let (status, out) = lab.run(
            "client",
            "for i in $(seq 40); do curl -sS -m 5 -H 'Connection: close' http://10.77.200.2/small || exit 1; done | grep -c ok"
        )
        #expect(status == 0 && out.trimmingCharacters(in: .whitespacesAndNewlines) == "40", "\(out)")
        // The listener's sockets (the relay's own sockets to the server, peer port 80, are not the NAT's business).
        let listenerSide = "ss -Htan state time-wait | awk '$4 !~ /:80$/'"
        let timeWait = {
            Int(lab.run("router", "\(listenerSide) | wc -l").1.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
        let before = timeWait()
        #expect(before >= 20, "most of the listener's sockets closed first: \(before) of 40 in TIME_WAIT")
        #expect(lab.harness.waitUntil(25) { (lab.harness.worker("tun")?.stats["tcp.nat.entries"] ?? 1) == 0 })
        #expect(
            lab.harness.waitUntil(3) { timeWait() == 0 },
            "still in TIME_WAIT: \(lab.run("router", "\(listenerSide) | head -5").1)")
        #expect(lab.run("client", "curl -sS -m 5 -H 'Connection: close' http://10.77.200.2/small").1 == "ok\n")
    }

    @Test(
        "kill -9 of the tun worker during traffic: new connections work within 1 s of the restart, no duplicate rules")
    func tunWorkerCrash() throws {
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        try lab.start()
        let stateBefore = lab.routingState()
        let old = try #require(lab.harness.worker("tun")?.pid)
        // A download in flight while the worker dies.
        lab.run("client", "(curl -s --max-time 20 -o /dev/null http://10.77.200.2/100m.bin &) ; sleep 0.3")
        kill(old, SIGKILL)
        #expect(
            lab.harness.waitUntil(5) { lab.harness.worker("tun").map { $0.pid != old && $0.state == "ready" } ?? false }
        )
        let readyAt = Date()
        var firstSuccess: TimeInterval?
        while Date().timeIntervalSince(readyAt) < 5 {
            if lab.run("client", "curl -s --max-time 1 http://10.77.200.2/small").1 == "ok\n" {
                firstSuccess = Date().timeIntervalSince(readyAt)
                break
            }
        }
        let success = try #require(firstSuccess, "no connection succeeded after the restart; log:\n\(lab.harness.log)")
        #expect(success < 1, "first new connection after \(success) s")
        #expect(lab.routingState() == stateBefore, "rules or routes changed (duplicates?) across the restart")
    }

    @Test("a pre-created persistent device (ip tuntap add ... user sluice) is attached to and left in place")
    func preCreatedDevice() throws {
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        let (made, output) = lab.run("router", "ip tuntap add mode tun user sluice name sluice0")
        #expect(made == 0, "\(output)")
        try lab.start()
        #expect(lab.run("client", "curl -s --max-time 5 http://10.77.200.2/small").1 == "ok\n")
        lab.harness.signal(SIGTERM)
        #expect(lab.harness.waitUntil(10) { lab.harness.pollExit() != nil })
        let (exists, _) = lab.run("router", "ip link show sluice0")
        #expect(exists == 0, "the administrator's device was removed")
        let (_, addresses) = lab.run("router", "ip -brief addr show sluice0")
        #expect(!addresses.contains("172.19.0.1"), "addresses sluice added stay behind: \(addresses)")
    }

    @Test("reload: a rules change applies in place to new connections; a tun change restarts the worker")
    func reload() throws {
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        try lab.start()
        let pid = try #require(lab.harness.worker("tun")?.pid)
        #expect(lab.run("client", "curl -s --max-time 5 http://10.77.200.2/small").1 == "ok\n")
        // One UDP socket talks to .2 before and after the reload (the flow's cached route
        // must not outlive the rules it came from).
        let twice = lab.harness.directory + "/udp-twice.out"
        lab.run("client", "(python3 \(lab.servers) udp-twice 10.77.200.2 7 3 >\(twice) 2>&1 &); sleep 1")
        // Reject .2 now: same worker, new decision for the next connection.
        let rejecting = Lab.config.replacingOccurrences(
            of: "  - MATCH,DIRECT", with: "  - IP-CIDR,10.77.200.2/32,REJECT\n  - MATCH,DIRECT")
        try rejecting.write(toFile: lab.harness.configPath, atomically: true, encoding: .utf8)
        lab.harness.signal(SIGHUP)
        #expect(lab.harness.waitUntil(5) { lab.harness.status()?.generation == 2 })
        #expect(lab.harness.waitUntil(5) { lab.run("client", "curl -s --max-time 2 http://10.77.200.2/small").0 == 7 })
        #expect(
            lab.harness.waitUntil(8) { (try? String(contentsOfFile: twice, encoding: .utf8)) == "echo refused\n" },
            "same UDP socket before/after the reload: \((try? String(contentsOfFile: twice, encoding: .utf8)) ?? "-")")
        #expect(lab.harness.worker("tun")?.pid == pid, "a rules change must not restart the worker")
        // A new MTU needs a fresh data plane: the worker restarts, and it is not a failure.
        try rejecting.replacingOccurrences(of: "  device: sluice0", with: "  device: sluice0\n  mtu: 1500")
            .write(toFile: lab.harness.configPath, atomically: true, encoding: .utf8)
        lab.harness.signal(SIGHUP)
        #expect(
            lab.harness.waitUntil(10) {
                lab.harness.worker("tun").map { $0.pid != pid && $0.state == "ready" } ?? false
            })
        #expect(lab.harness.worker("tun")?.restarts == 0)
        #expect(lab.run("router", "ip link show sluice0").1.contains("mtu 1500"))
        #expect(lab.run("client", "curl -s --max-time 5 http://10.77.200.3/small").1 == "ok\n")
    }

    @Test("auto-detect-interface follows a new default route")
    func egressFollows() throws {
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        try lab.start()
        #expect(lab.harness.log.contains("DIRECT traffic leaves through wan0"))
        // A second uplink becomes the default route.
        lab.run(
            "router",
            "ip link add up2 type veth peer name up2p && ip link set up2 up && ip link set up2p up && ip addr add 10.99.0.1/24 dev up2 && ip route replace default via 10.99.0.2 dev up2"
        )
        #expect(
            lab.harness.waitUntil(5) { lab.harness.log.contains("egress changed from wan0 to up2") },
            "\(lab.harness.log)")
        lab.run("router", "ip route replace default via 10.77.2.2 dev wan0")
        #expect(lab.harness.waitUntil(5) { lab.harness.log.contains("egress changed from up2 to wan0") })
        #expect(lab.run("client", "curl -s --max-time 5 http://10.77.200.2/small").1 == "ok\n")
    }

    @Test("out of file descriptors: excess connections are refused, and service resumes without a restart")
    func descriptorExhaustion() throws {
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        // The tun worker inherits sluiced's limit; each relayed connection holds six
        // descriptors (two sockets, two pipes), so a few dozen connections exhaust it.
        try lab.start(launcher: ["/usr/bin/prlimit", "--nofile=64:64", "--"])
        let pid = try #require(lab.harness.worker("tun")?.pid)
        let hold = """
            python3 -c 'import socket,time
            s=[]
            for i in range(100):
                try: s.append(socket.create_connection(("10.77.200.2",80),timeout=2))
                except OSError: pass
            time.sleep(1)
            print(len(s))'
            """
        lab.run("client", hold, timeout: 60)
        #expect(
            lab.harness.waitUntil(5) { lab.run("client", "curl -s --max-time 2 http://10.77.200.2/small").1 == "ok\n" },
            "no service after the flood; log:\n\(lab.harness.log.suffix(2000))")
        #expect(lab.harness.worker("tun")?.pid == pid)
        // Whichever call ran out first (accept, or the relay's pipes) says so in the log.
        #expect(lab.harness.log.contains("out of file descriptors") || lab.harness.log.contains("Too many open files"))
    }

    @Test("dns-hijack: UDP and TCP DNS to any address is answered by the dns worker, also across its restart")
    func dnsHijack() throws {
        let config =
            Lab.config.replacingOccurrences(
                of: "  auto-detect-interface: true", with: "  auto-detect-interface: true\n  dns-hijack: [any:53]")
            + "\ndns:\n  enable: true\n  nameserver: [10.77.200.2]\n"
        let lab = try Lab(config: config)
        defer { lab.stop() }
        try lab.start()
        #expect(lab.harness.waitUntil(10) { lab.harness.worker("dns")?.state == "ready" })
        // 10.77.200.9 runs no DNS server (nothing runs there at all): only a hijack answers.
        for role in ["client", "router"] {
            for transport in ["", " tcp"] {
                let (_, answer) = lab.run(role, "python3 \(lab.servers) dns-query 10.77.200.9 a.test\(transport)")
                #expect(answer == "10.77.200.2\n", "\(role)\(transport): \(answer)")
            }
        }
        // The dns worker's own upstream queries bypass the TUN (uidrange rule), or they would
        // be hijacked straight back to it.
        #expect(lab.run("router", "ip rule show").1.contains("uidrange"))
        let old = try #require(lab.harness.worker("dns")?.pid)
        kill(old, SIGKILL)
        #expect(
            lab.harness.waitUntil(5) { lab.harness.worker("dns").map { $0.pid != old && $0.state == "ready" } ?? false }
        )
        #expect(
            lab.harness.waitUntil(5) {
                lab.run("client", "python3 \(lab.servers) dns-query 10.77.200.9 b.test").1 == "10.77.200.2\n"
            },
            "hijack did not resume after the dns worker restarted")
    }

    /// Starts a lab whose tun section has `key`, fetches from .2 and .3, and checks that
    /// both answer but only .3 went through sluice.
    private func labCapturingOnlyDotThree(_ key: String) throws -> Lab {
        let config = Lab.config.replacingOccurrences(
            of: "  auto-detect-interface: true", with: "  auto-detect-interface: true\n  \(key)")
        let lab = try Lab(config: config)
        do {
            try lab.start()
        } catch {
            lab.stop()
            throw error
        }
        for host in ["10.77.200.2", "10.77.200.3"] {
            #expect(lab.run("client", "curl -s --max-time 5 http://\(host)/small").1 == "ok\n")
        }
        #expect(lab.harness.waitUntil(3) { lab.harness.log.contains("-> 10.77.200.3:80 [MATCH] DIRECT") })
        #expect(!lab.harness.log.contains("-> 10.77.200.2:80"))
        return lab
    }

    @Test("route-address captures only the given prefixes")
    func routeScope() throws {
        let lab = try labCapturingOnlyDotThree("route-address: [10.77.200.3/32]")
        defer { lab.stop() }
        #expect(lab.run("router", "ip route show table 2022").1.contains("10.77.200.3 dev sluice0"))
    }

    @Test("route-exclude-address keeps a prefix out of the TUN; a device going down is reported and restored")
    func routeExcludeAndLinkDown() throws {
        let lab = try labCapturingOnlyDotThree("route-exclude-address: [10.77.200.2/32]")
        defer { lab.stop() }
        #expect(lab.run("router", "ip rule show").1.contains("to 10.77.200.2 lookup main"))
        lab.run("router", "ip link set sluice0 down")
        #expect(lab.harness.waitUntil(5) { lab.harness.log.contains("sluice0 went down") })
        lab.run("router", "ip link set sluice0 up")
        #expect(
            lab.harness.waitUntil(5) { lab.harness.log.contains("sluice0 is up again; addresses and routes restored") })
        // The kernel dropped table 2022's route with the link; capture works again.
        #expect(lab.run("client", "curl -s --max-time 5 http://10.77.200.3/small").1 == "ok\n")
        #expect(
            lab.harness.waitUntil(3) {
                lab.harness.log.components(separatedBy: "-> 10.77.200.3:80 [MATCH] DIRECT").count == 3
            },
            "the connection after the device came back did not go through sluice")
    }

    @Test("IPv6: 100 MiB download and connections through the TUN")
    func ipv6() throws {
        let lab = try Lab(config: Lab.config)
        defer { lab.stop() }
        try lab.start()
        let digest = Self.expectedDigest(lab)
        let (status, output) = lab.run("client", "curl -s --max-time 60 'http://[fd77:200::2]/100m.bin' | sha256sum")
        #expect(status == 0)
        #expect(output.hasPrefix(digest), "\(output)")
        let (_, many) = lab.run("router", "python3 \(lab.servers) tcp-many fd77:200::2 80 200 50", timeout: 200)
        #expect(many.contains("sequential 200/200 concurrent 50/50"), "\(many)")
    }
}
