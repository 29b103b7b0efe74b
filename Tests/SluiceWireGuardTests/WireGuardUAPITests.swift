import SluiceConfig
import SluiceNet
import SluiceNetlink
import Testing

@testable import SluiceWireGuard

@Suite("WireGuard UAPI text and link routes")
struct WireGuardUAPITests {
    static let privateKey = [UInt8](repeating: 0xa0, count: 32)
    static let peerKey = Array(0..<32).map { UInt8($0) }

    @Test("hex: lowercase out, either case in, bad text refused")
    func hex() {
        #expect(WireGuardUAPI.hex([0x00, 0x0f, 0xab, 0xff]) == "000fabff")
        #expect(WireGuardUAPI.unhex("000FabfF") == [0x00, 0x0f, 0xab, 0xff])
        #expect(WireGuardUAPI.unhex("abc") == nil)
        #expect(WireGuardUAPI.unhex("zz") == nil)
        // A base64 key from a config arrives as hex on the UAPI.
        let key = WireGuardKey(base64: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")!
        #expect(WireGuardUAPI.hex(key.bytes) == "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    }

    @Test("set=1 for a new device: every field, peers replaced, allowed-ips as networks, IPv6 endpoint bracketed")
    func setNew() {
        let settings = WireGuardUAPI.DeviceSettings(
            privateKey: Self.privateKey, listenPort: 51820, fwmark: 0x1234,
            peers: [
                .init(
                    publicKey: Self.peerKey, presharedKey: [UInt8](repeating: 1, count: 32),
                    endpoint: SocketEndpoint(address: IPAddress("fd00::1")!, port: 4500), persistentKeepalive: 25,
                    allowedIPs: [IPPrefix("10.0.0.5/24")!, IPPrefix("fd10::/64")!]),
                .init(publicKey: [UInt8](repeating: 2, count: 32), endpoint: SocketEndpoint("192.0.2.7:51820")),
            ])
        let text = WireGuardUAPI.setRequest(settings)
        let expected =
            [
                "set=1",
                "private_key=" + String(repeating: "a0", count: 32),
                "listen_port=51820",
                "fwmark=4660",
                "replace_peers=true",
                "public_key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "preshared_key=" + String(repeating: "01", count: 32),
                "endpoint=[fd00::1]:4500",
                "persistent_keepalive_interval=25",
                "replace_allowed_ips=true",
                "allowed_ip=10.0.0.0/24",
                "allowed_ip=fd10::/64",
                "public_key=" + String(repeating: "02", count: 32),
                "endpoint=192.0.2.7:51820",
                "persistent_keepalive_interval=0",
                "replace_allowed_ips=true",
            ].joined(separator: "\n") + "\n\n"
        #expect(text == expected)
    }

    @Test(
        "set=1 for a running device: no replace_peers, removed peers first, no listen_port when unset, fwmark 0 clears")
    func setSync() {
        let settings = WireGuardUAPI.DeviceSettings(
            privateKey: Self.privateKey, peers: [.init(publicKey: Self.peerKey, allowedIPs: [IPPrefix("10.1.0.0/16")!])]
        )
        let text = WireGuardUAPI.setRequest(
            settings, replacePeers: false, removePeers: [[UInt8](repeating: 9, count: 32)])
        #expect(!text.contains("replace_peers"))
        #expect(!text.contains("listen_port"))
        #expect(text.contains("fwmark=0\n"))
        #expect(text.contains("public_key=" + String(repeating: "09", count: 32) + "\nremove=true\npublic_key=0001"))
        #expect(text.hasSuffix("allowed_ip=10.1.0.0/16\n\n"))
    }

    @Test("get=1 answer: device fields, peers with handshake, counters, endpoint, allowed-ips; unknown keys skipped")
    func parseGet() throws {
        let text = """
            private_key=\(String(repeating: "a0", count: 32))
            listen_port=51820
            fwmark=0
            public_key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
            preshared_key=\(String(repeating: "00", count: 32))
            protocol_version=1
            endpoint=192.0.2.7:51820
            last_handshake_time_sec=1700000000
            last_handshake_time_nsec=5
            tx_bytes=1000
            rx_bytes=2000
            persistent_keepalive_interval=25
            allowed_ip=10.0.0.0/24
            public_key=\(String(repeating: "02", count: 32))
            last_handshake_time_sec=0
            rx_bytes=0
            tx_bytes=148
            errno=0


            """
        let status = try WireGuardUAPI.parseGetResponse(text)
        #expect(status.listenPort == 51820)
        #expect(status.fwmark == nil)
        #expect(status.peers.count == 2)
        #expect(status.peers[0].publicKey == Self.peerKey)
        #expect(status.peers[0].endpoint == "192.0.2.7:51820")
        #expect(status.peers[0].rxBytes == 2000 && status.peers[0].txBytes == 1000)
        #expect(status.peers[0].persistentKeepalive == 25)
        #expect(status.peers[0].allowedIPs == ["10.0.0.0/24"])
        #expect(status.peers[0].handshakeAge(now: 1_700_000_010) == 10)
        #expect(status.peers[1].handshakeAge(now: 1_700_000_010) == nil)
        #expect(status.peers[1].endpoint == nil)
    }

    @Test("answers: errno=0 accepted, nonzero and missing errno and garbage refused")
    func errors() {
        #expect(throws: Never.self) { try WireGuardUAPI.parseSetResponse("errno=0\n\n") }
        #expect(throws: WireGuardUAPI.ProtocolError.self) { try WireGuardUAPI.parseSetResponse("errno=22\n\n") }
        #expect(throws: WireGuardUAPI.ProtocolError.self) { try WireGuardUAPI.parseSetResponse("\n") }
        #expect(throws: WireGuardUAPI.ProtocolError.self) { try WireGuardUAPI.parseGetResponse("listen_port=1\n\n") }
        #expect(throws: WireGuardUAPI.ProtocolError.self) { try WireGuardUAPI.parseGetResponse("garbage\nerrno=0\n\n") }
        #expect(throws: WireGuardUAPI.ProtocolError.self) {
            try WireGuardUAPI.parseGetResponse("public_key=xyz\nerrno=0\n\n")
        }
    }

    static func link(_ table: WireGuardLink.Table, metric: Int? = nil) -> WireGuardLink {
        var link = WireGuardLink(
            name: "wg0", privateKey: .key(WireGuardKey(base64: String(repeating: "A", count: 43) + "=")!))
        link.addresses = [IPPrefix("10.9.0.1/24")!, IPPrefix("fd09::1/64")!]
        link.table = table
        link.routeMetric = metric
        var a = WireGuardPeer(publicKey: WireGuardKey(base64: String(repeating: "B", count: 43) + "=")!)
        a.allowedIPs = [IPPrefix("10.9.0.2/32")!, IPPrefix("192.168.50.7/24")!, IPPrefix("0.0.0.0/0")!]
        var b = WireGuardPeer(publicKey: WireGuardKey(base64: String(repeating: "C", count: 43) + "=")!)
        b.allowedIPs = [IPPrefix("192.168.50.0/24")!]
        link.peers = [a, b]
        return link
    }

    @Test(
        "routes: auto → main, /0 into the link's table, deduplicated, as networks; number → that table with /0; off → none or metric defaults"
    )
    func routes() {
        let auto = LinkRouting.routes(for: Self.link(.auto), interface: 7)
        #expect(auto.map(\.destination.description) == ["10.9.0.2/32", "192.168.50.0/24", "0.0.0.0/0"])
        #expect(auto.map(\.table) == [Route.mainTable, Route.mainTable, LinkRouting.linkTable(for: "wg0")])
        #expect(auto.allSatisfy { $0.outputInterface == 7 && $0.proto == Route.sluiceProtocol })
        let numbered = LinkRouting.routes(for: Self.link(.id(2022)), interface: 7)
        #expect(numbered.map(\.destination.description) == ["10.9.0.2/32", "192.168.50.0/24", "0.0.0.0/0"])
        #expect(numbered.allSatisfy { $0.table == 2022 })
        #expect(LinkRouting.routes(for: Self.link(.off), interface: 7).isEmpty)
        let metric = LinkRouting.routes(for: Self.link(.off, metric: 10000), interface: 7)
        let own = LinkRouting.sourceTable(for: "wg0")
        #expect(metric.map(\.destination.description) == ["0.0.0.0/0", "::/0", "0.0.0.0/0", "::/0"])
        #expect(metric.map(\.table) == [Route.mainTable, Route.mainTable, own, own])
        #expect(metric.allSatisfy { $0.metric == 10000 && $0.outputInterface == 7 })
    }

    @Test("rules: table off + route-metric → from each link address lookup the link's own table; otherwise none")
    func rules() {
        let own = LinkRouting.sourceTable(for: "wg0")
        #expect((200_000..<300_000).contains(own))
        #expect(own == LinkRouting.sourceTable(for: "wg0"), "stable")
        #expect(own != LinkRouting.sourceTable(for: "wg1"))
        let rules = LinkRouting.rules(for: Self.link(.off, metric: 10000))
        #expect(rules.map(\.description).count == 2)
        #expect(rules.map { $0.source?.description } == ["10.9.0.1/32", "fd09::1/128"])
        #expect(rules.map(\.family) == [.v4, .v6])
        #expect(
            rules.allSatisfy {
                $0.table == own && $0.priority == LinkRouting.sourceRulePriority && $0.action == .toTable
            })
        #expect(LinkRouting.rules(for: Self.link(.off)).isEmpty)
        #expect(LinkRouting.rules(for: Self.link(.id(7), metric: 10000)).isEmpty)
    }

