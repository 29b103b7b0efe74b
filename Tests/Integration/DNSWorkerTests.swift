import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The dns worker as users meet it: `dns.listen` on port 53 (bound by sluiced, served by a
/// worker without capabilities), asked with kdig, with a real dnsmasq upstream, all inside
/// the harness's own network namespace.
@Suite("dns worker (integration)", .serialized, .enabled(if: geteuid() == 0, "needs root for namespaces and port 53"))
struct DNSWorkerTests {
    static func config(upstreamPort: UInt16, range: String = "198.18.0.1/16") -> String {
        """
        log-level: info
        tun:
          enable: false
        dns:
          enable: true
          listen: 127.0.0.1:53
          enhanced-mode: fake-ip
          fake-ip-range: \(range)
          fake-ip-filter: ["*.lan", "+.real.test", "+.nx.test"]
          nameserver: [udp://127.0.0.1:\(upstreamPort)]
        hosts:
          fixed.test: 10.9.9.9
          alias.test: real.test
        rules:
          - MATCH,DIRECT

        """
    }

    /// Starts dnsmasq and sluiced in the harness's namespace.
    static func start(_ name: String = #function, range: String = "198.18.0.1/16") throws -> (SluicedHarness, Dnsmasq) {
        let port = UInt16.random(in: 20000...40000)
        let harness = try SluicedHarness(config: config(upstreamPort: port, range: range), name: name)
        let namespace = try #require(harness.namespace)
        let upstream = try Dnsmasq(
            port: port, namespace: namespace,
            options: ["--address=/test/10.77.200.2", "--address=/lan/10.1.1.1", "--address=/nx.test/"])
        try harness.start()
        guard harness.waitUntil(10, { harness.worker("dns")?.state == "ready" }) else {
            throw SystemError("dns worker not ready; log:\n\(harness.log)", errno: ETIMEDOUT)
        }
        return (harness, upstream)
    }

    static func kdig(_ harness: SluicedHarness, _ arguments: String) -> String {
        Shell.run("ip netns exec \(harness.namespace!) kdig @127.0.0.1 +timeout=2 +retry=0 \(arguments)").1
    }

    @Test(
        "kdig over UDP and TCP: pool addresses, repeatable; filtered names, hosts and aliases real; AAAA empty; NXDOMAIN"
    )
    func answers() throws {
        let (harness, upstream) = try Self.start()
        defer {
            harness.stop()
            upstream.stop()
        }
        let a = Self.kdig(harness, "+short a.test A").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(a.hasPrefix("198.18."), "a.test: \(a)\n\(harness.log)")
        #expect(Self.kdig(harness, "+short a.test A").trimmingCharacters(in: .whitespacesAndNewlines) == a)
        #expect(Self.kdig(harness, "+tcp +short a.test A").trimmingCharacters(in: .whitespacesAndNewlines) == a, "TCP")
        let b = Self.kdig(harness, "+tcp +short b.test A").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(b.hasPrefix("198.18.") && b != a)
        #expect(Self.kdig(harness, "+short printer.lan A").contains("10.1.1.1"))
        #expect(Self.kdig(harness, "+short www.real.test A").contains("10.77.200.2"))
        #expect(Self.kdig(harness, "+short fixed.test A").contains("10.9.9.9"))
        #expect(Self.kdig(harness, "+short alias.test A").contains("10.77.200.2"))
        let aaaa = Self.kdig(harness, "a.test AAAA")
        #expect(aaaa.contains("status: NOERROR") && aaaa.contains("ANSWER: 0"), "\(aaaa)")
        let fake = Self.kdig(harness, "a.test A")
        #expect(fake.contains("\t1\tIN\tA"), "fake answers have TTL 1: \(fake)")
        #expect(Self.kdig(harness, "x.nx.test A").contains("NXDOMAIN"))
        // EDNS: kdig sends an OPT record and gets one back.
        #expect(Self.kdig(harness, "+edns a.test A").contains("EDNS PSEUDOSECTION"))
    }

    @Test("10,000 random and mutated packets to port 53: FORMERR or silence, and the worker never restarts")
    func fuzzOverTheWire() throws {
        let (harness, upstream) = try Self.start()
        defer {
            harness.stop()
            upstream.stop()
        }
        let pid = try #require(harness.worker("dns")?.pid)
        let script = """
            import random, socket, struct
            rng = random.Random(0x5EED)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.2)
            def q(name, qtype=1):
                return struct.pack(">HHHHHH", rng.randrange(65536), 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack(">HH", qtype, 1)
            formerr = answered = silent = wrong = 0
            for i in range(10000):
                if i % 4 == 0:
                    m = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
                else:
                    m = bytearray(q(rng.choice(["a.test", "www.real.test", "x.lan"]), rng.choice([1, 28, 15, 65])))
                    for _ in range(rng.randrange(1, 6)):
                        k = rng.randrange(4)
                        if k == 0 and m: m[rng.randrange(len(m))] = rng.randrange(256)
                        elif k == 1 and m: del m[-rng.randrange(1, min(8, len(m)) + 1):]
                        elif k == 2: m += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
                        elif len(m) >= 12: m[rng.randrange(4, 12)] = rng.randrange(256)
                    m = bytes(m)
                s.sendto(m, ("127.0.0.1", 53))
                if i % 50 != 0:
                    continue
                # Every 50th: wait for what comes back, and check it answers this message.
                try:
                    while True:
                        r, _ = s.recvfrom(65535)
                        if len(m) >= 2 and r[:2] == m[:2]:
                            break
                    answered += 1
                    if r[3] & 0xF == 1: formerr += 1
                    if not r[2] & 0x80: wrong += 1
                except socket.timeout:
                    silent += 1
            print(answered, formerr, silent, wrong)
            """
        try script.write(toFile: harness.directory + "/fuzz.py", atomically: true, encoding: .utf8)
        let (status, output) = Shell.run("ip netns exec \(harness.namespace!) python3 \(harness.directory)/fuzz.py")
        #expect(status == 0, "\(output)")
        let counts = output.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        #expect(counts.count == 4, "\(output)")
        if counts.count == 4 {
            #expect(counts[0] > 50 && counts[1] > 5, "answered \(counts[0]), FORMERR \(counts[1]), silent \(counts[2])")
            #expect(counts[3] == 0, "every answer has QR set")
        }
        #expect(harness.worker("dns")?.pid == pid)
        #expect(harness.worker("dns")?.restarts == 0)
        // Said, naming the sender, but not 7,500 times.
        let said = harness.log.components(separatedBy: "malformed DNS message (").count - 1
        #expect(said >= 1 && said <= 40, "\(said) malformed-message lines")
        #expect(harness.log.contains("from udp client 127.0.0.1:"))
        #expect(Self.kdig(harness, "+short after.test A").hasPrefix("198.18."), "still answering")
    }

    @Test("kill -9 under a query loop: after the restart every answered fake address still stands for its name")
    func persistence() throws {
        let (harness, upstream) = try Self.start()
        defer {
            harness.stop()
            upstream.stop()
        }
        let pid = try #require(harness.worker("dns")?.pid)
        // A query loop in the namespace, bounded in count and time; kill -9 mid-way.
        let answers = harness.directory + "/answers.txt"
        let servers = Shell.packageRoot() + "/Scripts/lab-servers.py"
        let loader = try OSThread.start(name: "dns-load") {
            _ = Shell.run("ip netns exec \(harness.namespace!) python3 \(servers) dns-load 127.0.0.1 p 3000 \(answers)")
        }
        // Let the loop get going, then kill the worker mid-load.
        _ = harness.waitUntil(20) {
            ((try? String(contentsOfFile: answers, encoding: .utf8)) ?? "").split(separator: "\n").count > 500
        }
        kill(pid, SIGKILL)
        loader.join()
        #expect(harness.waitUntil(5) { harness.worker("dns").map { $0.pid != pid && $0.state == "ready" } ?? false })
        let lines = try String(contentsOfFile: answers, encoding: .utf8).split(separator: "\n")
        #expect(lines.count > 1000, "\(lines.count) answers")
        // Re-ask each name: same address. (The reverse, address → name, is what the tun worker
        // asks over the peer channel; the lab test checks it through real connections.)
        var checked = 0
        var mismatches: [String] = []
        let sample = lines.enumerated().filter { $0.offset % 25 == 0 }.map(\.element)
        for line in sample {
            let parts = line.split(separator: " ")
            guard parts.count == 2 else { continue }
            let now = Self.kdig(harness, "+short \(parts[0]) A").trimmingCharacters(in: .whitespacesAndNewlines)
            if now != parts[1] { mismatches.append("\(parts[0]) was \(parts[1]), now \(now)") }
            checked += 1
        }
        #expect(checked > 40)
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
        #expect(harness.log.contains("mappings restored"))
    }
}
