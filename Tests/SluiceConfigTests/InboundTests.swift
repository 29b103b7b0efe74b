import SluiceConfig
import SluiceNet
import Testing

/// The local proxy ports as mihomo reads them: `mixed-port`, `socks-port`, `port`, `allow-lan`, `bind-address`,
/// `authentication`, `skip-auth-prefixes`, the LAN lists, and `listeners:`.
@Suite("local proxy ports (config)")
struct InboundTests {
    static let tun = "tun: {enable: true}\n"

    @Test func defaultPortsListenOnLoopbackUnlessLANIsAllowed() throws {
        let closed = try #require(
            TestSupport.load(Self.tun + "mixed-port: 7890\nsocks-port: 7891\nport: 7892\n").configuration)
        #expect(
            closed.inbound.listeners.map { "\($0.name) \($0.kind) \($0.address) \($0.port) \($0.udp)" } == [
                "DEFAULT-MIXED mixed 127.0.0.1 7890 true", "DEFAULT-SOCKS socks 127.0.0.1 7891 true",
                "DEFAULT-HTTP http 127.0.0.1 7892 false",
            ])
        let open = try #require(TestSupport.load(Self.tun + "mixed-port: 7890\nallow-lan: true\n").configuration)
        #expect(open.inbound.listeners.first?.address == .v6(.any))
        let bound = try #require(
            TestSupport.load(Self.tun + "mixed-port: 7890\nallow-lan: true\nbind-address: 192.168.1.1\n").configuration)
        #expect(bound.inbound.listeners.first?.address == IPAddress("192.168.1.1"))
        // allow-lan: false ignores bind-address, as mihomo does.
        let loopback = try #require(TestSupport.load(Self.tun + "mixed-port: 7890\nbind-address: '*'\n").configuration)
        #expect(loopback.inbound.listeners.first?.address == IPAddress("127.0.0.1"))
        #expect(try #require(TestSupport.load(Self.tun + "mixed-port: 0\n").configuration).inbound.listeners.isEmpty)
    }

    @Test func accessSettings() throws {
        let yaml =
            Self.tun + """
                mixed-port: 7890
                allow-lan: true
                authentication: ["alice:wonder:land", "bob:"]
                skip-auth-prefixes: [127.0.0.1/8, "::1"]
                lan-allowed-ips: [192.168.0.0/16]
                lan-disallowed-ips: [192.168.0.9]

                """
        let result = TestSupport.load(yaml)
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let inbound = try #require(result.configuration).inbound
        #expect(inbound.authentication == ["alice": "wonder:land", "bob": ""])
        let port = try #require(inbound.listeners.first)
        #expect(inbound.admits(IPAddress("192.168.0.5")!, on: port))
        #expect(!inbound.admits(IPAddress("192.168.0.9")!, on: port))
        #expect(!inbound.admits(IPAddress("10.0.0.1")!, on: port))
        #expect(inbound.credentials(for: IPAddress("127.0.0.1")!, on: port).isEmpty)
        #expect(inbound.credentials(for: IPAddress("192.168.0.5")!, on: port) == ["alice": "wonder:land", "bob": ""])
        #expect(
            TestSupport.messages(Self.tun + "authentication: [nocolon]\n").first?.contains("expected user:password")
                == true)
    }

    @Test func listenersOfTheServedTypes() throws {
        let yaml =
            Self.tun + """
                proxies:
                  - {name: s, type: socks5, server: 10.0.0.1, port: 1080}
                listeners:
                  - {name: in-mixed, type: mixed, port: 10800, users: [{username: u, password: p}]}
                  - {name: in-http, type: http, port: 10801, listen: 127.0.0.1, proxy: s}
                  - {name: in-socks, type: socks, port: 10802, udp: false, users: []}
                  - {name: in-ss, type: shadowsocks, port: 10803, password: x, cipher: aes-128-gcm}
                  - {name: in-rule, type: mixed, port: 10804, rule: sub1}

                """
        let result = TestSupport.load(yaml)
        #expect(result.errors.isEmpty, "\(result.errors)")
        let listeners = try #require(result.configuration).inbound.listeners
        #expect(listeners.map(\.name) == ["in-mixed", "in-http", "in-socks"])
        #expect(listeners[0].users == ["u": "p"] && listeners[0].address == IPAddress("0.0.0.0") && listeners[0].udp)
        #expect(listeners[1].proxy == "s" && listeners[1].address == IPAddress("127.0.0.1") && !listeners[1].udp)
        #expect(listeners[2].users == [:] && !listeners[2].udp)
        let warnings = result.diagnostics.map(\.description)
        #expect(
            warnings.contains {
                $0.contains("listeners[3] (in-ss): listener type \"shadowsocks\" is not served by sluice")
            })
        #expect(
            warnings.contains {
                $0.contains("listeners[4] (in-rule).rule: not supported by sluice; this listener is not served")
            })
        // A listener with its own users skips the LAN lists; an empty list means no credentials.
        let inbound = try #require(result.configuration).inbound
        #expect(inbound.admits(IPAddress("203.0.113.1")!, on: listeners[0]))
        #expect(inbound.credentials(for: IPAddress("127.0.0.1")!, on: listeners[2]).isEmpty)
    }

    @Test func conflictsAndNoTUN() {
        let clash = TestSupport.messages(Self.tun + "mixed-port: 7890\nport: 7890\n")
        #expect(
            clash == ["t.yaml:3:7: port: port 7890 is already DEFAULT-MIXED's; give each local proxy port its own"],
            "\(clash)")
        let unknownProxy = TestSupport.messages(
            Self.tun + "listeners: [{name: a, type: mixed, port: 1, proxy: nope}]\n")
        #expect(unknownProxy.contains { $0.contains("\"nope\" names no proxy or group") }, "\(unknownProxy)")
        // The ports' names are resolved through the dns worker: dns without listen or TUN is not idle then.
        let resolving = TestSupport.load("mixed-port: 7890\ndns: {enable: true, nameserver: [192.0.2.53]}\n")
        #expect(resolving.diagnostics.isEmpty, "\(resolving.diagnostics)")
        // Without the TUN the ports are served all the same (mihomo's plain proxy use).
        let off = TestSupport.load("mixed-port: 7890\n")
        #expect(off.diagnostics.isEmpty && off.configuration?.inbound.listeners.count == 1, "\(off.diagnostics)")
    }
}
