import SluiceNet

/// One routing rule from `rules:` (or from a set of `sub-rules:`): when `condition` matches a connection, it goes
/// to `target`.
public struct Rule: Sendable, Equatable, Codable {
    public var condition: RuleCondition
    /// A proxy, a group, DIRECT, REJECT or REJECT-DROP. For a SUB-RULE (``RuleCondition/subRule(_:name:rules:)``),
    /// the name of its set, as mihomo's rule adapter is: the target then comes from the rule of the set that matched.
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
    /// IN-PORT: the local proxy port the connection came in on (TUN connections have none).
    case inboundPort([PortRange])
    /// IN-TYPE: how it came in, as mihomo names it in capitals (`TUN`, `SOCKS4`, `SOCKS5`, `HTTP`, `HTTPS` for
    /// CONNECT...); any of these.
    case inboundType([String])
    /// IN-USER: the user a local proxy port authenticated; any of these.
    case inboundUser([String])
    /// IN-NAME: the inbound's name (`DEFAULT-TUN`, `DEFAULT-MIXED`, a listener's `name`); any of these.
    case inboundName([String])
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
    /// SUB-RULE,(CONDITION),NAME: matches when `condition` matches and one of `rules` (the set `NAME` of
    /// `sub-rules:`, carried here so that a rule engine needs nothing else) matches; the first of them that
    /// matches decides the target, and a SUB-RULE among them descends again. When none matches, neither does the
    /// SUB-RULE, and matching goes on with the rule after it (mihomo's `rules/logic/logic.go`, `matchSubRules`).
    /// The loader refuses cycles, so the tree is finite.
    case subRule(RuleCondition, name: String, rules: [Rule])

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

// MARK: Compact JSON

// The supervisor pushes the configuration to the tun worker as JSON, rules and provider entries included: 100,000
// rules in the synthesized form (`{"condition":{"domainSuffix":{"_0":"example.com"}},"target":...}`) took 10 MiB
// and most of a second to encode and decode, against a 16 MiB frame limit. These encodings are a third of that and
// stay lossless: a rule is `[CONDITION, TARGET]` or `[CONDITION, TARGET, FLAGS]`, a condition `[TAG, PAYLOAD]`.

extension Rule {
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        condition = try container.decode(RuleCondition.self)
        target = try container.decode(String.self)
        (noResolve, matchSource) = try RuleFlags.decode(&container)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(condition)
        try container.encode(target)
        try RuleFlags.encode(noResolve: noResolve, matchSource: matchSource, into: &container)
    }
}

/// `no-resolve` and `src` in the compact JSON of rules: one optional trailing integer.
private enum RuleFlags {
    static func decode(_ container: inout any UnkeyedDecodingContainer) throws -> (noResolve: Bool, matchSource: Bool) {
        let flags = container.isAtEnd ? 0 : try container.decode(Int.self)
        return (flags & 1 != 0, flags & 2 != 0)
    }

    static func encode(noResolve: Bool, matchSource: Bool, into container: inout any UnkeyedEncodingContainer) throws {
        let flags = (noResolve ? 1 : 0) | (matchSource ? 2 : 0)
        if flags != 0 { try container.encode(flags) }
    }
}

extension ProviderRule {
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        condition = try container.decode(RuleCondition.self)
        (noResolve, matchSource) = try RuleFlags.decode(&container)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(condition)
        try RuleFlags.encode(noResolve: noResolve, matchSource: matchSource, into: &container)
    }
}

