import SluiceNet

/// The `dns:` section: sluice's DNS server, fake-IP pool and upstreams.
public struct DNSConfiguration: Sendable, Equatable, Codable {
    public var enable = false
    /// Where the dns-worker listens in addition to hijacked TUN traffic.
    public var listen: SocketEndpoint?
    /// Whether AAAA queries are answered (false: answered empty).
    public var ipv6 = false
    public var enhancedMode: EnhancedMode = .normal
    public var fakeIPRange: IPPrefix = IPPrefix("198.18.0.1/16")!
    public var fakeIPRange6: IPPrefix?
    public var fakeIPFilter: [DomainPattern] = []
    public var fakeIPFilterMode: FakeIPFilterMode = .blacklist
    /// The ordered entries of `fake-ip-filter` when `fakeIPFilterMode` is `.rule` (then `fakeIPFilter` is empty).
    public var fakeIPFilterRules: [FakeIPFilterRule] = []
    public var nameserver: [DNSUpstream] = []
    public var defaultNameserver: [DNSUpstream] = []
    public var fallback: [DNSUpstream] = []
    public var proxyServerNameserver: [DNSUpstream] = []
    public var nameserverPolicy: [NameserverPolicy] = []
    public var useHosts = true
    public var useSystemHosts = true
    public var respectRules = false
    /// sluice extension: answers are cached for at least this many seconds.
    public var cacheMinTTL = 0
    /// sluice extension: answers are cached for at most this many seconds.
    public var cacheMaxTTL = 86400

    public init() {}

    /// mihomo's IPv6 fake range when `ipv6` is on and `fake-ip-range6` is not given.
    public static let defaultFakeIPRange6 = IPPrefix("fdfe:dcba:9876::1/64")!

    /// The fake-IP ranges in use: `fake-ip-range`, and the IPv6 one when `ipv6` is on.
    /// Empty unless `enable` and `enhanced-mode: fake-ip`.
    public var fakeIPRanges: [IPPrefix] {
        guard enable, enhancedMode == .fakeIP else { return [] }
        return [fakeIPRange] + (ipv6 ? [fakeIPRange6 ?? Self.defaultFakeIPRange6] : [])
    }

    /// How the DNS server answers: with fake IPs from the pool, or with real addresses.
    public enum EnhancedMode: String, Sendable, Equatable, Codable {
        case fakeIP = "fake-ip"
        case redirHost = "redir-host"
        case normal
    }

    /// Whether `fake-ip-filter` lists names that get real answers (blacklist), the only names that get fake
    /// ones (whitelist), or ordered `TYPE,PAYLOAD,real-ip|fake-ip` entries (rule).
    public enum FakeIPFilterMode: String, Sendable, Equatable, Codable {
        case blacklist, whitelist, rule
    }

    /// Whether `name` gets a fake address under the fake-IP filter (not counting names that must be real).
    public func fakeIPFilterWantsFake(_ name: String) -> Bool {
        let name = name.lowercased()
        switch fakeIPFilterMode {
        case .blacklist:
            return !fakeIPFilter.contains { $0.matches(name) }
        case .whitelist:
            return fakeIPFilter.contains { $0.matches(name) }
        case .rule:
            for rule in fakeIPFilterRules where rule.matches(name) { return !rule.realIP }
            return true
        }
    }
}

/// A plain-DNS upstream server (`udp://IP[:port]`, `tcp://IP[:port]` or bare `IP[:port]`, which is UDP).
public struct DNSUpstream: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The transport used to reach the upstream.
    public enum Transport: String, Sendable, Equatable, Codable {
        case udp, tcp
    }

    public var transport: Transport
    public var endpoint: SocketEndpoint

    public init(transport: Transport, endpoint: SocketEndpoint) {
        self.transport = transport
        self.endpoint = endpoint
    }

    public var description: String {
        "\(transport.rawValue)://\(endpoint)"
    }
}

/// One `nameserver-policy` entry: names matching `pattern` are resolved by `upstreams`.
public struct NameserverPolicy: Sendable, Equatable, Codable {
    public var pattern: DomainPattern
    public var upstreams: [DNSUpstream]

    public init(pattern: DomainPattern, upstreams: [DNSUpstream]) {
        self.pattern = pattern
        self.upstreams = upstreams
    }
}

/// A domain-name pattern as mihomo writes them in `fake-ip-filter`, `nameserver-policy` and `hosts`.
public enum DomainPattern: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// `example.com`: exactly this name.
    case exact(String)
    /// `*.lan`, `www.*.example`: `*` stands for exactly one label.
    case wildcard(String)
    /// `+.example.com`: the name itself and every name under it (stored without the `+.`).
    case suffix(String)
    /// `.example.com`: every name under it but not the name itself (stored without the leading dot).
    case subdomains(String)
    /// `rule-set:NAME`: the names of a domain rule provider.
    case ruleSet(String)

    public var description: String {
        switch self {
        case .exact(let name), .wildcard(let name): return name
        case .suffix(let name): return "+.\(name)"
        case .subdomains(let name): return ".\(name)"
        case .ruleSet(let name): return "rule-set:\(name)"
        }
    }
}
