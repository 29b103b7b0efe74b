import SluiceConfig
import SluiceNet

/// What a flow looks like to the rules: its network, endpoints, and the name behind its
/// destination when one is known (fake-IP mapping, later sniffing).
public struct ConnectionMetadata: Sendable, Equatable {
    public enum Network: String, Sendable {
        case tcp, udp, icmp
    }

    public var network: Network
    public var source: IPAddress
    public var sourcePort: UInt16
    public var destination: IPAddress
    public var destinationPort: UInt16
    /// The domain name the client asked for in ASCII (Punycode) form, lowercased, without a
    /// trailing dot (the initialiser normalises it so; set it directly only in that form).
    public var host: String?
    /// The destination is a fake-IP address, not a real one: IP rules do not test it. With a
    /// resolver (`decide(_:resolve:)`), the first IP rule without `no-resolve` resolves `host`
    /// and IP rules from there on test the real addresses.
    public var destinationIsFake: Bool
    /// The owner of the local socket that opened the flow (`UID` rules); nil for flows from
    /// other machines (gateway mode) or when the kernel's socket table has no such socket.
    public var uid: UInt32?
    /// The executable of the local process that opened the flow (`PROCESS-PATH`; its last
    /// part is what `PROCESS-NAME` tests); nil when unknown or not local.
    public var processPath: String?
    /// How the connection came in (IN-TYPE, IN-NAME, IN-USER, IN-PORT rules): the TUN unless a local proxy port.
    public var inbound = Inbound.tun

    /// How a connection came in, with mihomo's names.
    public struct Inbound: Sendable, Equatable {
        /// mihomo's type in capitals, as IN-TYPE spells it: `TUN`, `SOCKS4`, `SOCKS5`, `HTTP`, `HTTPS` (CONNECT).
        public var type: String
        /// `DEFAULT-TUN`, `DEFAULT-MIXED`, `DEFAULT-SOCKS`, `DEFAULT-HTTP`, or a listener's name.
        public var name: String
        /// The user a local proxy port authenticated.
        public var user: String?
        /// The local proxy port; 0 for the TUN.
        public var port: UInt16

        public init(type: String, name: String, user: String? = nil, port: UInt16) {
            self.type = type
            self.name = name
            self.user = user
            self.port = port
        }

        public static let tun = Inbound(type: "TUN", name: "DEFAULT-TUN", port: 0)
    }

    public init(
        network: Network, source: IPAddress, sourcePort: UInt16, destination: IPAddress, destinationPort: UInt16,
        host: String? = nil, destinationIsFake: Bool = false, uid: UInt32? = nil, processPath: String? = nil
    ) {
        self.uid = uid
        self.processPath = processPath
        self.network = network
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
        self.host = host.map(RuleEngine.normalizedHost)
        self.destinationIsFake = destinationIsFake
    }
}

/// The outcome of matching: where the flow goes, and which rule said so (for logs and
/// the connections API).
public struct RuleDecision: Sendable, Equatable {
    /// A proxy or group name, `DIRECT`, `REJECT` or `REJECT-DROP`.
    public var target: String
    /// `IP-CIDR,10.0.0.0/8` / `MATCH` / `mode direct` / `no rule matched`.
    public var rule: String
    /// The rule that decided; nil when none did (`mode direct`, `no rule matched`).
    public var condition: RuleCondition?

    public init(target: String, rule: String, condition: RuleCondition? = nil) {
        self.target = target
        self.rule = rule
        self.condition = condition
    }
}

/// First-match evaluation of the configuration's rules, with mihomo's semantics.
///
/// Kinds decided from packet facts (IP-CIDR, IP-SUFFIX, ports, NETWORK, SRC-*, MATCH, logical
/// combinations), from the destination name (DOMAIN*, when a name is known) and RULE-SET (with the
/// providers' loaded contents) match. Kinds that need data the tun worker does not have yet —
/// IN-PORT — never match, and ``unsupportedKinds`` names them so the
/// worker can say so once at start.
///
/// Matching is indexed (``Strategy/indexed``): exact names in a hash table, suffixes in a
/// reversed-label trie, keywords in an Aho-Corasick automaton, prefixes in a radix trie per
/// family, the rest checked in order; the answer is the lowest-numbered rule that matches, which
/// is exactly the first match of the plain loop (``Strategy/linear``, kept as the reference for
/// tests and benchmarks).
///
/// `@unchecked Sendable`: every stored property is immutable after init; `Regex` is not
/// marked Sendable, but matching never mutates the compiled program.
public final class RuleEngine: @unchecked Sendable {
    /// How rules are matched. Both give the same decisions.
    public enum Strategy: Sendable {
        /// Indexes over the whole list: microseconds for any number of rules.
        case indexed
        /// One rule after the other: the reference semantics, for tests and benchmarks.
        case linear
    }

