import SluiceNet

/// One routing rule from `rules:`: when `condition` matches a connection, it goes to `target`.
public struct Rule: Sendable, Equatable, Codable {
    public var condition: RuleCondition
    /// A proxy, a group, DIRECT, REJECT or REJECT-DROP.
    public var target: String
    /// Do not resolve a domain to test an IP condition (`no-resolve`).
    public var noResolve = false
    /// Match on the source rather than the destination (mihomo's `src` option on IP rules).
    public var matchSource = false

    public init(condition: RuleCondition, target: String, noResolve: Bool = false, matchSource: Bool = false) {
        self.condition = condition
        self.target = target
        self.noResolve = noResolve
        self.matchSource = matchSource
    }
}

/// What a rule tests. Indirect so that AND/OR/NOT can nest.
public indirect enum RuleCondition: Sendable, Equatable, Codable {
    case domain(String)
    case domainSuffix(String)
    case domainKeyword(String)
    /// A regular expression, checked to compile with Swift `Regex` at load time.
    case domainRegex(String)
    /// IP-CIDR and IP-CIDR6: the destination address is in the prefix.
    case ipCIDR(IPPrefix)
    /// IP-SUFFIX: the low `length` bits of the destination match.
    case ipSuffix(IPPrefix)
    case sourceIPCIDR(IPPrefix)
    case sourcePort([PortRange])
    case destinationPort([PortRange])
    /// The port on which the connection entered (for sluice: the TUN-side destination port).
    case inboundPort([PortRange])
    case network(Network)
    case processName(String)
    case processPath(String)
    case uid([UIDRange])
    case and([RuleCondition])
    case or([RuleCondition])
    case not(RuleCondition)
    /// Matches when the named rule provider matches.
    case ruleSet(String)
    /// Always matches.
    case match

    /// Transport protocols for NETWORK rules.
    public enum Network: String, Sendable, Equatable, Codable {
        case tcp, udp
    }
}

/// An inclusive port range; a single port has `lower == upper`.
public struct PortRange: Sendable, Equatable, Hashable, Codable {
    public var lower: UInt16
    public var upper: UInt16

    public init(_ lower: UInt16, _ upper: UInt16) {
        self.lower = lower
        self.upper = upper
    }

    public func contains(_ port: UInt16) -> Bool {
        lower <= port && port <= upper
    }
}

/// An inclusive user-id range for UID rules.
public struct UIDRange: Sendable, Equatable, Hashable, Codable {
    public var lower: UInt32
    public var upper: UInt32

    public init(_ lower: UInt32, _ upper: UInt32) {
        self.lower = lower
        self.upper = upper
    }
}

/// One entry of `rule-providers:`: a named set of rules loaded from a file, a URL or inline.
public struct RuleProvider: Sendable, Equatable, Codable {
    /// Where the rules come from.
    public enum Source: Sendable, Equatable, Codable {
        case file(path: String)
        /// Downloaded from `url`, cached at `path` (nil: a path under the state directory), refreshed every
        /// `interval` seconds (0: never).
        case http(url: String, path: String?, interval: Int)
        case inline(payload: [String])
    }

    /// What each entry of the provider is.
    public enum Behavior: String, Sendable, Equatable, Codable {
        case domain, ipcidr, classical
    }

    /// The file format of a file or http provider.
    public enum Format: String, Sendable, Equatable, Codable {
        case yaml, text
    }

    public var name: String
    public var source: Source
    public var behavior: Behavior
    public var format: Format = .yaml
    /// The entries, read when the configuration was loaded (from the file, the inline payload or an http
    /// provider's cache file), so that workers never read provider files themselves. Their kind matches
    /// `behavior`.
    public var contents: RuleProviderContents

    public init(
        name: String, source: Source, behavior: Behavior, format: Format = .yaml,
        contents: RuleProviderContents? = nil
    ) {
        self.name = name
        self.source = source
        self.behavior = behavior
        self.format = format
        self.contents = contents ?? .empty(behavior)
    }
}

/// The loaded entries of a rule provider, one case per behaviour.
public enum RuleProviderContents: Sendable, Equatable, Codable {
    /// `behavior: domain`: mihomo's domain syntax (`example.com`, `+.example.com`, `.example.com`, `*` for one label).
    case domain([DomainPattern])
    /// `behavior: ipcidr`: destination prefixes.
    case ipcidr([IPPrefix])
    /// `behavior: classical`: rules without a target.
    case classical([ProviderRule])

    /// No entries of the kind `behavior` holds.
    public static func empty(_ behavior: RuleProvider.Behavior) -> RuleProviderContents {
        switch behavior {
        case .domain: return .domain([])
        case .ipcidr: return .ipcidr([])
        case .classical: return .classical([])
        }
    }

    /// How many entries there are.
    public var count: Int {
        switch self {
        case .domain(let entries): return entries.count
        case .ipcidr(let entries): return entries.count
        case .classical(let entries): return entries.count
        }
    }
}

/// One entry of a classical rule provider: `TYPE,PAYLOAD[,no-resolve][,src]`, a rule without a target.
public struct ProviderRule: Sendable, Equatable, Codable {
    public var condition: RuleCondition
    /// Reaching this entry does not resolve the name for an IP condition (`no-resolve`).
    public var noResolve = false
    /// IP conditions test the source address (`src`).
    public var matchSource = false

    public init(condition: RuleCondition, noResolve: Bool = false, matchSource: Bool = false) {
        self.condition = condition
        self.noResolve = noResolve
        self.matchSource = matchSource
    }
}
