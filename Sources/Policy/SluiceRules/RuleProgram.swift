import SluiceConfig
import SluiceNet

/// The rules and providers as both matchers use them: names in the form hosts arrive in
/// (lowercase, no trailing dot, Punycode for non-ASCII labels), regular expressions compiled
/// once, and which rules resolve a name when reached.
///
/// `@unchecked Sendable`: immutable after init; `Regex` is not marked Sendable, but matching never
/// mutates the compiled program.
struct RuleProgram: @unchecked Sendable {
    /// The rules with normalised payloads, in order.
    let rules: [Rule]
    /// The providers by name, with normalised contents.
    let providers: [String: RuleProvider]
    /// Every DOMAIN-REGEX pattern, compiled (a pattern that does not compile never matches).
    let regexes: [String: Regex<AnyRegexOutput>]
    /// `resolves[i]`: reaching rule `i` resolves the name of a fake destination (it tests the destination address
    /// and has neither `no-resolve` nor `src`).
    let resolves: [Bool]
    /// The first rule that resolves, or `Int32.max`.
    let firstResolving: Int32
    /// For each provider, whether it has an entry that tests the destination address (with or without
    /// `no-resolve`): what a RULE-SET's answer may depend on.
    let providersTestingDestination: [String: Bool]
    let unsupportedKinds: Set<String>
    /// Some rule (or classical provider entry) tests the flow's `uid`.
    let usesUID: Bool
    /// Some rule tests PROCESS-NAME or PROCESS-PATH.
    let usesProcess: Bool
    /// The first rule that tests the process (in itself, a logical rule, a SUB-RULE or a rule set); nil: none does.
    let firstProcessRule: Int?

    init(rules: [Rule], providers: [RuleProvider]) {
        var byName: [String: RuleProvider] = [:]
        for provider in providers where byName[provider.name] == nil {
            var normalised = provider
            normalised.contents = Self.normalise(provider.contents)
            byName[provider.name] = normalised
        }
        self.providers = byName
        self.rules = rules.map { rule in
            var copy = rule
            copy.condition = Self.normalise(rule.condition)
            return copy
        }

        var regexes: [String: Regex<AnyRegexOutput>] = [:]
        var unsupported: Set<String> = []
        var scannedProviders: Set<String> = []
        var usesUID = false
        var usesProcess = false
        func scan(_ c: RuleCondition) {
            switch c {
            case .uid: usesUID = true
            case .domainRegex(let pattern):
                if regexes[pattern] == nil, let regex = try? Regex(pattern) {
                    // Swift compiles a regex on its first use; do that now rather than on a connection.
                    _ = try? regex.firstMatch(in: "")
                    regexes[pattern] = regex
                }
            case .and(let cs), .or(let cs): cs.forEach(scan)
            case .not(let inner): scan(inner)
            case .ruleSet(let name):
                guard let provider = byName[name] else {
                    unsupported.insert("RULE-SET")
                    return
                }
                if scannedProviders.insert(name).inserted, case .classical(let entries) = provider.contents {
                    entries.forEach { scan($0.condition) }
                }
            case .processName, .processPath: usesProcess = true
            case .subRule(let condition, _, let rules):
                scan(condition)
                rules.forEach { scan($0.condition) }
            default: break
            }
        }
        var firstProcessRule: Int?
        for (index, rule) in self.rules.enumerated() {
            scan(rule.condition)
            if usesProcess && firstProcessRule == nil { firstProcessRule = index }
        }
        self.firstProcessRule = firstProcessRule
        self.regexes = regexes
        self.unsupportedKinds = unsupported
        self.usesUID = usesUID
        self.usesProcess = usesProcess

        var testing: [String: Bool] = [:]
        var resolvingProviders: [String: Bool] = [:]
        for (name, provider) in byName {
            switch provider.contents {
            case .domain:
                resolvingProviders[name] = false
                testing[name] = false
            case .ipcidr(let prefixes):
                resolvingProviders[name] = !prefixes.isEmpty
                testing[name] = !prefixes.isEmpty
            case .classical(let entries):
                resolvingProviders[name] = entries.contains {
                    !$0.noResolve && !$0.matchSource && Self.testsDestination($0.condition, providers: [:])
                }
                testing[name] = entries.contains {
                    !$0.matchSource && Self.testsDestination($0.condition, providers: [:])
                }
            }
        }
        providersTestingDestination = testing
        let resolves = self.rules.map { Self.resolves($0, providers: resolvingProviders) }
        self.resolves = resolves
        self.firstResolving = resolves.firstIndex(of: true).map { Int32($0) } ?? .max
    }

