import SluiceConfig
import SluiceNet

/// Indexes over a list of conditions, each tagged with the index of the rule it belongs to;
/// a lookup answers the lowest rule index whose condition matches.
///
/// Conditions of indexable kinds go into one index per kind over the whole list (exact names,
/// the suffix trie, the keyword automaton, a source and a destination prefix trie, port tables,
/// NETWORK, MATCH); the other kinds (regexes, IP-SUFFIX, logical rules) are compiled to a
/// `ConditionProgram` and kept in a list in rule order that is checked only below the best
/// index hit. So first-match order holds across the whole list: the answer is the lowest index
/// any structure reports. A RULE-SET rule adds its provider's entries under its own index.
///
/// A class with constant properties, built by `Builder`: the lookup reads them in place (no
/// copies, no exclusivity checks).
final class RuleIndex: @unchecked Sendable {
    /// A condition checked one at a time.
    struct Entry {
        var index: Int32
        /// The root node in `conditions`.
        var node: Int32
        /// The answer may change with the destination addresses.
        var testsDestination: Bool
    }

    private let exact: [String: Int32]
    private let domains: DomainTrie
    private let keywords: KeywordAutomaton
    private let sources: AddressTrie
    private let destinations: AddressTrie
    private let destinationPorts: PortTable
    private let sourcePorts: PortTable
    private let tcpLowest: Int32
    private let udpLowest: Int32
    private let matchAll: Int32
    private let entries: [Entry]
    private let conditions: ConditionProgram
    /// Whether any name index is in use (otherwise a lookup skips the name).
    private let hasNameIndexes: Bool

    /// Builds the index of `rules` (ascending rule index, condition, `src`). `set` numbers the nested set that
    /// answers a RULE-SET inside a logical rule or a SUB-RULE (nil: none, never matches).
    init(
        _ rules: [(index: Int32, condition: RuleCondition, matchSource: Bool)], program: RuleProgram,
        set: (NestedSetKey) -> Int32?
    ) {
        var builder = Builder()
        for rule in rules {
            builder.add(
                rule.condition, index: rule.index, matchSource: rule.matchSource, program: program, set: set, top: true)
        }
        builder.keywords.finish()
        builder.destinationPorts.finish()
        builder.sourcePorts.finish()
        exact = builder.exact
        domains = builder.domains
        keywords = builder.keywords
        sources = builder.sources
        destinations = builder.destinations
        destinationPorts = builder.destinationPorts
        sourcePorts = builder.sourcePorts
        tcpLowest = builder.tcpLowest
        udpLowest = builder.udpLowest
        matchAll = builder.matchAll
        entries = builder.entries
        conditions = builder.conditions.finish()
        hasNameIndexes = !exact.isEmpty || !domains.isEmpty || !keywords.isEmpty
    }

    /// The structures while they are filled.
    private struct Builder {
        var exact: [String: Int32] = [:]
        var domains = DomainTrie()
        var keywords = KeywordAutomaton()
        var sources = AddressTrie()
        var destinations = AddressTrie()
        var destinationPorts = PortTable()
        var sourcePorts = PortTable()
        var tcpLowest = Int32.max
        var udpLowest = Int32.max
        var matchAll = Int32.max
        var entries: [Entry] = []
        var conditions = ConditionProgram.Builder()

        /// `top`: a rule's own condition (false: a classical provider's entry, where RULE-SET never matches).
        mutating func add(
            _ c: RuleCondition, index: Int32, matchSource: Bool, program: RuleProgram, set: (NestedSetKey) -> Int32?,
            top: Bool
        ) {
            switch c {
            case .domain(let name):
                if exact[name].map({ index < $0 }) ?? true { exact[name] = index }
            case .domainSuffix(let suffix):
                domains.insert(suffix, .suffix, index: index)
            case .domainKeyword(let keyword):
                keywords.insert(keyword, index: index)
            case .ipCIDR(let prefix):
                if matchSource {
                    sources.insert(prefix, index: index)
                } else {
                    destinations.insert(prefix, index: index)
                }
            case .sourceIPCIDR(let prefix):
                sources.insert(prefix, index: index)
            case .match:
                matchAll = min(matchAll, index)
            case .destinationPort(let ranges):
                destinationPorts.insert(ranges, index: index)
            case .sourcePort(let ranges):
                sourcePorts.insert(ranges, index: index)
            case .network(.tcp):
                tcpLowest = min(tcpLowest, index)
            case .network(.udp):
                udpLowest = min(udpLowest, index)
            case .ruleSet(let name):
                // Inside a provider RULE-SET never matches; a missing provider never matches.
                guard top, let provider = program.providers[name] else { return }
                switch provider.contents {
                case .domain(let patterns):
                    for pattern in patterns { add(pattern, index: index) }
                case .ipcidr(let prefixes):
                    for prefix in prefixes {
                        if matchSource {
                            sources.insert(prefix, index: index)
                        } else {
                            destinations.insert(prefix, index: index)
                        }
                    }
                case .classical(let rules):
                    for rule in rules {
                        add(
                            rule.condition, index: index, matchSource: matchSource || rule.matchSource,
                            program: program,
                            set: set, top: false)
                    }
                }
            case .domainRegex, .ipSuffix, .and, .or, .not, .uid, .processName, .processPath, .subRule, .inboundPort,
                .inboundType, .inboundUser, .inboundName:
                let node = conditions.compile(
                    c, matchSource: matchSource, insideProvider: !top, program: program, set: set)
                let testsDestination =
                    !matchSource && RuleProgram.testsDestination(c, providers: program.providersTestingDestination)
                entries.append(Entry(index: index, node: node, testsDestination: testsDestination))
            }
        }

