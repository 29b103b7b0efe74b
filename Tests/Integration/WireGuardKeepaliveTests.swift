import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The keepalive worker with a real far peer: sluiced (tun and dns off) in the harness's namespace brings up a
/// WireGuard link with wireguard-go; a second namespace, joined by a veth pair, runs its own wireguard-go set up
/// with `wg` by the test.
@Suite(
    "keepalive worker: WireGuard over wireguard-go (integration)", .serialized,
    .enabled(
        if: geteuid() == 0 && access("/usr/bin/wireguard-go", X_OK) == 0 && access("/usr/bin/wg", X_OK) == 0,
        "needs root, wireguard-go and wg (Scripts/install-deps.sh)"))
struct WireGuardKeepaliveTests {
    static func sh(_ command: String) -> String {
        let (code, output) = Shell.run(command)
        if code != 0 { Issue.record("`\(command)` exited \(code): \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A fresh key pair from `wg`: (private, public), base64.
    static func keyPair() -> (String, String) {
        let key = sh("wg genkey")
        return (key, sh("echo \(key) | wg pubkey"))
    }

    /// What every test here starts from: fresh keys and names, sluiced (not started) in its own namespace with the
    /// configuration `config` builds from them, and the far peer joined to it by a veth. `stop()` ends both.
    struct Setup {
        let tag: String
        /// Our link's name.
        let link: String
        let ourPublic: String
        let farPublic: String
        let harness: SluicedHarness
        /// Our namespace (sluiced's).
        let ours: String
        let far: FarPeer

        init(
            name: String = #function,
            config: (_ link: String, _ ourKey: String, _ farPublic: String, _ tag: String) -> String
        ) throws {
            tag = String(UInt32.random(in: 0...0xff_ffff), radix: 16)
            link = "wgo\(tag)"
            let (ourKey, ourPublic) = WireGuardKeepaliveTests.keyPair()
            let (farKey, farPublic) = WireGuardKeepaliveTests.keyPair()
            self.ourPublic = ourPublic
            self.farPublic = farPublic
            harness = try SluicedHarness(config: config(link, ourKey, farPublic, tag), name: name)
            ours = try #require(harness.namespace)
            far = try FarPeer(ours: ours, tag: tag, privateKey: farKey)
        }

        func stop() {
            harness.stop()
            far.stop()
        }
    }

    /// The far side: a namespace with a veth to ours and its own wireguard-go.
    final class FarPeer {
        let namespace: String
        let link: String
        let privateKey: String
        let publicKey: String
        private(set) var pid: pid_t = 0

        init(ours: String, tag: String, privateKey: String) throws {
            namespace = "slwf\(tag)"
            link = "wgf\(tag)"
            self.privateKey = privateKey
            publicKey = WireGuardKeepaliveTests.sh("echo \(privateKey) | wg pubkey")
            _ = WireGuardKeepaliveTests.sh(
                """
                ip netns add \(namespace) && ip -n \(namespace) link set lo up &&
                ip link add vo\(tag) netns \(ours) type veth peer name vf\(tag) netns \(namespace) &&
                ip -n \(ours) addr add 10.201.0.1/24 dev vo\(tag) && ip -n \(ours) link set vo\(tag) up &&
                ip -n \(namespace) addr add 10.201.0.2/24 dev vf\(tag) && ip -n \(namespace) link set vf\(tag) up
                """)
            var request = SpawnRequest(
                executable: "/usr/sbin/ip", arguments: ["netns", "exec", namespace, "/usr/bin/wireguard-go", link],
                environment: ["WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error"], descriptors: [nil, nil, nil],
                account: nil, capabilities: 0)
            request.limitCapabilities = false
            request.parentDeathSignal = SIGKILL
            pid = try ProcessSpawner.spawn(request)
            let socket = "/var/run/wireguard/\(link).sock"
            for _ in 0..<250 where access(socket, F_OK) != 0 { usleep(20_000) }
        }

        func configure(ourPublicKey: String, keepalive: Int = 0) {
            let keyFile = "/tmp/\(link).key"
            try? privateKey.write(toFile: keyFile, atomically: true, encoding: .utf8)
            defer { unlink(keyFile) }
            _ = WireGuardKeepaliveTests.sh(
                """
                ip netns exec \(namespace) wg set \(link) private-key \(keyFile) listen-port 51902 \
                  peer \(ourPublicKey) allowed-ips 10.203.0.1/32 persistent-keepalive \(keepalive == 0 ? "off" : String(keepalive)) &&
                ip -n \(namespace) addr add 10.203.0.2/24 dev \(link) &&
                ip -n \(namespace) addr add 10.204.0.9/24 dev \(link) &&
                ip -n \(namespace) link set \(link) up
                """)
        }

        func stop() {
            if pid > 0 {
                kill(pid, SIGKILL)
                _ = ProcessSpawner.wait(for: pid)
            }
            _ = Shell.run("ip netns del \(namespace)")
            unlink("/var/run/wireguard/\(link).sock")
        }
    }

    static func config(
        link: String, privateKey: String, farPublicKey: String, endpoint: String = "10.201.0.2:51902",
        keepalive: String = "", linkExtra: String = "", allowedIPs: String = "10.203.0.2/32, 10.204.0.0/24"
    ) -> String {
        """
        log-level: info
        tun:
          enable: false
        dns:
          enable: false
        keepalive:
          interval: 1s
        \(keepalive)wireguard:
          - name: \(link)
            private-key: "\(privateKey)"
            address: [10.203.0.1/24]
            listen-port: 51901
        \(linkExtra)    peers:
              - public-key: "\(farPublicKey)"
                endpoint: \(endpoint)
                allowed-ips: [\(allowedIPs)]
                persistent-keepalive: 5
        rules:
          - MATCH,DIRECT

        """
    }

    static func ping(_ namespace: String, _ address: String) -> Bool {
        Shell.run("ip netns exec \(namespace) ping -c 1 -W 1 \(address)").0 == 0
    }

    @Test(
        "handshake and ping; kill -9 of wireguard-go: ping back within 5 s, no duplicate routes; kill -9 of the worker: link kept and adopted"
    )
    func link() throws {
        let setup = try Setup { link, key, farPublic, _ in
            Self.config(link: link, privateKey: key, farPublicKey: farPublic)
        }
        defer { setup.stop() }
        let (harness, ours, far, ourLink, farPublic) = (
            setup.harness, setup.ours, setup.far, setup.link, setup.farPublic
        )
        far.configure(ourPublicKey: setup.ourPublic)
        try harness.start()
        func stat(_ key: String) -> Int64? { harness.worker("keepalive")?.stats["wg.\(ourLink).\(key)"] }

        #expect(harness.waitUntil(15) { stat("up") == 1 }, "link up\n\(harness.log)")
        #expect(harness.waitUntil(15) { Self.ping(ours, "10.203.0.2") }, "ping through the link\n\(harness.log)")
        #expect(Self.ping(ours, "10.204.0.9"), "a route for a peer-side subnet")
        #expect(
            harness.waitUntil(10) { stat("peers.ok") == 1 },
            "handshake seen in status: \(harness.worker("keepalive")?.stats ?? [:])")
        #expect(Self.sh("ip -n \(ours) -o link show \(ourLink)").contains("mtu 1420"))
        let routesBefore = Self.sh("ip -n \(ours) route show dev \(ourLink) proto 115")
        #expect(routesBefore.split(separator: "\n").count == 2, "\(routesBefore)")
        // wireguard-go attaches to a persistent TUN the worker created.
        #expect(Self.sh("ip -n \(ours) -d link show \(ourLink)").contains("persist on"))
        let indexBefore = Self.sh("ip netns exec \(ours) cat /sys/class/net/\(ourLink)/ifindex")

        // Per-peer status over IPC (`sluiced status`): backend, pid, endpoint, handshake, counters, ok.
        #expect(
            harness.waitUntil(10) {
                guard let link = harness.status()?.links.first, let peer = link.peers.first else { return false }
                return link.name == ourLink && link.up && link.backend == "wireguard-go"
                    && link.pid == stat("pid").map(Int32.init)
                    && link.listenPort == 51901 && peer.publicKey == farPublic && peer.endpoint == "10.201.0.2:51902"
                    && peer.configuredEndpoint == "10.201.0.2:51902" && peer.state == "ok"
                    && (peer.handshakeAgeSeconds ?? 999) < 30 && peer.rxBytes > 0 && peer.txBytes > 0
            }, "per-peer status: \(String(describing: harness.status()?.links))")
        let table = Self.sh(
            "\(SluicedHarness.productsDirectory)/sluiced status --runtime-dir \(harness.runtimeDirectory)")
        #expect(
            table.contains("LINK") && table.contains(ourLink) && table.contains("10.201.0.2:51902")
                && table.contains("(ok)"), "\(table)")

        // kill -9 of our wireguard-go.
        let wgPID = pid_t(try #require(stat("pid")))
        // A link that never came up reports pid 0, and kill(0, SIGKILL) would end the test's own process group.
        try #require(wgPID > 0, "wireguard-go runs\n\(harness.log)")
        let status = ProcessStatus.read(pid: wgPID)
        #expect(status?.uid != 0, "wireguard-go runs as the service user")
        #expect(status?.capEffective == UInt64(1) << 12, "wireguard-go holds CAP_NET_ADMIN only")
        kill(wgPID, SIGKILL)
        let killedAt = MonotonicClock.now
        usleep(100_000)
        let back = harness.waitUntil(5) { Self.ping(ours, "10.203.0.2") }
        let seconds = Double(MonotonicClock.now - killedAt) / 1e9
        #expect(back, "ping back within 5 s after kill -9 of wireguard-go (took \(seconds) s)\n\(harness.log)")
        // Stats reach sluiced with the heartbeats, so they may be a beat behind.
        #expect(harness.waitUntil(5) { stat("pid") != Int64(wgPID) && stat("restarts") == 1 && stat("up") == 1 })
        let routesAfter = Self.sh("ip -n \(ours) route show dev \(ourLink) proto 115")
        #expect(routesAfter == routesBefore, "no duplicate routes")
        let indexAfter = Self.sh("ip netns exec \(ours) cat /sys/class/net/\(ourLink)/ifindex")
        #expect(indexAfter == indexBefore, "the same device survived the crash (persistent TUN)")

        // Someone deletes the link, or sets it down: the worker notices (link events) and brings it back.
        _ = Self.sh("ip -n \(ours) link del \(ourLink)")
        #expect(harness.waitUntil(5) { Self.ping(ours, "10.203.0.2") }, "ping back after `ip link del`\n\(harness.log)")
        #expect(Self.sh("ip -n \(ours) route show dev \(ourLink) proto 115") == routesBefore)
        #expect(harness.log.contains("the link was deleted (not by sluice)"))
        _ = Self.sh("ip -n \(ours) link set \(ourLink) down")
        #expect(
            harness.waitUntil(5) { Self.ping(ours, "10.203.0.2") }, "ping back after `ip link set down`\n\(harness.log)"
        )
        #expect(Self.sh("ip -n \(ours) route show dev \(ourLink) proto 115") == routesBefore)

        // kill -9 of the keepalive worker: the link stays, the new worker adopts it.
        let worker = try #require(harness.worker("keepalive")?.pid)
        // Stats ride with heartbeats: wait until they show the wireguard-go that runs now.
        let running = Self.sh("pgrep -f 'wireguard-go \(ourLink)$'")
        #expect(harness.waitUntil(5) { stat("pid").map(String.init) == running }, "stats show pid \(running)")
        let wgNow = try #require(stat("pid"))
        kill(worker, SIGKILL)
        #expect(Self.ping(ours, "10.203.0.2"), "the link carries traffic while the worker is gone")
        #expect(
            harness.waitUntil(10) {
                guard let w = harness.worker("keepalive") else { return false }
                return w.pid != worker && w.state == "ready" && w.stats["wg.\(ourLink).adopted"] == 1
                    && w.stats["wg.\(ourLink).up"] == 1
            }, "new worker adopted the link\n\(harness.log)")
        #expect(stat("pid") == wgNow, "the same wireguard-go\n\(harness.log)")
        #expect(Self.ping(ours, "10.203.0.2"))
        #expect(Self.sh("ip -n \(ours) route show dev \(ourLink) proto 115") == routesBefore)