extension RuleCondition {
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        let tag = try container.decode(String.self)
        func ports() throws -> [PortRange] {
            let bounds = try container.decode([UInt16].self)
            guard bounds.count % 2 == 0 else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "odd number of port bounds")
            }
            return stride(from: 0, to: bounds.count, by: 2).map { PortRange(bounds[$0], bounds[$0 + 1]) }
        }
        switch tag {
        case "D": self = .domain(try container.decode(String.self))
        case "DS": self = .domainSuffix(try container.decode(String.self))
        case "DK": self = .domainKeyword(try container.decode(String.self))
        case "DR": self = .domainRegex(try container.decode(String.self))
        case "IP": self = .ipCIDR(try container.decode(IPPrefix.self))
        case "IS": self = .ipSuffix(try container.decode(IPPrefix.self))
        case "SIP": self = .sourceIPCIDR(try container.decode(IPPrefix.self))
        case "SP": self = .sourcePort(try ports())
        case "DP": self = .destinationPort(try ports())
        case "INP": self = .inboundPort(try ports())
        case "INT": self = .inboundType(try container.decode([String].self))
        case "INU": self = .inboundUser(try container.decode([String].self))
        case "INN": self = .inboundName(try container.decode([String].self))
        case "N":
            let name = try container.decode(String.self)
            guard let network = Network(rawValue: name) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "unknown network \(name)")
            }
            self = .network(network)
        case "PN": self = .processName(try container.decode(String.self))
        case "PP": self = .processPath(try container.decode(String.self))
        case "UID":
            let bounds = try container.decode([UInt32].self)
            guard bounds.count % 2 == 0 else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "odd number of uid bounds")
            }
            self = .uid(stride(from: 0, to: bounds.count, by: 2).map { UIDRange(bounds[$0], bounds[$0 + 1]) })
        case "AND": self = .and(try container.decode([RuleCondition].self))
        case "OR": self = .or(try container.decode([RuleCondition].self))
        case "NOT": self = .not(try container.decode(RuleCondition.self))
        case "RS": self = .ruleSet(try container.decode(String.self))
        case "M": self = .match
        case "SUB":
            let condition = try container.decode(RuleCondition.self)
            let name = try container.decode(String.self)
            self = .subRule(condition, name: name, rules: try container.decode([Rule].self))
        default:
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "unknown rule condition \(tag)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        func ports(_ ranges: [PortRange]) throws { try container.encode(ranges.flatMap { [$0.lower, $0.upper] }) }
        switch self {
        case .domain(let d):
            try container.encode("D")
            try container.encode(d)
        case .domainSuffix(let d):
            try container.encode("DS")
            try container.encode(d)
        case .domainKeyword(let d):
            try container.encode("DK")
            try container.encode(d)
        case .domainRegex(let d):
            try container.encode("DR")
            try container.encode(d)
        case .ipCIDR(let p):
            try container.encode("IP")
            try container.encode(p)
        case .ipSuffix(let p):
            try container.encode("IS")
            try container.encode(p)
        case .sourceIPCIDR(let p):
            try container.encode("SIP")
            try container.encode(p)
        case .sourcePort(let r):
            try container.encode("SP")
            try ports(r)
        case .destinationPort(let r):
            try container.encode("DP")
            try ports(r)
        case .inboundPort(let r):
            try container.encode("INP")
            try ports(r)
        case .inboundType(let t):
            try container.encode("INT")
            try container.encode(t)
        case .inboundUser(let u):
            try container.encode("INU")
            try container.encode(u)
        case .inboundName(let n):
            try container.encode("INN")
            try container.encode(n)
        case .network(let n):
            try container.encode("N")
            try container.encode(n.rawValue)
        case .processName(let n):
            try container.encode("PN")
            try container.encode(n)
        case .processPath(let n):
            try container.encode("PP")
            try container.encode(n)
        case .uid(let r):
            try container.encode("UID")
            try container.encode(r.flatMap { [$0.lower, $0.upper] })
        case .and(let cs):
            try container.encode("AND")
            try container.encode(cs)
        case .or(let cs):
            try container.encode("OR")
            try container.encode(cs)
        case .not(let inner):
            try container.encode("NOT")
            try container.encode(inner)
        case .ruleSet(let n):
            try container.encode("RS")
            try container.encode(n)
        case .match: try container.encode("M")
        case .subRule(let condition, let name, let rules):
            try container.encode("SUB")
            try container.encode(condition)
            try container.encode(name)
            try container.encode(rules)
        }
    }
}

extension DomainPattern {
    // One string with a one-letter kind: `s:example.com` for `+.example.com` (a domain provider holds tens of
    // thousands of these).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        let body = String(text.dropFirst(2))
        switch text.prefix(2) {
        case "e:": self = .exact(body)
        case "w:": self = .wildcard(body)
        case "s:": self = .suffix(body)
        case "d:": self = .subdomains(body)
        case "r:": self = .ruleSet(body)
        default:
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "invalid domain pattern \(text)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .exact(let name): try container.encode("e:" + name)
        case .wildcard(let name): try container.encode("w:" + name)
        case .suffix(let name): try container.encode("s:" + name)
        case .subdomains(let name): try container.encode("d:" + name)
        case .ruleSet(let name): try container.encode("r:" + name)
        }
    }
}