    /// Whether reaching `rule` resolves a fake destination's name: it tests the destination address without
    /// `no-resolve` or `src`, or it is a SUB-RULE whose condition or set holds such a rule. mihomo decides this
    /// before matching the rule (`tunnel.go` `match` asks `ShouldResolveIP`, which for a SUB-RULE is that of its
    /// condition and of every rule of its set, `rules/logic/logic.go`); inside a set nothing resolves again.
    static func resolves(_ rule: Rule, providers: [String: Bool]) -> Bool {
        if case .subRule(let condition, _, let rules) = rule.condition {
            return (!rule.noResolve && testsDestination(condition, providers: providers))
                || rules.contains { resolves($0, providers: providers) }
        }
        return !rule.noResolve && !rule.matchSource && testsDestination(rule.condition, providers: providers)
    }

    /// Whether `c` tests the destination address somewhere (so that reaching it resolves a fake destination's
    /// name); `providers` says which providers hold such an entry. A SUB-RULE tests it when its condition or a rule
    /// of its set (other than a `src` one) does.
    static func testsDestination(_ c: RuleCondition, providers: [String: Bool]) -> Bool {
        switch c {
        case .ipCIDR, .ipSuffix: return true
        case .and(let cs), .or(let cs): return cs.contains { testsDestination($0, providers: providers) }
        case .not(let inner): return testsDestination(inner, providers: providers)
        case .ruleSet(let name): return providers[name] ?? false
        case .subRule(let condition, _, let rules):
            return testsDestination(condition, providers: providers)
                || rules.contains { !$0.matchSource && testsDestination($0.condition, providers: providers) }
        default: return false
        }
    }

    // MARK: Normalisation

    static func normalise(_ c: RuleCondition) -> RuleCondition {
        switch c {
        case .domain(let d): return .domain(RuleEngine.normalizedHost(d))
        case .domainSuffix(let d): return .domainSuffix(RuleEngine.normalizedHost(d))
        case .domainKeyword(let k):
            // A keyword is a fragment, not a name: no Punycode (a fragment's encoding is not a fragment of the
            // name's), only the case and Unicode form hosts have.
            return .domainKeyword(String(decoding: k.lowercased()._nfcCodeUnits, as: UTF8.self))
        case .and(let cs): return .and(cs.map(normalise))
        case .or(let cs): return .or(cs.map(normalise))
        case .not(let inner): return .not(normalise(inner))
        case .subRule(let condition, let name, let rules):
            return .subRule(
                normalise(condition), name: name,
                rules: rules.map { rule in
                    var copy = rule
                    copy.condition = normalise(rule.condition)
                    return copy
                })
        default: return c
        }
    }

    static func normalise(_ contents: RuleProviderContents) -> RuleProviderContents {
        switch contents {
        case .domain(let patterns): return .domain(patterns.map(normalise))
        case .ipcidr: return contents
        case .classical(let entries):
            return .classical(
                entries.map { entry in
                    var copy = entry
                    copy.condition = normalise(entry.condition)
                    return copy
                })
        }
    }

    static func normalise(_ pattern: DomainPattern) -> DomainPattern {
        switch pattern {
        case .exact(let name): return .exact(RuleEngine.normalizedHost(name))
        case .suffix(let name): return .suffix(RuleEngine.normalizedHost(name))
        case .subdomains(let name): return .subdomains(RuleEngine.normalizedHost(name))
        case .wildcard(let text):
            let (kind, body) = WildcardKind.split(text)
            return .wildcard(kind.prefix + RuleEngine.normalizedHost(String(body)))
        case .ruleSet: return pattern
        }
    }
}

/// What a wildcard domain pattern covers besides the labels it spells: `*.example.com` the name
/// of that shape, `+.*.example.com` also every name under it, `.*.example.com` only names under it.
enum WildcardKind {
    case exact, suffix, subdomains

    static func split(_ text: String) -> (WildcardKind, Substring) {
        if text.hasPrefix("+.") { return (.suffix, text.dropFirst(2)) }
        if text.hasPrefix(".") { return (.subdomains, text.dropFirst()) }
        return (.exact, text[...])
    }

    var prefix: String {
        switch self {
        case .exact: return ""
        case .suffix: return "+."
        case .subdomains: return "."
        }
    }
}