        // Shutdown takes the link down and ends wireguard-go.
        harness.stop()
        #expect(Shell.run("ip -n \(ours) link show \(ourLink)").0 != 0 || harness.namespace == nil)
        #expect(WireGuardAlive.waitGone(pid_t(wgNow)), "wireguard-go ended with sluiced")
    }
}

extension WireGuardKeepaliveTests {
    @Test(
        "roaming: the far peer moves, new inbound flows are dropped here, its name now resolves to the new address: ping back within 20 s"
    )
    func roaming() throws {
        // A short flat-rx window so that the test does not wait the default 15 s.
        let setup = try Setup { link, key, farPublic, tag in
            Self.config(
                link: link, privateKey: key, farPublicKey: farPublic, endpoint: "far\(tag).roam.test:51902",
                keepalive: "  rx-timeout: 3s\n")
        }
        let (harness, ours, far, ourLink, tag) = (setup.harness, setup.ours, setup.far, setup.link, setup.tag)
        let host = "far\(tag).roam.test"
        // `ip netns exec` bind-mounts /etc/netns/NAME/hosts over /etc/hosts: the worker's getaddrinfo reads it.
        // Rewritten in place later (same inode), so the bind mount sees the new text.
        let hostsDirectory = "/etc/netns/\(ours)"
        let hosts = hostsDirectory + "/hosts"
        _ = Self.sh("mkdir -p \(hostsDirectory) && printf '127.0.0.1 localhost\\n10.201.0.2 \(host)\\n' > \(hosts)")
        defer {
            setup.stop()
            _ = Shell.run("rm -rf \(hostsDirectory)")
        }
        // The far side keeps sending (so that, without the firewall, our wireguard-go would roam by itself).
        far.configure(ourPublicKey: setup.ourPublic, keepalive: 1)
        _ = Self.sh("ip -n \(ours) addr add 10.202.0.1/24 dev vo\(tag)")
        try harness.start()
        #expect(harness.waitUntil(15) { Self.ping(ours, "10.203.0.2") }, "ping through the link\n\(harness.log)")

        // Only flows we start may come in on the veth.
        _ = Self.sh(
            """
            ip netns exec \(ours) nft add table inet slroam &&
            ip netns exec \(ours) nft add chain inet slroam in '{ type filter hook input priority 0; policy accept; }' &&
            ip netns exec \(ours) nft add rule inet slroam in iifname vo\(tag) ct state new drop
            """)
        // The move: new address, and the name follows it.
        _ = Self.sh(
            """
            printf '127.0.0.1 localhost\\n10.202.0.2 \(host)\\n' > \(hosts) &&
            ip -n \(far.namespace) addr del 10.201.0.2/24 dev vf\(tag) &&
            ip -n \(far.namespace) addr add 10.202.0.2/24 dev vf\(tag) &&
            ip -n \(far.namespace) route add 10.201.0.0/24 dev vf\(tag)
            """)
        let movedAt = MonotonicClock.now
        // The path is broken now: the far side cannot come in (new flow, dropped) and we send to the old address.
        #expect(!Self.ping(ours, "10.203.0.2"), "ping right after the move should fail")
        let back = harness.waitUntil(20) { Self.ping(ours, "10.203.0.2") }
        let seconds = Double(MonotonicClock.now - movedAt) / 1e9
        #expect(back, "ping back within 20 s of the move (took \(seconds) s)\n\(harness.log)")
        #expect(
            harness.log.contains("endpoint 10.201.0.2:51902 -> 10.202.0.2:51902"),
            "the change is logged\n\(harness.log)")
        let endpoint = Self.sh("ip netns exec \(ours) wg show \(ourLink) endpoints")
        #expect(endpoint.hasSuffix("10.202.0.2:51902"), "\(endpoint)")
        #expect(
            harness.waitUntil(5) {
                guard let peer = harness.status()?.links.first?.peers.first else { return false }
                return peer.configuredEndpoint == "\(host):51902" && peer.endpoint == "10.202.0.2:51902"
                    && peer.endpointChanges == 1
            }, "status shows the name, the new address and one change: \(String(describing: harness.status()?.links))")
        let drops = Self.sh("ip netns exec \(ours) nft list chain inet slroam in")
        #expect(drops.contains("ct state new drop"), "\(drops)")
    }

    @Test(
        "table off + route-metric: a TCP service here answers a far-side address outside the link's subnet (source rule); without the rule it times out"
    )
    func inboundSourceRule() throws {
        let setup = try Setup { link, key, farPublic, _ in
            Self.config(
                link: link, privateKey: key, farPublicKey: farPublic,
                linkExtra: "    table: \"off\"\n    route-metric: 10000\n")
        }
        defer { setup.stop() }
        let (harness, ours, far, ourLink) = (setup.harness, setup.ours, setup.far, setup.link)
        far.configure(ourPublicKey: setup.ourPublic)
        // Our main table's preferred default route goes nowhere (a blackhole), as on a machine whose uplink is not
        // the tunnel: without the source rule, replies to 10.204.0.9 would take it.
        _ = Self.sh("ip -n \(ours) route add blackhole default metric 10")
        try harness.start()
        #expect(harness.waitUntil(15) { Self.ping(ours, "10.203.0.2") }, "ping through the link\n\(harness.log)")
        let table = Self.sh("ip -n \(ours) rule show from 10.203.0.1")
        #expect(table.contains("from 10.203.0.1 lookup"), "source rule installed: \(table)")
        let words = table.split(whereSeparator: { $0 == " " || $0 == "\t" })
        let ownTable = words.firstIndex(of: "lookup").map { String(words[$0 + 1]) } ?? "0"
        let defaults = Self.sh("ip -n \(ours) route show table all default dev \(ourLink)")
        #expect(defaults.split(separator: "\n").count == 2, "main + own table: \(defaults)")

        // A TCP service here, bound to all addresses.
        var request = SpawnRequest(
            executable: "/usr/sbin/ip",
            arguments: ["netns", "exec", ours, "/usr/bin/python3", "-m", "http.server", "18089", "--bind", "0.0.0.0"],
            environment: [], descriptors: [nil, nil, nil], account: nil, capabilities: 0)
        request.limitCapabilities = false
        request.parentDeathSignal = SIGKILL
        let server = try ProcessSpawner.spawn(request)
        defer {
            kill(server, SIGKILL)
            _ = ProcessSpawner.wait(for: server)
        }
        let curl =
            "ip netns exec \(far.namespace) curl -s -o /dev/null -w '%{http_code}' --max-time 3 --interface 10.204.0.9 http://10.203.0.1:18089/"
        #expect(
            harness.waitUntil(10) { Shell.run(curl).1.contains("200") },
            "reachable from 10.204.0.9 through the link\n\(harness.log)")

        // Without the rule: the reply leaves by the dummy default route and the connection times out.
        _ = Self.sh("ip -n \(ours) rule del from 10.203.0.1")
        #expect(!Shell.run(curl).1.contains("200"), "without the source rule the connection should time out")

        // Shutdown removes sluice's rules for the link (checked before the harness deletes the namespace).
        _ = Self.sh("ip -n \(ours) rule add from 10.203.0.1 lookup \(ownTable) pref 5180 protocol 115")
        harness.signal(SIGTERM)
        #expect(harness.waitUntil(10) { harness.pollExit() != nil })
        let left = Self.sh("ip -n \(ours) rule show")
        #expect(!left.contains("10.203.0.1"), "rules left after shutdown: \(left)")
    }
}

