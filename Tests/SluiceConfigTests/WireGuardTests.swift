import SluiceConfig
import Testing

/// `wireguard:`, `keepalive:` and key validation.
@Suite("wireguard")
struct WireGuardTests {
    private let key1 = "OqztrUyoLtgmzorxO+cQeU2ZJ+oUfP4vh1WGKh+k4pE="
    private let key2 = "8m+Vxuc1KZb3hoGBh+tEOYrN1CWv+T/uffJpJnSeGUo="

    @Test func link() throws {
        let yaml = """
            wireguard:
              - name: wg0
                private-key: \(key1)
                address: [10.8.0.2/32]
                table: "off"
                route-metric: 10000
                peers:
                  - public-key: \(key2)
                    endpoint: vpn.example:51820
                    allowed-ips: 0.0.0.0/0
                    persistent-keepalive: 25
            keepalive:
              inhibit-sleep: yes
              interval: 10s
            """
        let result = TestSupport.load(yaml)
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let configuration = try #require(result.configuration)
        let link = try #require(configuration.wireguard.first)
        #expect(link.table == .off)
        #expect(link.peers.first?.publicKey.description == key2)
        #expect(link.peers.first?.endpoint?.description == "vpn.example:51820")
        #expect(configuration.keepalive.inhibitSleep)
        #expect(configuration.keepalive.interval == .seconds(10))
    }

    @Test func keyErrorsNameLinkAndField() {
        let yaml = """
            wireguard:
              - name: wg0
                private-key: \(key1)
                peers:
                  - public-key: \(key2)
                  - public-key: not-a-key
                    preshared-key: AAAA
            """
        #expect(
            TestSupport.messages(yaml) == [
                "t.yaml:6:21: wireguard[0](wg0).peers[1].public-key: expected a base64 WireGuard key (32 bytes), "
                    + "got \"not-a-...\" (9 characters; generate one with `wg genkey`)",
                "t.yaml:7:24: wireguard[0](wg0).peers[1].preshared-key: expected a base64 WireGuard key (32 bytes), "
                    + "got \"AAAA\" (4 characters; generate one with `wg genkey`)",
            ])
    }

    @Test("one table-auto link takes the default route per family; keepalive.backend")
    func defaultRouteOwner() throws {
        let yaml = """
            keepalive: {backend: wireguard-go}
            wireguard:
              - {name: wg0, private-key: \(key1), peers: [{public-key: \(key2), allowed-ips: [0.0.0.0/0, "::/0"]}]}
              - {name: wg1, private-key: \(key1), peers: [{public-key: \(key2), allowed-ips: ["::/0"]}]}
              - {name: wg2, private-key: \(key1), table: 7, peers: [{public-key: \(key2), allowed-ips: [0.0.0.0/0]}]}
            """
        #expect(
            TestSupport.messages(yaml) == [
                "t.yaml:4:5: wireguard[1](wg1).table: ::/0 in allowed-ips with table: auto takes the default route, which link wg0 already takes; give this link table: off (and route through it with a direct proxy bound to it) or a table number"
            ])
        let ok = TestSupport.load("keepalive: {backend: wireguard-go}\n")
        #expect(ok.configuration?.keepalive.backend == .wireguardGo)
        #expect(
            TestSupport.messages("keepalive: {backend: userspace}\n").first?.contains("auto, kernel, wireguard-go")
                == true, "\(TestSupport.messages("keepalive: {backend: userspace}\n"))")
    }

    @Test func privateKeySources() {
        #expect(
            TestSupport.messages("wireguard:\n  - {name: wg0}\n") == [
                "t.yaml:2:5: wireguard[0](wg0): missing required key \"private-key\" (or \"private-key-file\")"
            ])
        #expect(
            TestSupport.messages("wireguard:\n  - {name: wg0, private-key: \(key1), private-key-file: /k}\n").count == 1
        )
        #expect(
            TestSupport.messages("wireguard:\n  - {name: wg0, private-key-file: /k, table: 0}\n") == [
                "t.yaml:2:46: wireguard[0](wg0).table: expected off, auto or a table number 1...4294967295, got \"0\""
            ])
    }

    @Test("a link without fwmark gets tun.routing-mark; other marks are auto-route bypass marks")
    func coexistenceMarks() throws {
        let yaml = """
            tun: {routing-mark: 0x2d0}
            wireguard:
              - {name: wg0, private-key: \(key1)}
              - {name: wg1, private-key: \(key1), fwmark: 51820}
              - {name: wg2, private-key: \(key1), fwmark: 0x2d0}
            """
        let configuration = try #require(TestSupport.load(yaml).configuration)
        #expect(configuration.wireguard.map { configuration.effectiveFwmark(of: $0) } == [0x2d0, 51820, 0x2d0])
        #expect(configuration.wireguardBypassMarks == [51820])
        var unmarked = configuration
        unmarked.tun.routingMark = 0
        #expect(unmarked.effectiveFwmark(of: unmarked.wireguard[0]) == nil)
    }
}
