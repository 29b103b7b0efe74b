import SluiceConfig
import SluiceNet

/// The reference matcher: every rule in order, every provider entry in order, nothing
/// precomputed beyond normalised payloads and compiled regexes. Its answers define what the
/// indexed matcher must answer; tests hold the two equal and the benchmark compares their speed.
struct LinearRuleMatcher: RuleMatching, ConditionEvaluating, @unchecked Sendable {
    let program: RuleProgram

    init(_ program: RuleProgram) {
        self.program = program
    }

    func firstMatch(_ m: ConnectionMetadata, resolve: ((String) -> [IPAddress])?) -> RuleMatch? {
        var input = MatchInput(m)
        var resolver = resolve
        if !m.destinationIsFake || (m.host ?? "").isEmpty { resolver = nil }
        for (index, rule) in program.rules.enumerated() {
            if let resolve = resolver, program.resolves[index] {
                // mihomo resolves once, when the first such rule is reached; later IP rules see the answer too.
                input.destinations = DestinationAddresses(resolve(m.host!))
                resolver = nil
            }
            if evaluate(rule.condition, input, matchSource: rule.matchSource) {
                return RuleMatch(index: index, path: subRulePath(rule, input))
            }
        }
        return nil
    }

    func ruleSetMatches(_ name: String, _ input: MatchInput, matchSource: Bool) -> Bool {
        guard let provider = program.providers[name] else { return false }
        switch provider.contents {
        case .domain(let patterns):
            guard let host = input.host else { return false }
            return patterns.contains { DomainMatch.matches($0, host) }
        case .ipcidr(let prefixes):
            if matchSource { return prefixes.contains { $0.contains(input.source) } }
            return prefixes.contains { prefix in input.destinations.contains { prefix.contains($0) } }
        case .classical(let entries):
            return entries.contains {
                evaluate($0.condition, input, matchSource: matchSource || $0.matchSource, insideProvider: true)
            }
        }
    }
}
