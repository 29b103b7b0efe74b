import SluiceConfig
import SluiceOutbounds
import Testing

/// Rendering of diagnostics and scalar decoding rules (Go yaml.v3 / mihomo compatible).
@Suite("Diagnostics and scalars")
struct DiagnosticsTests {
    @Test func rendering() {
        let error = ConfigDiagnostic(
            severity: .error, file: "config.yaml", line: 12, column: 5, keyPath: "tun.mtu",
            message: "expected an integer 576...65535, got \"big\"")
        #expect(error.description == "config.yaml:12:5: tun.mtu: expected an integer 576...65535, got \"big\"")
        let warning = ConfigDiagnostic(
            severity: .warning, file: "config.yaml", line: 3, column: 1,
            keyPath: "mixed-port", message: "not supported by sluice; ignored")
        #expect(warning.description == "config.yaml:3:1: warning: mixed-port: not supported by sluice; ignored")
    }

    @Test func wrongTypeHasExactPosition() {
        #expect(
            TestSupport.messages("tun:\n  mtu: big\n") == [
                "t.yaml:2:8: tun.mtu: expected an integer 576...65535, got \"big\""
            ])
        #expect(
            TestSupport.messages("tun:\n  enable: maybe\n") == [
                "t.yaml:2:11: tun.enable: expected a boolean (true or false), got \"maybe\""
            ])
        #expect(
            TestSupport.messages("log-level: verbose\n") == [
                "t.yaml:1:12: log-level: expected one of silent, error, warning, info, debug; got \"verbose\""
            ])
        #expect(
            TestSupport.messages("tun: [1]\n") == [
                "t.yaml:1:6: tun: expected a mapping of keys to values, got a list"
            ])
    }

    @Test func unknownAndIgnoredKeys() {
        #expect(
            TestSupport.messages("redir-port: 7890\nfoo: 1\ntun:\n  bar: 2\n") == [
                "t.yaml:1:1: warning: redir-port: not supported by sluice; ignored",
                "t.yaml:2:1: warning: foo: unknown key; ignored (check the spelling)",
                "t.yaml:4:3: warning: tun.bar: unknown key; ignored (check the spelling)",
            ])
    }

    @Test func allErrorsInOnePass() {
        let result = TestSupport.load("tun:\n  mtu: 1\n  udp-timeout: x\nmode: nope\nipv6: 3\n")
        #expect(result.errors.map(\.line) == [2, 3, 4, 5])
        #expect(result.configuration == nil)
    }

    @Test(arguments: [
        ("true", true), ("True", true), ("TRUE", true), ("yes", true), ("on", true), ("ON", true),
        ("false", false), ("no", false), ("off", false), ("Off", false),
    ])
    func booleans(text: String, value: Bool) throws {
        let result = TestSupport.load("tun:\n  auto-route: \(text)\n")
        #expect(try #require(result.configuration).tun.autoRoute == value)
    }

    @Test(arguments: [("1500", 1500), ("0x5dc", 1500), ("0o2734", 1500), ("+1500", 1500), ("\"1500\"", 1500)])
    func integers(text: String, value: Int) throws {
        #expect(try #require(TestSupport.load("tun:\n  mtu: \(text)\n").configuration).tun.mtu == value)
    }

    @Test func integerRange() {
        #expect(
            TestSupport.messages("tun:\n  mtu: 70000\n") == [
                "t.yaml:2:8: tun.mtu: expected an integer 576...65535, got \"70000\""
            ])
        #expect(TestSupport.messages("tun:\n  mtu: -1\n").count == 1)
    }

    @Test func nullMeansDefault() throws {
        let configuration = try #require(TestSupport.load("tun:\n  mtu:\n  device: ~\nlog-level: null\n").configuration)
        #expect(configuration.tun.mtu == 9000)
        #expect(configuration.tun.device == "sluice0")
        #expect(configuration.logLevel == .info)
    }

    @Test func stringsAcceptAnyScalar() throws {
        let yaml =
            "proxies:\n  - {name: s, type: socks5, server: 1.2.3.4, port: 1080, password: 12345}\nrules: [\"MATCH,s\"]\n"
        let configuration = try #require(TestSupport.load(yaml).configuration)
        let proxy = try #require(configuration.proxies.first)
        let socks = try #require(TestSupport.settings(proxy, as: SOCKS5Settings.self))
        #expect(socks.password == "12345")
    }

    @Test(arguments: [
        ("100ms", Duration.milliseconds(100)), ("1s", .seconds(1)), ("1.5s", .milliseconds(1500)),
        ("2m", .seconds(120)),
        ("3", .seconds(3)), ("1m30s", .seconds(90)), ("1h", .seconds(3600)),
    ])
    func durations(text: String, value: Duration) throws {
        let configuration = try #require(TestSupport.load("supervisor:\n  stop-timeout: \(text)\n").configuration)
        #expect(configuration.supervisor.stopTimeout == value)
    }

    @Test func badDuration() {
        #expect(
            TestSupport.messages("supervisor:\n  stop-timeout: soon\n") == [
                "t.yaml:2:17: supervisor.stop-timeout: expected a duration such as 100ms, 1.5s, 2m or a number of seconds, "
                    + "got \"soon\""
            ])
    }

    @Test func supervisorCrossChecks() {
        #expect(
            TestSupport.messages("supervisor:\n  heartbeat-interval: 5s\n  heartbeat-timeout: 2s\n") == [
                "t.yaml:3:22: supervisor.heartbeat-timeout: must be longer than heartbeat-interval (5s), got 2s"
            ])
        #expect(
            TestSupport.messages("supervisor:\n  restart:\n    min-delay: 2s\n    max-delay: 1s\n") == [
                "t.yaml:4:16: supervisor.restart.max-delay: must not be shorter than min-delay (2s)"
            ])
    }

    @Test func defaults() throws {
        let configuration = try #require(TestSupport.load("").configuration)
        #expect(configuration == SluiceConfiguration())
        #expect(configuration.tun.routingMark == 720)
        #expect(configuration.supervisor.restart.minDelay == .milliseconds(100))
        #expect(configuration.dns.fakeIPRange.description == "198.18.0.1/16")
    }

    @Test func diagnosticsAreInSourceOrder() {
        let result = TestSupport.load("rules: [\"MATCH,nowhere\"]\nproxies: 5\n")
        #expect(result.diagnostics.map(\.line) == [1, 2])
    }
}