enum WireGuardAlive {
    static func waitGone(_ pid: pid_t) -> Bool {
        for _ in 0..<150 {
            if !SluicedHarness.isAlive(pid) { return true }
            usleep(20_000)
        }
        return false
    }
}

extension WireGuardKeepaliveTests {
    @Test(
        "table auto with 0.0.0.0/0: wg-quick's rules take the default route into the link; the link's own UDP stays outside"
    )
    func defaultRoute() throws {
        let setup = try Setup { link, key, farPublic, _ in
            Self.config(
                link: link, privateKey: key, farPublicKey: farPublic, keepalive: "  inhibit-sleep: true\n",
                allowedIPs: "10.203.0.2/32, 0.0.0.0/0")
        }
        let (harness, ours, far, ourLink, tag) = (setup.harness, setup.ours, setup.far, setup.link, setup.tag)
        // A system bus of our own (Debian's dbus-daemon) without logind on it: sluiced says so and goes on.
        let bus = harness.directory + "/system_bus_socket"
        try """
        <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
          "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
        <busconfig><type>system</type><listen>unix:path=\(bus)</listen><auth>EXTERNAL</auth>
          <policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy>
        </busconfig>
        """.write(toFile: harness.directory + "/bus.conf", atomically: true, encoding: .utf8)
        var busRequest = SpawnRequest(
            executable: "/usr/bin/dbus-daemon",
            arguments: ["--config-file=\(harness.directory)/bus.conf", "--nofork", "--nopidfile"],
            environment: [], descriptors: [nil, nil, nil], account: nil, capabilities: 0)
        busRequest.limitCapabilities = false
        busRequest.parentDeathSignal = SIGKILL
        let busPID = try ProcessSpawner.spawn(busRequest)
        defer {
            setup.stop()
            kill(busPID, SIGKILL)
            _ = ProcessSpawner.wait(for: busPID)
        }
        far.configure(ourPublicKey: setup.ourPublic)
        // The namespace's "physical" default route: without the link's rules everything would leave by the veth.
        _ = Self.sh("ip -n \(ours) route add default via 10.201.0.2")
        #expect(harness.waitUntil(5) { access(bus, F_OK) == 0 }, "dbus-daemon listens")
        try harness.start(environment: ["DBUS_SYSTEM_BUS_ADDRESS=unix:path=\(bus)"])
        #expect(harness.waitUntil(15) { harness.status()?.links.first?.up == true }, "link up\n\(harness.log)")
        #expect(
            harness.waitUntil(15) { Self.ping(ours, "10.204.0.9") },
            "ping a far-side address through the default route\n\(harness.log)")
        #expect(Self.sh("ip -n \(ours) route get 10.204.0.9").contains("dev \(ourLink)"))
        #expect(
            Self.sh("ip -n \(ours) route get 10.204.0.9 mark 0x2d0").contains("dev vo\(tag)"),
            "the link's own UDP (marked) leaves by the veth")
        #expect(
            Self.sh("ip -n \(ours) route get 10.201.0.2").contains("dev vo\(tag)"), "main's specific routes still win")
        let rules = Self.sh("ip -n \(ours) rule show")
        #expect(rules.contains("5190:\tfrom all lookup main suppress_prefixlength 0"), "\(rules)")
        #expect(rules.contains("5191:\tnot from all fwmark 0x2d0 lookup"), "\(rules)")
        #expect(Self.sh("ip netns exec \(ours) cat /proc/sys/net/ipv4/conf/all/src_valid_mark") == "1")
        #expect(
            harness.waitUntil(10) { harness.status()?.links.first?.peers.first?.state == "ok" },
            "the handshake went over the veth: \(String(describing: harness.status()?.links))")
        #expect(
            harness.waitUntil(5) { harness.log.contains("keepalive.inhibit-sleep: logind Inhibit failed") },
            "no logind: said once\n\(harness.log)")
        #expect(harness.log.contains("(systemd-logind is not running)"))
        #expect(harness.log.components(separatedBy: "keepalive.inhibit-sleep:").count == 2, "said once, not every beat")
        // kill -9 of wireguard-go: back within 5 s, with the same rules and routes (none duplicated).
        let routes = Self.sh("ip -n \(ours) route show table all proto 115")
        let pid = try #require(harness.status()?.links.first?.pid)
        kill(pid, SIGKILL)
        usleep(100_000)
        #expect(harness.waitUntil(5) { Self.ping(ours, "10.204.0.9") }, "ping back after kill -9\n\(harness.log)")
        #expect(Self.sh("ip -n \(ours) rule show") == rules, "the same rules, none duplicated")
        #expect(Self.sh("ip -n \(ours) route show table all proto 115") == routes, "the same routes")
        harness.signal(SIGTERM)
        #expect(harness.waitUntil(10) { harness.pollExit() != nil })
        let after = Self.sh("ip -n \(ours) rule show")
        #expect(!after.contains("5190:") && !after.contains("5191:"), "shutdown removes the rules: \(after)")
    }
}
