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
    /// The domain name the client asked for, lowercased, without a trailing dot.
    public var host: String?
    /// The destination is a fake-IP address: IP rules do not apply to it (a domain
    /// connection's IP rules need the real address: resolution arrives with issue 6).
    public var destinationIsFake: Bool

    public init(
        network: Network, source: IPAddress, sourcePort: UInt16, destination: IPAddress, destinationPort: UInt16,
        host: String? = nil, destinationIsFake: Bool = false
    ) {
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

    public init(target: String, rule: String) {
        self.target = target
        self.rule = rule
    }
}

/// First-match evaluation of the configuration's rules, with mihomo's semantics.
///
/// Kinds decided from packet facts (IP-CIDR, ports, NETWORK, SRC-*, MATCH, logical
/// combinations) and from the destination name (DOMAIN*, when a name is known) match now.
/// Kinds that need data the tun worker does not have yet — RULE-SET contents, process and
/// UID lookups, IP-SUFFIX — never match, and ``unsupportedKinds`` names them so the
/// worker can say so once at start (issue 6 brings them, and the indexed matcher).
///
/// `@unchecked Sendable`: every stored property is immutable after init; `Regex` is not
/// marked Sendable, but matching never mutates the compiled program.
public final class RuleEngine: @unchecked Sendable {
    public let mode: SluiceConfiguration.Mode
    private let rules: [Rule]
    private let regexes: [String: Regex<AnyRegexOutput>]
    public let unsupportedKinds: Set<String>

    public init(rules: [Rule], mode: SluiceConfiguration.Mode = .rule) {
        self.rules = rules
        self.mode = mode
        var regexes: [String: Regex<AnyRegexOutput>] = [:]
        var unsupported: Set<String> = []
        func scan(_ c: RuleCondition) {
            switch c {
            case .domainRegex(let pattern): regexes[pattern] = try? Regex(pattern)
            case .and(let cs), .or(let cs): cs.forEach(scan)
            case .not(let inner): scan(inner)
            case .ruleSet: unsupported.insert("RULE-SET")
            case .processName: unsupported.insert("PROCESS-NAME")
            case .processPath: unsupported.insert("PROCESS-PATH")
            case .uid: unsupported.insert("UID")
            case .ipSuffix: unsupported.insert("IP-SUFFIX")
            case .inboundPort: unsupported.insert("IN-PORT")
            default: break
            }
        }
        rules.forEach { scan($0.condition) }
        self.regexes = regexes
        self.unsupportedKinds = unsupported
    }

    public convenience init(configuration: SluiceConfiguration) {
        self.init(rules: configuration.rules, mode: configuration.mode)
    }

    /// The first rule that matches, or DIRECT when none does (mihomo's behaviour without a
    /// MATCH rule).
    public func decide(_ m: ConnectionMetadata) -> RuleDecision {
        switch mode {
        case .direct: return RuleDecision(target: "DIRECT", rule: "mode direct")
        case .global, .rule: break
        }
        for rule in rules where matches(rule.condition, m, noResolve: rule.noResolve, matchSource: rule.matchSource) {
            return RuleDecision(target: rule.target, rule: Self.describe(rule.condition))
        }
        return RuleDecision(target: "DIRECT", rule: "no rule matched")
    }

    private func matches(_ c: RuleCondition, _ m: ConnectionMetadata, noResolve: Bool, matchSource: Bool) -> Bool {
        switch c {
        case .match: return true
        case .domain(let d): return m.host == Self.normalizedHost(d)
        case .domainSuffix(let s):
            guard let host = m.host else { return false }
            let suffix = Self.normalizedHost(s)
            return host == suffix || host.hasSuffix("." + suffix)
        case .domainKeyword(let k):
            guard let host = m.host else { return false }
            return host.contains(k.lowercased())
        case .domainRegex(let pattern):
            guard let host = m.host, let regex = regexes[pattern] else { return false }
            return (try? regex.firstMatch(in: host)) != nil
        case .ipCIDR(let prefix):
            if matchSource { return prefix.contains(m.source) }
            guard !m.destinationIsFake else { return false }
            return prefix.contains(Self.unmapped(m.destination))
        case .sourceIPCIDR(let prefix): return prefix.contains(Self.unmapped(m.source))
        case .sourcePort(let ranges): return ranges.contains { $0.contains(m.sourcePort) }
        case .destinationPort(let ranges):
            return m.network != .icmp && ranges.contains { $0.contains(m.destinationPort) }
        case .network(let n):
            switch n {
            case .tcp: return m.network == .tcp
            case .udp: return m.network == .udp
            }
        case .and(let cs): return cs.allSatisfy { matches($0, m, noResolve: noResolve, matchSource: matchSource) }
        case .or(let cs): return cs.contains { matches($0, m, noResolve: noResolve, matchSource: matchSource) }
        case .not(let inner): return !matches(inner, m, noResolve: noResolve, matchSource: matchSource)
        case .ipSuffix, .inboundPort, .processName, .processPath, .uid, .ruleSet: return false
        }
    }

    /// `::ffff:1.2.3.4` compares as `1.2.3.4`, as mihomo does.
    static func unmapped(_ address: IPAddress) -> IPAddress {
        if case .v6(let v6) = address, let v4 = v6.ipv4Mapped { return .v4(v4) }
        return address
    }

    static func normalizedHost(_ host: String) -> String {
        var h = host.lowercased()
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
        case .network(let n): return "NETWORK,\(n.rawValue.uppercased())"
        case .processName(let n): return "PROCESS-NAME,\(n)"
        case .processPath(let n): return "PROCESS-PATH,\(n)"
        case .uid: return "UID"
        case .and(let cs): return "AND,(" + cs.map { "(\(describe($0)))" }.joined(separator: ",") + ")"
        case .or(let cs): return "OR,(" + cs.map { "(\(describe($0)))" }.joined(separator: ",") + ")"
        case .not(let inner): return "NOT,((\(describe(inner))))"
        case .ruleSet(let n): return "RULE-SET,\(n)"
        }
    }
}