/// The addresses IP rules test as the destination: the real destination, the resolved
/// addresses of a fake one, or none. Stored without an array in the common one-address case.
struct DestinationAddresses {
    var first: IPAddress?
    var more: [IPAddress] = []

    init(_ address: IPAddress?) {
        first = address
    }

    init(_ addresses: [IPAddress]) {
        first = addresses.first.map(RuleEngine.unmapped)
        if addresses.count > 1 { more = addresses.dropFirst().map(RuleEngine.unmapped) }
    }

    func contains(where predicate: (IPAddress) -> Bool) -> Bool {
        guard let first else { return false }
        return predicate(first) || more.contains(where: predicate)
    }
}

/// The facts of one decision that conditions test.
struct MatchInput {
    let network: ConnectionMetadata.Network
    let host: String?
    /// The source, unmapped (`::ffff:a.b.c.d` as `a.b.c.d`).
    let source: IPAddress
    let sourcePort: UInt16
    let destinationPort: UInt16
    let uid: UInt32?
    let processPath: String?
    var destinations: DestinationAddresses
    let inbound: ConnectionMetadata.Inbound

    init(_ m: ConnectionMetadata) {
        inbound = m.inbound
        uid = m.uid
        processPath = m.processPath
        network = m.network
        host = m.host
        source = RuleEngine.unmapped(m.source)
        sourcePort = m.sourcePort
        destinationPort = m.destinationPort
        destinations = DestinationAddresses(m.destinationIsFake ? nil : RuleEngine.unmapped(m.destination))
    }
}

/// Condition semantics shared by both matchers; only RULE-SET is theirs to answer (the linear
/// matcher scans the provider, the indexed one asks its compiled set).
protocol ConditionEvaluating {
    var program: RuleProgram { get }
    /// Whether provider `name` matches; `matchSource` is the referencing rule's `src`.
    func ruleSetMatches(_ name: String, _ input: MatchInput, matchSource: Bool) -> Bool
}

extension ConditionEvaluating {
    /// Whether `c` matches. `insideProvider`: RULE-SET inside a provider's entries never matches (a config cannot
    /// say it, and a provider naming itself must not recurse).
    func evaluate(_ c: RuleCondition, _ input: MatchInput, matchSource: Bool, insideProvider: Bool = false) -> Bool {
        switch c {
        case .match: return true
        case .domain(let d):
            guard let host = input.host else { return false }
            return host.utf8.elementsEqual(d.utf8)
        case .domainSuffix(let s):
            guard let host = input.host else { return false }
            return DomainMatch.hasLabelSuffix(host, s, allowEqual: true)
        case .domainKeyword(let k):
            guard let host = input.host else { return false }
            return DomainMatch.contains(host, k)
        case .domainRegex(let pattern):
            guard let host = input.host, let regex = program.regexes[pattern] else { return false }
            return (try? regex.firstMatch(in: host)) != nil
        case .ipCIDR(let prefix):
            if matchSource { return prefix.contains(input.source) }
            return input.destinations.contains { prefix.contains($0) }
        case .ipSuffix(let prefix):
            if matchSource { return DomainMatch.suffixMatches(prefix, input.source) }
            return input.destinations.contains { DomainMatch.suffixMatches(prefix, $0) }
        case .sourceIPCIDR(let prefix): return prefix.contains(input.source)
        case .sourcePort(let ranges): return ranges.contains { $0.contains(input.sourcePort) }
        case .destinationPort(let ranges):
            return input.network != .icmp && ranges.contains { $0.contains(input.destinationPort) }
        case .network(let n):
            switch n {
            case .tcp: return input.network == .tcp
            case .udp: return input.network == .udp
            }
        case .and(let cs):
            return cs.allSatisfy {
                evaluate($0, input, matchSource: matchSource, insideProvider: insideProvider)
            }
        case .or(let cs):
            return cs.contains { evaluate($0, input, matchSource: matchSource, insideProvider: insideProvider) }
        case .not(let inner):
            return !evaluate(inner, input, matchSource: matchSource, insideProvider: insideProvider)
        case .ruleSet(let name):
            return !insideProvider && ruleSetMatches(name, input, matchSource: matchSource)
        case .uid(let ranges):
            guard let uid = input.uid else { return false }
            return ranges.contains { $0.lower <= uid && uid <= $0.upper }
        case .processName(let name):
            return input.processPath.map { RuleProgram.executableName($0) == name } ?? false
        case .processPath(let path):
            return input.processPath == path
        case .inboundPort(let ranges):
            return input.inbound.port != 0 && ranges.contains { $0.contains(input.inbound.port) }
        case .inboundType(let types): return types.contains(input.inbound.type)
        case .inboundUser(let users): return input.inbound.user.map(users.contains) ?? false
        case .inboundName(let names): return names.contains(input.inbound.name)
        case .subRule(let condition, _, let rules):
            // mihomo's Logic.Match for SUB-RULE: the condition, then the set's first match (logic.go matchSubRules).
            return evaluate(condition, input, matchSource: matchSource, insideProvider: insideProvider)
                && rules.contains {
                    evaluate($0.condition, input, matchSource: $0.matchSource, insideProvider: insideProvider)
                }
        }
    }

