/// The sets of `sub-rules:` as decoded, before SUB-RULEs are filled in with the sets they name.
struct SubRuleTable {
    /// Each set's rules, by name.
    var sets: [String: [LocatedRule]] = [:]
    /// Whether a cycle was found (an error); then nothing is filled in.
    var hasCycle = false
    /// Whether filling in every SUB-RULE would make the rules too large (an error).
    var tooLarge = false

    var scope: SubRuleScope { SubRuleScope(names: Set(sets.keys)) }
}

extension ConfigurationDecoder {
    /// How many rules SUB-RULEs may add in all, counting a set once for every SUB-RULE that names it. Real
    /// configurations have tens; sets that name each other many times over could multiply without bound.
    static let maximumExpandedSubRules = 100_000

    /// Decodes `sub-rules:`, a mapping of set names to lists of rules written as in `rules` (they may use SUB-RULE
    /// too), and refuses cycles, as mihomo does (`config.go`: `parseSubRules`, `verifySubRuleCircularReferences`).
    func decodeSubRules(
        _ node: YAMLNode, _ path: String, names: NameTable, providers: RuleProviderTable
    ) -> SubRuleTable {
        guard case .mapping(let pairs) = node.content else {
            if !node.isNull {
                context.error(
                    node.mark, path, "expected a mapping of sub-rule set names to lists of rules, got \(node.kindName)")
            }
            return SubRuleTable()
        }
        var table = SubRuleTable()
        var scope = SubRuleScope(insideSubRules: true)
        for pair in pairs {
            let name = pair.key.scalar?.value ?? ""
            if name.isEmpty {
                context.error(pair.key.mark, path, "a sub-rule set needs a name")
            } else {
                scope.names.insert(name)
            }
        }
        var order: [String] = []
        for pair in pairs {
            let name = pair.key.scalar?.value ?? ""
            guard !name.isEmpty else { continue }
            // An empty set is valid; a SUB-RULE naming it never matches.
            table.sets[name] =
                pair.value.isNull
                ? []
                : decodeRules(
                    pair.value, path.key(name), names: names, providers: providers, subRules: scope)
            order.append(name)
        }
        reportSubRuleCycles(&table, order: order)
        if !table.hasCycle {
            var sizes: [String: Int] = [:]
            var total = 0
            for name in order { total += expandedSize(name, table, &sizes) }
            if total > Self.maximumExpandedSubRules {
                table.tooLarge = true
                context.error(
                    node.mark, path,
                    "SUB-RULEs name these sets so many times over that they add up to \(total) rules (at most "
                        + "\(Self.maximumExpandedSubRules)); name each set from fewer places")
            }
        }
        return table
    }

    /// Parses `SUB-RULE,(CONDITION),NAME` (the fields split at top-level commas). The set stays empty until
    /// ``expandSubRules(_:table:)`` fills it in.
    func parseSubRule(
        _ text: String, _ fields: [String], names: NameTable, providers: RuleProviderTable, subRules: SubRuleScope,
        partOptions: inout LogicalPartOptions
    ) throws(RuleProblem) -> Rule? {
        let expected =
            "expected SUB-RULE,(CONDITION),NAME such as SUB-RULE,(NETWORK,udp),udp-rules, got "
            + DecodingContext.quote(text)
        // mihomo takes the last field as the name: an option after it would be the name, and not found.
        guard fields.count == 3, fields[1].hasPrefix("("), fields[1].hasSuffix(")"), fields[1].count >= 2,
            !fields[2].isEmpty
        else { throw .invalid(expected) }
        let conditions = try parseParts(
            "SUB-RULE", [String(fields[1].dropFirst().dropLast())], providers: providers, depth: 0,
            partOptions: &partOptions)
        guard conditions.count == 1 else { throw .invalid(expected) }
        let name = fields[2]
        guard subRules.names.contains(name) else {
            // mihomo accepts a SUB-RULE in `rules` naming a proxy or group (it looks the target up among proxies
            // first) and then never matches it; inside sub-rules it refuses it.
            if !subRules.insideSubRules, names.resolve(name) != .unknown {
                throw .skipped(
                    "SUB-RULE names \"\(name)\", a proxy or group, not a set of sub-rules; it never matches (in mihomo "
                        + "too); rule skipped")
            }
            throw .invalid("SUB-RULE: no sub-rule set named \"\(name)\"; define it under sub-rules")
        }
        var rule = Rule(condition: .subRule(conditions[0], name: name, rules: []), target: name)
        if partOptions.ruleIsNoResolve { rule.noResolve = true }
        return rule
    }

    /// The rules with every SUB-RULE holding the set it names (recursively). Nothing is filled in when the table
    /// has a cycle or is too large: the configuration has an error then and is not used.
    func expandSubRules(_ rules: [LocatedRule], table: SubRuleTable) -> [Rule] {
        guard !table.hasCycle, !table.tooLarge else { return rules.map(\.rule) }
        var expanded: [String: [Rule]] = [:]
        func fill(_ rule: Rule) -> Rule {
            guard case .subRule(let condition, let name, _) = rule.condition else { return rule }
            var copy = rule
            copy.condition = .subRule(condition, name: name, rules: rulesOf(name))
            return copy
        }
        func rulesOf(_ name: String) -> [Rule] {
            if let done = expanded[name] { return done }
            // A set named from several places is one array, shared (copy on write).
            let rules = (table.sets[name] ?? []).map { fill($0.rule) }
            expanded[name] = rules
            return rules
        }
        return rules.map { fill($0.rule) }
    }

    /// How many rules set `name` holds with every SUB-RULE in it filled in.
    private func expandedSize(_ name: String, _ table: SubRuleTable, _ sizes: inout [String: Int]) -> Int {
        if let size = sizes[name] { return size }
        var size = 0
        for entry in table.sets[name] ?? [] {
            size += 1
            if case .subRule(_, let inner, _) = entry.rule.condition {
                size += expandedSize(inner, table, &sizes)
            }
            if size > Self.maximumExpandedSubRules { break }
        }
        sizes[name] = size
        return size
    }

    /// Reports each cycle of sets naming each other once, at the SUB-RULE that closes it, as mihomo's
    /// `sub-rule error: circular references [a->b->a]`.
    private func reportSubRuleCycles(_ table: inout SubRuleTable, order: [String]) {
        var state: [String: Int] = [:]  // 1: on the stack, 2: done
        var stack: [String] = []
        var found = false
        func visit(_ name: String) {
            state[name] = 1
            stack.append(name)
            for entry in table.sets[name] ?? [] {
                guard case .subRule(_, let inner, _) = entry.rule.condition else { continue }
                if state[inner] == 1, let start = stack.firstIndex(of: inner) {
                    found = true
                    let cycle = (stack[start...] + [inner]).joined(separator: " -> ")
                    context.error(
                        entry.mark, entry.path,
                        "sub-rule sets name each other in a cycle: \(cycle); matching would never end, so remove one "
                            + "of these SUB-RULEs")
                } else if state[inner] == nil {
                    visit(inner)
                }
            }
            stack.removeLast()
            state[name] = 2
        }
        for name in order where state[name] == nil { visit(name) }
        table.hasCycle = found
    }
}