        mutating func add(_ pattern: DomainPattern, index: Int32) {
            switch pattern {
            case .exact(let name):
                if exact[name].map({ index < $0 }) ?? true { exact[name] = index }
            case .suffix(let name): domains.insert(name, .suffix, index: index)
            case .subdomains(let name): domains.insert(name, .subdomains, index: index)
            case .wildcard(let text):
                let (kind, body) = WildcardKind.split(text)
                switch kind {
                case .exact: domains.insert(body, .exact, index: index)
                case .suffix: domains.insert(body, .suffix, index: index)
                case .subdomains: domains.insert(body, .subdomains, index: index)
                }
            case .ruleSet: break
            }
        }
    }

    /// The lowest rule index at or above `from` that matches, `Int32.max` for none.
    ///
    /// - Parameter sets: the nested sets RULE-SETs inside logical rules name.
    /// - Parameter settled: list entries below this index that do not test the destination are
    ///   known not to match (an earlier lookup with other destination addresses checked them).
    /// - Precondition: no entry of an index that ignores the destination matches below `from`
    ///   (the matcher only asks from a later index after a lookup from 0 found nothing earlier).
    func lowestMatch(_ facts: MatchFacts, from: Int32, settled: Int32 = 0, sets: [RuleIndex]) -> Int32 {
        var best = matchAll
        switch facts.network {
        case .tcp: best = min(best, tcpLowest)
        case .udp: best = min(best, udpLowest)
        case .icmp: break
        }
        if facts.network != .icmp { best = min(best, destinationPorts.lowestMatch(facts.destinationPort)) }
        best = min(best, sourcePorts.lowestMatch(facts.sourcePort))
        if hasNameIndexes, let host = facts.host, let name = facts.hostString {
            if let hit = exact[name] { best = min(best, hit) }
            if !domains.isEmpty { best = min(best, domains.lowestMatch(host)) }
            if !keywords.isEmpty { best = min(best, keywords.lowestMatch(host)) }
        }
        if !sources.isEmpty { best = min(best, sources.lowestMatch(facts.source)) }
        if !destinations.isEmpty, let first = facts.destinations.first {
            best = min(best, destinations.lowestMatch(first, from: from))
            for address in facts.destinations.more {
                best = min(best, destinations.lowestMatch(address, from: from))
            }
        }
        // The rest, in rule order, only where they could still win.
        var i = from == 0 ? 0 : firstEntry(atOrAfter: from)
        while i < entries.count {
            let entry = entries[i]
            if entry.index >= best { break }
            i += 1
            if entry.index < settled && !entry.testsDestination { continue }
            if conditions.matches(entry.node, facts, sets: sets) {
                best = entry.index
                break
            }
        }
        return best
    }

    private func firstEntry(atOrAfter index: Int32) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].index < index { low = middle + 1 } else { high = middle }
        }
        return low
    }
}

/// What a nested `RuleIndex` answers: a rule provider tested from inside a logical rule (with or without `src`), or
/// a set of sub-rules. A set's rules are the same wherever its name is used (the loader fills every SUB-RULE from
/// the one set of that name), so one index serves every SUB-RULE naming it.
enum NestedSetKey: Hashable {
    case ruleSet(String, matchSource: Bool)
    case subRules(String)
}

/// The indexed strategy: one `RuleIndex` over all rules, and the resolve-once rule for fake
/// destinations.
///
/// When a fake destination's name may be resolved, the first lookup runs without addresses. If
/// it finds a rule before the first resolving rule `r`, that is the answer (the resolver was
/// never reached). Otherwise nothing before `r` matched, so resolving is what mihomo does next:
/// the second lookup, from `r` on, tests the resolved addresses; only the destination trie and
/// the list entries that test the destination can answer differently, and only those are
/// checked again.
///
/// A SUB-RULE is a list entry whose compiled node tests its condition and then asks its set's own `RuleIndex`
/// (one of the nested sets); when it is the answer, the same indexes find which rule of the set decides.
final class IndexedRuleMatcher: RuleMatching, @unchecked Sendable {
    /// The first rule that resolves a fake destination's name (`RuleProgram.firstResolving`). The program itself is
    /// not kept: its normalised copies are only needed while building.
    private let firstResolving: Int32
    private let index: RuleIndex
    /// The nested sets, by number: each provider named by a RULE-SET inside a logical rule (with and without
    /// `src`), its entries under index 0; and each set of sub-rules, its rules numbered from 0.
    private let nestedSets: [RuleIndex]
    /// For the SUB-RULEs among the rules: rule index → the number of its set.
    private let subRuleSets: [Int32: Int32]
    /// For each nested set of sub-rules, the same for its own SUB-RULEs (empty for the other nested sets).
    private let nestedSubRuleSets: [[Int32: Int32]]

