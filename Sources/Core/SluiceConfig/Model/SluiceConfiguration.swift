import SluiceNet

/// The whole validated sluice configuration, as loaded from a mihomo-compatible YAML file.
///
/// Every field has the documented default (see docs/configuration.md) so that `SluiceConfiguration()` is the
/// configuration of an empty file. It is `Codable` because the supervisor pushes sections to workers as JSON.
public struct SluiceConfiguration: Sendable, Equatable, Codable {
    public var logLevel: LogLevel = .info
    public var mode: Mode = .rule
    /// Whether IPv6 is handled at all (mihomo's top-level `ipv6`, default true).
    public var ipv6: Bool = true
    /// TCP keep-alive on relayed connections (mihomo's `keep-alive-idle`,
    /// `keep-alive-interval`, `disable-keep-alive`).
    public var keepAlive = TCPKeepAlive()
    public var tun = TunConfiguration()
    public var dns = DNSConfiguration()
    /// `sniffer:`: names of connections to real addresses read from their first bytes.
    public var sniffer = SnifferConfiguration()
    /// Static host entries (`hosts:`), in file order.
    public var hosts: [HostEntry] = []
    public var profile = ProfileConfiguration()
    /// Supported proxies in file order; unsupported ones are left out with a warning.
    public var proxies: [Proxy] = []
    public var proxyGroups: [ProxyGroup] = []
    public var ruleProviders: [RuleProvider] = []
    /// Rules in file order; skipped rules are not present.
    public var rules: [Rule] = []
    public var wireguard: [WireGuardLink] = []
    public var keepalive = KeepaliveConfiguration()
    public var supervisor = SupervisorConfiguration()
    /// `limits:`: resource bounds of the workers (a sluice extension).
    public var limits = LimitsConfiguration()
    /// `external-controller`, `secret`, `external-ui`...: the Clash API.
    public var controller = ControllerConfiguration()
    /// `mixed-port`, `socks-port`, `port`, `listeners:` (mixed, socks, http) and their access settings.
    public var inbound = InboundConfiguration()

    public init() {}

    /// How much the workers log (`log-level`).
    public enum LogLevel: String, Sendable, Equatable, Codable, CaseIterable {
        case silent, error, warning, info, debug
    }

    /// How connections are routed (`mode`): by rules, all through the GLOBAL selection, or all direct.
    public enum Mode: String, Sendable, Equatable, Codable, CaseIterable {
        case rule, global, direct
    }
}

/// One `hosts:` entry: a name (which may use the same wildcards as `fake-ip-filter`) and what it resolves to.
public struct HostEntry: Sendable, Equatable, Codable {
    /// What a host entry maps to.
    public enum Value: Sendable, Equatable, Codable {
        /// One or more literal addresses.
        case addresses([IPAddress])
        /// Another name, resolved in its place (a CNAME-like alias).
        case alias(String)
    }

    public var name: String
    public var value: Value

    public init(name: String, value: Value) {
        self.name = name
        self.value = value
    }
}

/// What sluice remembers across restarts (`profile:`).
public struct ProfileConfiguration: Sendable, Equatable, Codable {
    /// Remember the selected member of `select` groups.
    public var storeSelected = true
    /// Persist the fake-IP mapping under the state directory.
    public var storeFakeIP = true

    public init() {}
}

/// TCP keep-alive for both sides of every relayed connection: a peer that vanished (a LAN
/// device switched off, a proxy that died without a FIN) is noticed and its relay freed,
/// while idle connections that are alive (SSH, push channels) stay up.
public struct TCPKeepAlive: Sendable, Equatable, Codable {
    /// Seconds of silence before the first probe (`keep-alive-idle`).
    public var idle = 600
    /// Seconds between probes (`keep-alive-interval`); after 9 unanswered the connection is reset.
    public var interval = 75
    /// `disable-keep-alive: true`.
    public var disabled = false

    public init() {}
}