    @Test(
        "table auto with a /0: wg-quick's suppress_prefixlength 0 and `not fwmark MARK` rules, IPv4 only here; the mark defaults to the table"
    )
    func defaultRouteRules() {
        var link = Self.link(.auto)
        #expect(LinkRouting.defaultRouteFamilies(of: link) == [.v4])
        #expect(
            LinkRouting.defaultRouteMark(for: link) == LinkRouting.linkTable(for: "wg0"), "wg-quick: fwmark = table")
        link.fwmark = 0x2d0
        #expect(LinkRouting.defaultRouteMark(for: link) == 0x2d0, "a mark the link has is kept")
        let rules = LinkRouting.rules(for: link)
        #expect(rules.count == 2)
        #expect(
            rules[0].priority == LinkRouting.suppressRulePriority && rules[0].table == Route.mainTable
                && rules[0].suppressPrefixLength == 0)
        #expect(
            rules[1].priority == LinkRouting.defaultRulePriority && rules[1].table == LinkRouting.linkTable(for: "wg0"))
        #expect(rules[1].fwmark == 0x2d0 && rules[1].invert)
        #expect(rules.allSatisfy { $0.family == .v4 })
        #expect(rules[1].description.contains("not"), "\(rules[1])")
        // No /0: no rules, no mark of its own.
        link.peers[0].allowedIPs.removeLast()
        link.fwmark = nil
        #expect(LinkRouting.rules(for: link).isEmpty)
        #expect(LinkRouting.defaultRouteMark(for: link) == nil)
        // A /0 with table off or a number: routes only (the user's own rules decide).
        #expect(LinkRouting.defaultRouteFamilies(of: Self.link(.off)).isEmpty)
        #expect(LinkRouting.defaultRouteFamilies(of: Self.link(.id(7))).isEmpty)
    }
}
