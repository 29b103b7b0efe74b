import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 7, coexistence: the TUN worker with auto-route and a WireGuard link from the keepalive worker in the
/// same (router) namespace. The far peer is wireguard-go in the lab's wan namespace, reached through the
/// router's default route (the route auto-route overrides), on 10.77.200.5:51902; behind it 10.206.0.10 serves
/// HTTP and is reachable only through the tunnel (nft drops it on any other interface). The lab's dnsmasq
/// answers *.corp.test with 10.206.0.10.
@Suite(
    "WireGuard link next to the TUN's auto-route (lab)", .serialized,
    .enabled(
        if: geteuid() == 0 && access("/usr/bin/wireguard-go", X_OK) == 0 && access("/usr/bin/wg", X_OK) == 0,
        "needs root, wireguard-go and wg (Scripts/install-deps.sh)"))
struct WireGuardLabTests {
    static func sh(_ command: String) -> String {
        let (code, output) = Shell.run(command)
        if code != 0 { Issue.record("`\(command)` exited \(code): \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func config(link: String, privateKey: String, farPublicKey: String) -> String {
        FakeIPLabTests.config(range: "198.18.0.1/16", rules: ["DOMAIN-SUFFIX,corp.test,wg-direct"])
            + """
            proxies:
              - {name: wg-direct, type: direct, interface-name: \(link)}
            keepalive:
              interval: 1s
            wireguard:
              - name: \(link)
                private-key: "\(privateKey)"
                address: [10.205.0.1/24]
                listen-port: 51901
                table: "off"
                peers:
                  - public-key: "\(farPublicKey)"
                    endpoint: 10.77.200.5:51902
                    allowed-ips: [10.205.0.2/32, 10.206.0.0/24]
                    persistent-keepalive: 5

            """
    }

    /// The far side's received bytes from our peer (`wg show transfer`).
    static func farRx(_ lab: Lab, _ far: String) -> Int {
        let line = lab.run("wan", "wg show \(far) transfer").1
        return Int(line.split(whereSeparator: { $0 == "\t" || $0 == " " || $0 == "\n" }).dropFirst().first ?? "") ?? -1
    }

    @Test(
        "a DOMAIN-SUFFIX rule to a direct proxy bound to the link goes through the tunnel; the tunnel's UDP stays out of the TUN"
    )
    func coexistence() throws {
        let tag = String(UInt32.random(in: 0...0xff_ffff), radix: 16)
        let ours = "wgr\(tag)"
        let far = "wgw\(tag)"
        let ourKey = Self.sh("wg genkey")
        let ourPublic = Self.sh("echo \(ourKey) | wg pubkey")
        let farKey = Self.sh("wg genkey")
        let farPublic = Self.sh("echo \(farKey) | wg pubkey")
        let lab = try Lab(config: Self.config(link: ours, privateKey: ourKey, farPublicKey: farPublic))
        defer {
            lab.stop()
            unlink("/var/run/wireguard/\(far).sock")
        }
        // sluiced first: it prepares /var/run/wireguard for the service user before a root wireguard-go could.
        try lab.start()
        func keepalive(_ key: String) -> Int64? { lab.harness.worker("keepalive")?.stats["wg.\(ours).\(key)"] }
        func tun(_ key: String) -> Int64 { lab.harness.worker("tun")?.stats[key] ?? -1 }
        // wireguard-go runs as the service user, whose uidrange rule (pref 9000) would also keep its UDP out of
        // the TUN. Delete it, so that only the mark does from here on, the
        // handshake included (wireguard-go then sends from the address and interface it received on, so only
        // the packets before the first answer show whether the route is right).
        let (deleted, why) = lab.run(
            "router", "r=$(ip -4 rule show pref 9000 | grep -o \"uidrange [0-9-]*\") && ip -4 rule del pref 9000 $r")
        #expect(deleted == 0, "no uidrange rule to delete: \(why)")
        #expect(lab.harness.waitUntil(10) { tun("udp.flows") >= 0 })
        let udpAtStart = (tun("udp.datagrams.out"), tun("udp.flows"))
        // The far peer: wireguard-go in wan (ended by the lab's `down`), configured with wg.
        let spawned = Lab.shell(
            "LAB=\(lab.name) bash \(Lab.packageRoot)/Scripts/lab.sh spawn wan \(lab.harness.directory)/far-wg.log "
                + "env WG_PROCESS_FOREGROUND=1 LOG_LEVEL=error /usr/bin/wireguard-go \(far)")
        #expect(spawned.0 == 0, "\(spawned.1)")
        for _ in 0..<250 where access("/var/run/wireguard/\(far).sock", F_OK) != 0 { usleep(20_000) }
        let keyFile = "\(lab.harness.directory)/far.key"
        try farKey.write(toFile: keyFile, atomically: true, encoding: .utf8)
        let (configured, output) = lab.run(
            "wan",
            """
            ip addr add 10.77.200.5/32 dev lo &&
            wg set \(far) private-key \(keyFile) listen-port 51902 peer \(ourPublic) allowed-ips 10.205.0.1/32 &&
            ip addr add 10.205.0.2/24 dev \(far) && ip addr add 10.206.0.10/32 dev \(far) && ip link set \(far) up &&
            nft add table inet wgtest &&
            nft add chain inet wgtest input "{ type filter hook input priority 0; }" &&
            nft add rule inet wgtest input ip daddr 10.206.0.10 iifname != \(far) drop
            """)
        #expect(configured == 0, "far side: \(output)")
        #expect(lab.harness.waitUntil(15) { keepalive("up") == 1 }, "link up\n\(lab.harness.log)")
        #expect(lab.harness.waitUntil(10) { lab.harness.worker("dns")?.state == "ready" })

        // The mark: ours carries tun.routing-mark, which auto-route's first rule sends to the main table.
        #expect(
            lab.run("router", "wg show \(ours) fwmark").1.trimmingCharacters(in: .whitespacesAndNewlines) == "0x2d0")
        #expect(lab.run("router", "ip -4 rule show pref 9000").1.contains("fwmark 0x2d0 lookup main"))
        #expect(lab.run("router", "ip -4 route get 10.77.200.5 mark 0x2d0").1.contains("dev wan0"))
        #expect(
            lab.run("router", "ip -4 route get 10.77.200.5").1.contains("dev sluice0"),
            "unmarked, it would enter the TUN")

        // Handshake; the far side sees our real address and listen-port (through the TUN it would see the
        // tun worker's DIRECT socket, another port).
        #expect(
            lab.harness.waitUntil(15) { keepalive("peers.ok") == 1 },
            "handshake\n\(lab.harness.worker("keepalive")?.stats ?? [:])")
        #expect(
            lab.run("wan", "wg show \(far) endpoints").1.contains("10.77.2.1:51901"), "the far side saw another source")
        usleep(2_000_000)  // stats travel with heartbeats
        #expect((tun("udp.datagrams.out"), tun("udp.flows")) == udpAtStart, "the handshake went through the TUN")

        // The tunnel's own UDP does not go through the TUN: 20 pings across the link move no TUN UDP counter,
        // and the far side still sees our listen-port.
        usleep(1_500_000)
        let udpBefore = (tun("udp.datagrams.out"), tun("udp.flows"))
        #expect(
            udpBefore.0 >= 0 && udpBefore.1 >= 0, "tun worker udp stats: \(lab.harness.worker("tun")?.stats ?? [:])")
        let (pinged, pings) = lab.run("router", "ping -c 20 -i 0.05 -W 1 -I \(ours) 10.206.0.10")
        #expect(pinged == 0, "ping through the link: \(pings)")
        usleep(2_500_000)  // a heartbeat or two: stats travel with them
        #expect(
            (tun("udp.datagrams.out"), tun("udp.flows")) == udpBefore, "the link's UDP was counted by the tun worker")
        #expect(
            lab.run("wan", "wg show \(far) endpoints").1.contains("10.77.2.1:51901"), "the far side saw another source")

        // Only reachable through the tunnel: straight from the client (MATCH,DIRECT via wan0) it is not.
        #expect(
            lab.run("client", "curl -sS -m 3 http://10.206.0.10/small").0 != 0,
            "10.206.0.10 must not be reachable outside the tunnel")

        // By name: fake-IP DNS, the DOMAIN-SUFFIX rule, the direct proxy bound to the link.
        let address = FakeIPLabTests.resolve(lab, "x.corp.test")
        #expect(address.hasPrefix("198.18."), "x.corp.test: \(address)")
        let rxBefore = Self.farRx(lab, far)
        let (status, body) = lab.run(
            "client", "curl -sS -m 10 --resolve x.corp.test:80:\(address) http://x.corp.test/small")
        #expect(status == 0 && body.hasPrefix("ok"), "curl through the tunnel: \(status) \(body)\n\(lab.harness.log)")
        #expect(lab.harness.log.contains("(x.corp.test) [DOMAIN-SUFFIX,corp.test] wg-direct"), "\(lab.harness.log)")
        let rxAfter = Self.farRx(lab, far)
        #expect(
            rxAfter > rxBefore + 300,
            "the far side received the request through the tunnel: rx \(rxBefore) → \(rxAfter)")
        // A bigger transfer, to see the bytes on the far side's counters.
        let (big, sum) = lab.run(
            "client", "curl -sS -m 30 --resolve x.corp.test:80:\(address) http://x.corp.test/100m.bin | sha256sum")
        #expect(
            big == 0
                && sum.hasPrefix(
                    lab.run("wan", "cat /tmp/sluice-lab-www/100m.sha256").1.trimmingCharacters(
                        in: .whitespacesAndNewlines))
        )
        #expect(
            lab.run("wan", "wg show \(far) transfer").1.split(separator: "\t").last.flatMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            } ?? 0 > 100_000_000,
            "the 100 MiB left the far side through the tunnel")
    }
}