    public let mode: SluiceConfiguration.Mode
    private let rules: [Rule]
    private let matcher: any RuleMatching
    /// Rule kinds that are present but never match (and RULE-SET naming a provider that was not given).
    public let unsupportedKinds: Set<String>
    /// Whether any rule tests `uid`: only then is the owner of a flow's socket looked up.
    public let usesUID: Bool
    /// Whether any rule tests the process: only then is it looked up.
    public let usesProcess: Bool
    /// The first rule that tests the process; nil when none does.
    private let firstProcessRule: Int?

    /// - Parameter providers: the loaded rule providers that RULE-SET rules name; a RULE-SET whose
    ///   provider is missing never matches (and is listed in ``unsupportedKinds``).
    public init(
        rules: [Rule], providers: [RuleProvider] = [], mode: SluiceConfiguration.Mode = .rule,
        strategy: Strategy = .indexed
    ) {
        self.rules = rules
        self.mode = mode
        let program = RuleProgram(rules: rules, providers: providers)
        switch strategy {
        case .indexed: matcher = IndexedRuleMatcher(program)
        case .linear: matcher = LinearRuleMatcher(program)
        }
        unsupportedKinds = program.unsupportedKinds
        usesUID = program.usesUID
        usesProcess = program.usesProcess
        firstProcessRule = program.firstProcessRule
    }

    public convenience init(configuration: SluiceConfiguration, strategy: Strategy = .indexed) {
        self.init(
            rules: configuration.rules, providers: configuration.ruleProviders, mode: configuration.mode,
            strategy: strategy)
    }

    /// The first rule that matches, or DIRECT when none does (mihomo's behaviour without a
    /// MATCH rule). Never resolves names: on a fake-IP connection, IP rules do not match.
    public func decide(_ m: ConnectionMetadata) -> RuleDecision {
        decide(m, resolver: nil)
    }

    /// Like ``decide(_:)``, but when the destination is fake and an IP rule without `no-resolve`
    /// (IP-CIDR, IP-CIDR6, IP-SUFFIX, or a RULE-SET or logical rule holding one) is reached, calls
    /// `resolve(host)` — at most once per decision, only then, and only when `m.host` is known —
    /// and tests that rule and every later IP rule (with or without `no-resolve`, as mihomo does)
    /// against the addresses it returns: an IP rule matches when any of them is in its prefix. An
    /// empty answer (resolution failed) matches no IP rule.
    public func decide(_ m: ConnectionMetadata, resolve: (String) -> [IPAddress]) -> RuleDecision {
        withoutActuallyEscaping(resolve) { decide(m, resolver: $0) }
    }

    /// The decision when the process cannot change it: the first rule that matches `m` (whose process is not known)
    /// comes before every rule that tests the process. nil: a rule that tests the process could decide, so the
    /// process must be looked up first. Lets a caller that must not wait for that lookup decide what it can at once.
    public func decideBeforeProcess(_ m: ConnectionMetadata, resolve: (String) -> [IPAddress]) -> RuleDecision? {
        withoutActuallyEscaping(resolve) { resolver in
            if mode == .direct { return decide(m, resolver: resolver) }
            guard let first = firstProcessRule else { return decide(m, resolver: resolver) }
            guard let found = matcher.firstMatch(m, resolve: resolver), found.index < first else { return nil }
            return decision(found)
        }
    }

    private func decide(_ m: ConnectionMetadata, resolver: ((String) -> [IPAddress])?) -> RuleDecision {
        switch mode {
        case .direct: return RuleDecision(target: BuiltinTarget.direct.rawValue, rule: "mode direct")
        case .global, .rule: break
        }
        guard let found = matcher.firstMatch(m, resolve: resolver) else {
            return RuleDecision(target: BuiltinTarget.direct.rawValue, rule: "no rule matched")
        }
        return decision(found)
    }

    /// The decision of the rule `found` (the target of the rule of a SUB-RULE's set that matched).
    private func decision(_ found: RuleMatch) -> RuleDecision {
        let top = rules[found.index]
        // A SUB-RULE's target is that of the rule in its set that matched (`SUB-RULE,(NETWORK,TCP),web → DOMAIN,a`).
        var rule = top
        var description = Self.describe(top.condition)
        for position in found.path {
            guard case .subRule(_, _, let inner) = rule.condition, inner.indices.contains(position) else { break }
            rule = inner[position]
            description += " → " + Self.describe(rule.condition)
        }
        if case .subRule = rule.condition {
            // Cannot happen (a SUB-RULE matches only through a rule of its set); its target names no proxy, so
            // reject rather than let the dispatcher guess.
            return RuleDecision(target: BuiltinTarget.reject.rawValue, rule: description, condition: top.condition)
        }
        return RuleDecision(target: rule.target, rule: description, condition: top.condition)
    }

