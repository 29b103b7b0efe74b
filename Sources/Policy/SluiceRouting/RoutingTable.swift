import SluiceConfig
import SluiceOutbounds
import SluiceRules

/// What the router consults for each new flow: the rules, the outbounds by name, the groups and the sniff policy.
/// Immutable (the groups' choices live in ``ProxyGroups``); a reload swaps in a new one atomically
/// (``FlowRouter/install(_:)``).
package final class RoutingTable: Sendable {
    package let rules: RuleEngine
    package let outbounds: [String: any Outbound]
    /// `proxy-groups`; nil without any.
    package let groups: ProxyGroups?
    /// Names of `reject` proxies (a group member may name one).
    package let rejectNames: Set<String>
    /// `sniffer:`; nil when nothing is sniffed.
    package let sniffer: SniffPolicy?

    package init(
        rules: RuleEngine, outbounds: [String: any Outbound], groups: ProxyGroups? = nil, rejectNames: Set<String> = [],
        sniffer: SniffPolicy? = nil
    ) {
        self.rules = rules
        self.outbounds = outbounds
        self.groups = groups
        self.rejectNames = rejectNames
        self.sniffer = sniffer
    }

    /// The rules' decision with groups followed down to the proxy or built-in that carries
    /// the flow (`key`: the destination's name or address, for load balancing). The rule
    /// text keeps the group: `[MATCH → Proxy] ss1`.
    ///
    /// The route facts keep the rule as written and the chain of outbounds (mihomo's order: `["ss1", "Proxy"]`) for the
    /// connections list.
    package func settle(_ decision: RuleDecision, key: String, source: String) -> (RuleDecision, RouteFacts) {
        let reject = BuiltinTarget.reject.rawValue
        guard let groups, groups.contains(decision.target) else {
            let settled =
                rejectNames.contains(decision.target)
                ? RuleDecision(target: reject, rule: decision.rule, condition: decision.condition) : decision
            return (settled, RouteFacts(condition: decision.condition, chains: [decision.target]))
        }
        guard let path = groups.resolvePath(decision.target, key: key, source: source), let leaf = path.last else {
            return (
                RuleDecision(target: reject, rule: "\(decision.rule) → \(decision.target) (groups in a cycle)"),
                RouteFacts(condition: decision.condition)
            )
        }
        // Fail closed: an unavailable group and PASS (which sluice cannot continue matching from) reject; mihomo's
        // COMPATIBLE is DIRECT only where a group lists it.
        var target = rejectNames.contains(leaf) ? reject : leaf
        var rule = "\(decision.rule) → \(decision.target)"
        if let down = path.first(where: { groups.unavailable[$0] != nil }) {
            rule += " (group \(down) unavailable)"
        } else if leaf == BuiltinTarget.pass.rawValue {
            target = reject
            rule += " (PASS in a group is not supported)"
        } else if leaf == BuiltinTarget.compatible.rawValue {
            target = BuiltinTarget.direct.rawValue
        }
        return (
            RuleDecision(target: target, rule: rule, condition: decision.condition),
            RouteFacts(condition: decision.condition, chains: path.reversed())
        )
    }

    /// What a settled target means: a built-in's meaning, or the outbound of that name (nil: it names none).
    package func meaning(of target: String) -> TargetMeaning {
        switch BuiltinTarget(rawValue: target) {
        case .reject?: return .reject
        case .rejectDrop?: return .drop
        case .dns?: return .dnsHijack
        default: return outbounds[target].map { .outbound($0) } ?? .unknown
        }
    }

    /// Cached UDP routes are valid while this is unchanged (and the table is the same).
    package var groupGeneration: UInt64 { groups?.generation.load(ordering: .relaxed) ?? 0 }
}

/// What a rule's target stands for once groups are followed.
package enum TargetMeaning {
    case reject
    case drop
    /// Hijacked DNS: the router's DNS outbound (never in the outbounds by name).
    case dnsHijack
    case outbound(any Outbound)
    /// Names no proxy, group or built-in: fail closed, reject.
    case unknown
}