    /// For a SUB-RULE that matched, the position of the rule that decides in its set, and in that rule's set when
    /// it is a SUB-RULE too, and so on; empty for any other rule.
    func subRulePath(_ rule: Rule, _ input: MatchInput) -> [Int] {
        var path: [Int] = []
        var current = rule
        while case .subRule(_, _, let rules) = current.condition,
            let position = rules.firstIndex(where: { evaluate($0.condition, input, matchSource: $0.matchSource) })
        {
            path.append(position)
            current = rules[position]
        }
        return path
    }
}

/// Name and address comparisons on bytes (hosts and payloads are normalised, so byte equality
/// is name equality).
enum DomainMatch {
    /// Whether `suffix`'s labels end `host`'s labels: `host` is `suffix` (when `allowEqual`) or ends
    /// with `.suffix`.
    static func hasLabelSuffix(_ host: String, _ suffix: String, allowEqual: Bool) -> Bool {
        let h = host.utf8
        let s = suffix.utf8
        if h.count == s.count { return allowEqual && h.elementsEqual(s) }
        guard h.count > s.count else { return false }
        let tail = h.suffix(s.count)
        return tail.elementsEqual(s) && h[h.index(before: tail.startIndex)] == UInt8(ascii: ".")
    }

    /// Whether `keyword`'s bytes occur in `host`'s.
    static func contains(_ host: String, _ keyword: String) -> Bool {
        let h = Array(host.utf8)
        let k = Array(keyword.utf8)
        if k.isEmpty { return true }
        if k.count > h.count { return false }
        for start in 0...(h.count - k.count) where h[start..<(start + k.count)].elementsEqual(k) {
            return true
        }
        return false
    }

    /// mihomo's domain-provider syntax for one pattern.
    static func matches(_ pattern: DomainPattern, _ host: String) -> Bool {
        switch pattern {
        case .exact(let name): return host.utf8.elementsEqual(name.utf8)
        case .suffix(let name): return hasLabelSuffix(host, name, allowEqual: true)
        case .subdomains(let name): return hasLabelSuffix(host, name, allowEqual: false)
        case .wildcard(let text):
            let (kind, body) = WildcardKind.split(text)
            let want = Array(body.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false))
            let have = Array(host.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false))
            switch kind {
            case .exact: guard have.count == want.count else { return false }
            case .suffix: guard have.count >= want.count else { return false }
            case .subdomains: guard have.count > want.count else { return false }
            }
            return zip(want.reversed(), have.reversed()).allSatisfy {
                $0.elementsEqual([UInt8(ascii: "*")]) || $0.elementsEqual($1)
            }
        case .ruleSet: return false
        }
    }

    /// IP-SUFFIX: the low `length` bits of `address` equal those of the prefix's address (same family).
    static func suffixMatches(_ prefix: IPPrefix, _ address: IPAddress) -> Bool {
        let length = Int(prefix.length)
        switch (prefix.address, address) {
        case (.v4(let mine), .v4(let theirs)):
            if length == 0 { return true }
            let mask: UInt32 = length >= 32 ? .max : (1 << UInt32(length)) - 1
            return mine.rawValue & mask == theirs.rawValue & mask
        case (.v6(let mine), .v6(let theirs)):
            let a = UInt128(mine.high) << 64 | UInt128(mine.low)
            let b = UInt128(theirs.high) << 64 | UInt128(theirs.low)
            if length == 0 { return true }
            let mask: UInt128 = length >= 128 ? .max : (1 << UInt128(length)) - 1
            return a & mask == b & mask
        default:
            return false
        }
    }
}

extension RuleProgram {
    /// `/usr/bin/curl` → `curl` (what PROCESS-NAME compares).
    static func executableName(_ path: String) -> Substring {
        path.split(separator: "/", omittingEmptySubsequences: false).last ?? Substring(path)
    }
}