    init(_ program: RuleProgram) {
        firstResolving = program.firstResolving
        var numbers: [NestedSetKey: Int32] = [:]
        var subRuleContents: [String: [Rule]] = [:]
        func scan(_ c: RuleCondition, _ matchSource: Bool, nested: Bool) {
            switch c {
            case .and(let cs), .or(let cs): cs.forEach { scan($0, matchSource, nested: true) }
            case .not(let inner): scan(inner, matchSource, nested: true)
            case .ruleSet(let name) where nested && program.providers[name] != nil:
                let key = NestedSetKey.ruleSet(name, matchSource: matchSource)
                if numbers[key] == nil { numbers[key] = Int32(numbers.count) }
            case .subRule(let condition, let name, let rules):
                scan(condition, matchSource, nested: true)
                guard numbers[.subRules(name)] == nil else { break }
                numbers[.subRules(name)] = Int32(numbers.count)
                subRuleContents[name] = rules
                for rule in rules { scan(rule.condition, rule.matchSource, nested: false) }
            default: break
            }
        }
        for rule in program.rules { scan(rule.condition, rule.matchSource, nested: false) }
        let nestedNumbers = numbers
        func numbered(_ rules: [Rule]) -> [(index: Int32, condition: RuleCondition, matchSource: Bool)] {
            rules.enumerated().map { (Int32($0.offset), $0.element.condition, $0.element.matchSource) }
        }
        func subRules(_ rules: [Rule]) -> [Int32: Int32] {
            var result: [Int32: Int32] = [:]
            for (i, rule) in rules.enumerated() {
                if case .subRule(_, let name, _) = rule.condition { result[Int32(i)] = nestedNumbers[.subRules(name)] }
            }
            return result
        }
        var sets = [RuleIndex?](repeating: nil, count: numbers.count)
        var setSubRules = [[Int32: Int32]](repeating: [:], count: numbers.count)
        for (key, number) in numbers {
            switch key {
            case .ruleSet(let name, let matchSource):
                // One RULE-SET rule at index 0; inside it RULE-SET never matches, so it needs no sets itself.
                sets[Int(number)] = RuleIndex([(0, .ruleSet(name), matchSource)], program: program) { _ in nil }
            case .subRules(let name):
                let rules = subRuleContents[name] ?? []
                sets[Int(number)] = RuleIndex(numbered(rules), program: program) { nestedNumbers[$0] }
                setSubRules[Int(number)] = subRules(rules)
            }
        }
        nestedSets = sets.map { $0! }
        nestedSubRuleSets = setSubRules
        subRuleSets = subRules(program.rules)
        index = RuleIndex(numbered(program.rules), program: program) { nestedNumbers[$0] }
    }

    func firstMatch(_ m: ConnectionMetadata, resolve: ((String) -> [IPAddress])?) -> RuleMatch? {
        guard var host = m.host else { return firstMatch(m, host: nil, resolve: resolve) }
        return host.withUTF8 { firstMatch(m, host: UnsafeRawBufferPointer($0), resolve: resolve) }
    }

    private func firstMatch(
        _ m: ConnectionMetadata, host: UnsafeRawBufferPointer?, resolve: ((String) -> [IPAddress])?
    ) -> RuleMatch? {
        var facts = MatchFacts(
            host: host, hostString: m.host, network: m.network, source: RuleEngine.unmapped(m.source),
            sourcePort: m.sourcePort, destinationPort: m.destinationPort, uid: m.uid, processPath: m.processPath,
            inbound: m.inbound,
            destinations: DestinationAddresses(m.destinationIsFake ? nil : RuleEngine.unmapped(m.destination)))
        var best = index.lowestMatch(facts, from: 0, sets: nestedSets)
        let r = firstResolving
        if best >= r, r != .max, let resolve, m.destinationIsFake, let name = m.host, !name.isEmpty {
            facts.destinations = DestinationAddresses(resolve(name))
            best = index.lowestMatch(facts, from: r, settled: best, sets: nestedSets)
        }
        guard best != .max else { return nil }
        var found = RuleMatch(index: Int(best))
        // A SUB-RULE matched: find the rule of its set that decides, with the same facts (and so on down).
        var set = subRuleSets[best]
        while let number = set {
            let position = nestedSets[Int(number)].lowestMatch(facts, from: 0, sets: nestedSets)
            guard position != .max else { break }
            found.path.append(Int(position))
            set = nestedSubRuleSets[Int(number)][position]
        }
        return found
    }
}