    /// `::ffff:1.2.3.4` compares as `1.2.3.4`, as mihomo does.
    static func unmapped(_ address: IPAddress) -> IPAddress {
        if case .v6(let v6) = address, let v4 = v6.ipv4Mapped { return .v4(v4) }
        return address
    }

    /// A name as rules compare it: IDNA ToASCII (Punycode for non-ASCII labels), lowercase,
    /// no trailing dot.
    static func normalizedHost(_ host: String) -> String {
        var ascii = true
        var clean = true
        for byte in host.utf8 {
            if byte >= 0x80 { ascii = false }
            if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") { clean = false }
        }
        if ascii && clean && host.utf8.last != UInt8(ascii: ".") { return host }
        var h: String
        if ascii {
            h = host.lowercased()
        } else {
            // A name that cannot be encoded (a label too long) is still compared consistently: in NFC.
            h = IDNA.toASCII(host) ?? String(decoding: host.lowercased()._nfcCodeUnits, as: UTF8.self)
        }
        while h.hasSuffix(".") { h.removeLast() }
        return h
    }

    /// The rule as written in a config, for logs: `IP-CIDR,10.0.0.0/8`.
    public static func describe(_ c: RuleCondition) -> String {
        func ports(_ r: [PortRange]) -> String {
            r.map { $0.lower == $0.upper ? "\($0.lower)" : "\($0.lower)-\($0.upper)" }.joined(separator: "/")
        }
        switch c {
        case .match: return "MATCH"
        case .domain(let d): return "DOMAIN,\(d)"
        case .domainSuffix(let d): return "DOMAIN-SUFFIX,\(d)"
        case .domainKeyword(let d): return "DOMAIN-KEYWORD,\(d)"
        case .domainRegex(let d): return "DOMAIN-REGEX,\(d)"
        case .ipCIDR(let p): return p.address.isIPv4 ? "IP-CIDR,\(p)" : "IP-CIDR6,\(p)"
        case .ipSuffix(let p): return "IP-SUFFIX,\(p)"
        case .sourceIPCIDR(let p): return "SRC-IP-CIDR,\(p)"
        case .sourcePort(let r): return "SRC-PORT,\(ports(r))"
        case .destinationPort(let r): return "DST-PORT,\(ports(r))"
        case .inboundPort(let r): return "IN-PORT,\(ports(r))"
        case .inboundType(let t): return "IN-TYPE,\(t.joined(separator: "/"))"
        case .inboundUser(let u): return "IN-USER,\(u.joined(separator: "/"))"
        case .inboundName(let n): return "IN-NAME,\(n.joined(separator: "/"))"
        case .network(let n): return "NETWORK,\(n.rawValue.uppercased())"
        case .processName(let n): return "PROCESS-NAME,\(n)"
        case .processPath(let n): return "PROCESS-PATH,\(n)"
        case .uid(let ranges):
            return "UID,"
                + ranges.map { $0.lower == $0.upper ? "\($0.lower)" : "\($0.lower)-\($0.upper)" }.joined(separator: "/")
        case .and(let cs): return "AND,(" + cs.map { "(\(describe($0)))" }.joined(separator: ",") + ")"
        case .or(let cs): return "OR,(" + cs.map { "(\(describe($0)))" }.joined(separator: ",") + ")"
        case .not(let inner): return "NOT,((\(describe(inner))))"
        case .ruleSet(let n): return "RULE-SET,\(n)"
        case .subRule(let condition, let name, _): return "SUB-RULE,(\(describe(condition))),\(name)"
        }
    }
}

/// Which rule matched: the index in the rules, and for a SUB-RULE the position of the deciding rule in its set
/// (then in that rule's set, for a nested SUB-RULE).
struct RuleMatch: Equatable {
    var index: Int
    var path: [Int] = []
}

/// A way of finding the first matching rule; the two strategies implement it.
protocol RuleMatching: Sendable {
    /// The first rule that matches `m` (and for a SUB-RULE the rule of its set that decides), resolving the name
    /// through `resolve` as ``RuleEngine/decide(_:resolve:)`` describes.
    func firstMatch(_ m: ConnectionMetadata, resolve: ((String) -> [IPAddress])?) -> RuleMatch?
}
