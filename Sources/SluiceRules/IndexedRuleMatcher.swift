import SluiceConfig
import SluiceNet

/// Indexes over a list of conditions, each tagged with the index of the rule it belongs to;
/// a lookup answers the lowest rule index whose condition matches.
///
/// Conditions of indexable kinds go into one index per kind over the whole list (exact names,
/// the suffix trie, the keyword automaton, a source and a destination prefix trie, MATCH); the
/// other kinds (regexes, ports, NETWORK, IP-SUFFIX, logical rules) stay in a list in rule order
/// that is checked only below the best index hit, so first-match order holds across the list:
/// the answer is the lowest index any structure reports. A RULE-SET rule adds its provider's
/// entries under its own index.
struct RuleIndex {
    /// A condition checked one at a time.
    struct Entry {
        var index: Int32
        var condition: RuleCondition
        var matchSource: Bool
        /// The condition is a provider's entry, where RULE-SET never matches.
        var insideProvider: Bool
    }

    private var exact: [String: Int32] = [:]
    private var domains = DomainTrie()
    private var keywords = KeywordAutomaton()
    private var sources = AddressTrie()
    private var destinations = AddressTrie()
    private var matchAll = Int32.max
    private var entries: [Entry] = []
    /// Whether any name index is in use (otherwise a lookup skips the name).
    private var hasNameIndexes = false

    /// Builds the index of `conditions`, each with its rule index (ascending) and `src` flag.
    init(_ conditions: [(index: Int32, condition: RuleCondition, matchSource: Bool)], program: RuleProgram) {
        for item in conditions {
            add(item.condition, index: item.index, matchSource: item.matchSource, program: program, topLevel: true)
        }
        keywords.finish()
        hasNameIndexes = !exact.isEmpty || !domains.isEmpty || !keywords.isEmpty
    }

    private mutating func add(
        _ c: RuleCondition, index: Int32, matchSource: Bool, program: RuleProgram, topLevel: Bool
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
        case .inboundPort, .processName, .processPath, .uid:
            break  // never match (yet): nothing to index
        case .ruleSet(let name):
            // Inside a provider RULE-SET never matches; a missing provider never matches.
            guard topLevel, let provider = program.providers[name] else { return }
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
                        rule.condition, index: index, matchSource: matchSource || rule.matchSource, program: program,
                        topLevel: false)
                }
            }
        case .domainRegex, .ipSuffix, .sourcePort, .destinationPort, .network, .and, .or, .not:
            entries.append(Entry(index: index, condition: c, matchSource: matchSource, insideProvider: !topLevel))
        }
    }

    private mutating func add(_ pattern: DomainPattern, index: Int32) {
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

    /// The lowest rule index at or above `from` that matches, `Int32.max` for none.
    ///
    /// - Precondition: no name, source or keyword index entry below `from` matches `input` (the
    ///   matcher only asks from a later index after a lookup from 0 found nothing earlier); those
    ///   indexes do not depend on the destination addresses, which are all that changes.
    func lowestMatch(_ input: MatchInput, from: Int32, _ evaluator: IndexedRuleMatcher) -> Int32 {
        var best = matchAll
        if hasNameIndexes, let host = input.host {
            if let hit = exact[host] { best = min(best, hit) }
            var host = host
            host.withUTF8 { bytes in
                let raw = UnsafeRawBufferPointer(bytes)
                if !domains.isEmpty { best = min(best, domains.lowestMatch(raw)) }
                if !keywords.isEmpty { best = min(best, keywords.lowestMatch(raw)) }
            }
        }
        if !sources.isEmpty { best = min(best, sources.lowestMatch(input.source)) }
        if !destinations.isEmpty {
            if let first = input.destinations.first {
                best = min(best, destinations.lowestMatch(first, from: from))
                for address in input.destinations.more {
                    best = min(best, destinations.lowestMatch(address, from: from))
                }
            }
        }
        // The rest, in rule order, only where they could still win.
        var i = from == 0 ? 0 : firstEntry(atOrAfter: from)
        while i < entries.count {
            let entry = entries[i]
            if entry.index >= best { break }
            if evaluator.evaluate(
                entry.condition, input, matchSource: entry.matchSource, insideProvider: entry.insideProvider)
            {
                best = entry.index
                break
            }
            i += 1
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

/// The indexed strategy: one `RuleIndex` over all rules, and the resolve-once rule for fake
/// destinations.
///
/// When a fake destination's name may be resolved, the first lookup runs without addresses. If
/// it finds a rule before the first resolving rule `r`, that is the answer (the resolver was
/// never reached). Otherwise nothing before `r` matched, so resolving is what mihomo does next:
/// the second lookup, from `r` on, tests the resolved addresses; only the destination trie and
/// the in-order list depend on them, and both honour `from`.
final class IndexedRuleMatcher: RuleMatching, ConditionEvaluating, @unchecked Sendable {
    let program: RuleProgram
    private let index: RuleIndex
    /// For each provider named by a RULE-SET inside a logical rule, its entries as a set (every entry under index 0),
    /// with and without `src`.
    private let nestedSets: [NestedKey: RuleIndex]

    private struct NestedKey: Hashable {
        var name: String
        var matchSource: Bool
    }

    init(_ program: RuleProgram) {
        self.program = program
        var conditions: [(index: Int32, condition: RuleCondition, matchSource: Bool)] = []
        conditions.reserveCapacity(program.rules.count)
        for (i, rule) in program.rules.enumerated() {
            conditions.append((Int32(i), rule.condition, rule.matchSource))
        }
        index = RuleIndex(conditions, program: program)

        // RULE-SETs nested in logical rules are answered by a set per provider.
        var nested: Set<NestedKey> = []
        func scan(_ c: RuleCondition, _ matchSource: Bool, nestedLevel: Bool) {
            switch c {
            case .and(let cs), .or(let cs): cs.forEach { scan($0, matchSource, nestedLevel: true) }
            case .not(let inner): scan(inner, matchSource, nestedLevel: true)
            case .ruleSet(let name) where nestedLevel: nested.insert(NestedKey(name: name, matchSource: matchSource))
            default: break
            }
        }
        for rule in program.rules { scan(rule.condition, rule.matchSource, nestedLevel: false) }
        var sets: [NestedKey: RuleIndex] = [:]
        for key in nested where program.providers[key.name] != nil {
            sets[key] = RuleIndex([(0, .ruleSet(key.name), key.matchSource)], program: program)
        }
        nestedSets = sets
    }

    func firstMatch(_ m: ConnectionMetadata, resolve: ((String) -> [IPAddress])?) -> Int? {
        var input = MatchInput(m)
        var best = index.lowestMatch(input, from: 0, self)
        let r = program.firstResolving
        if best >= r, r != .max, let resolve, m.destinationIsFake, let host = m.host, !host.isEmpty {
            input.destinations = DestinationAddresses(resolve(host))
            best = index.lowestMatch(input, from: r, self)
        }
        return best == .max ? nil : Int(best)
    }

    func ruleSetMatches(_ name: String, _ input: MatchInput, matchSource: Bool) -> Bool {
        guard let set = nestedSets[NestedKey(name: name, matchSource: matchSource)] else { return false }
        return set.lowestMatch(input, from: 0, self) != .max
    }
}
