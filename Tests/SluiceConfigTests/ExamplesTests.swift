import Foundation
import SluiceConfig
import SluiceOutbounds
import Testing

/// The shipped examples load as documented and survive a JSON round trip.
@Suite("Examples")
struct ExamplesTests {
    @Test func fullExampleHasNoDiagnostics() throws {
        let result = ConfigLoader.load(
            contentsOfFile: TestSupport.example("full.yaml"), catalog: OutboundRegistry.catalog)
        #expect(result.diagnostics.map(\.description) == [])
        let configuration = try #require(result.configuration)
        #expect(configuration.proxies.count == 10)
        #expect(configuration.proxyGroups.count == 6)
        #expect(configuration.ruleProviders.count == 4)
        #expect(configuration.rules.count == 23)
        #expect(configuration.wireguard.count == 2)
        #expect(configuration.wireguard.first?.peers.count == 2)
    }

    @Test func minimalExample() throws {
        let result = ConfigLoader.load(
            contentsOfFile: TestSupport.example("minimal.yaml"), catalog: OutboundRegistry.catalog)
        #expect(result.diagnostics.map(\.description) == [])
        let configuration = try #require(result.configuration)
        #expect(configuration.tun.enable)
        #expect(configuration.tun.device == "sluice0")
        #expect(configuration.dns.enhancedMode == .fakeIP)
        #expect(configuration.rules == [Rule(condition: .match, target: "DIRECT")])
    }

    @Test func jsonRoundTrip() throws {
        let configuration = try #require(
            ConfigLoader.load(contentsOfFile: TestSupport.example("full.yaml"), catalog: OutboundRegistry.catalog)
                .configuration)
        let data = try JSONEncoder().encode(configuration)
        let decoded = try JSONDecoder().decode(SluiceConfiguration.self, from: data)
        #expect(decoded == configuration)
        let empty = SluiceConfiguration()
        #expect(try JSONDecoder().decode(SluiceConfiguration.self, from: JSONEncoder().encode(empty)) == empty)
    }

    @Test func mihomoStyleLoadsWithWarningsOnly() throws {
        let path = TestSupport.example("mihomo-style.yaml")
        let result = ConfigLoader.load(contentsOfFile: path, catalog: OutboundRegistry.catalog)
        let rendered = result.diagnostics.map(\.description).map { $0.replacingOccurrences(of: path, with: "m.yaml") }
        #expect(result.errors.isEmpty, "\(rendered)")
        let configuration = try #require(result.configuration)
        // The local proxy port is served (tun is on), on every address as allow-lan and bind-address "*" ask.
        #expect(
            configuration.inbound.listeners.map { "\($0.name) \($0.address) \($0.port)" } == ["DEFAULT-MIXED :: 7890"])
        #expect(
            rendered.contains {
                $0.contains("proxies[0]: type \"vmess\" is not supported by sluice; proxy \"hk-vmess\" left out")
            })
        #expect(rendered.contains { $0.contains("rule type GEOIP is not supported by sluice; rule skipped") })
        #expect(rendered.contains { $0.contains("tun.auto-redirect") })
        #expect(configuration.proxies.map(\.name) == ["sg-ss", "us-ss"])
        // HK only had the vmess proxy: it is unavailable (its traffic is rejected, never DIRECT), with a warning.
        let hk = try #require(configuration.proxyGroups.first { $0.name == "HK" })
        #expect(hk.members == [])
        #expect(
            ProxyGroup.unavailableGroups(configuration.proxyGroups)["HK"]
                == "its only member was left out: \"hk-vmess\" (vmess not supported)")
        #expect(rendered.contains { $0.contains("group \"HK\" is unavailable") }, "\(rendered)")
        #expect(hk.kind == .urlTest)
        let jp = try #require(configuration.proxyGroups.first { $0.name == "JP" })
        #expect(jp.interval == 600)
        #expect(jp.tolerance == 50)
        #expect(configuration.sniffer.isActive)
        #expect(configuration.sniffer.protocols.map(\.kind) == [.tls, .http])
        #expect(!rendered.contains { $0.contains("sniffer") }, "\(rendered)")
        #expect(configuration.rules.count == 7)  // GEOSITE and two GEOIP rules skipped
        #expect(configuration.rules.last == Rule(condition: .match, target: "PROXY"))
    }
}

@Suite("Top-level keep-alive keys")
struct KeepAliveKeysTests {
    @Test("keep-alive-idle, keep-alive-interval and disable-keep-alive are read; out of range is an error")
    func keys() throws {
        let ok = ConfigLoader.load(
            yaml: "keep-alive-idle: 30\nkeep-alive-interval: 5\ndisable-keep-alive: true\n", fileName: "k.yaml",
            catalog: OutboundRegistry.catalog)
        let configuration = try #require(ok.configuration)
        #expect(
            configuration.keepAlive.idle == 30 && configuration.keepAlive.interval == 5
                && configuration.keepAlive.disabled)
        #expect(ok.diagnostics.isEmpty, "\(ok.diagnostics)")
        let defaults = try #require(
            ConfigLoader.load(yaml: "mode: rule\n", fileName: "d.yaml", catalog: OutboundRegistry.catalog).configuration
        )
        #expect(defaults.keepAlive == TCPKeepAlive())
        #expect(
            ConfigLoader.load(yaml: "keep-alive-idle: 0\n", fileName: "b.yaml", catalog: OutboundRegistry.catalog)
                .hasErrors)
    }
}
