import Logging
import SluiceConfig
import SluiceOutbounds
import SluiceRules

extension RoutingTable {
    /// The table for `configuration`: outbounds by name (DIRECT and every proxy of a registered protocol:
    /// ``OutboundRegistry``; `reject` proxies resolve to REJECT), the rules (WireGuard endpoints first), the groups
    /// (kept from `previous` when unchanged, with their choices and health) and the sniff policy.
    package static func make(
        _ configuration: SluiceConfiguration, egress: EgressPolicy, resolver: NameResolver,
        previous: RoutingTable? = nil,
        stateDirectory: String? = nil, logger: Logger
    ) -> RoutingTable {
        let outbounds = OutboundRegistry.outbounds(
            for: configuration, context: OutboundContext(egress: egress, resolver: resolver), logger: logger)
        // A link's peer endpoint goes DIRECT before any user rule (issue 7: the tunnel never loops into a proxy).
        var rules = configuration.wireguardEndpointRules + configuration.rules
        let rejectNames = Set(configuration.proxies.filter(\.isReject).map(\.name))
        for i in rules.indices where rejectNames.contains(rules[i].target) {
            rules[i].target = BuiltinTarget.reject.rawValue
        }
        // Groups keep their state (choices, health) across a reload that leaves them alone.
        // Every configuration has mihomo's GLOBAL group: `mode: global` routes through it, and the API selects in it.
        let groupConfigurations = configuration.proxyGroupsWithGlobal
        let groups: ProxyGroups
        if let old = previous?.groups, old.configuration == groupConfigurations {
            groups = old
        } else {
            let store = configuration.profile.storeSelected ? stateDirectory.map { "\($0)/selected.json" } : nil
            groups = ProxyGroups(groupConfigurations, storePath: store, logger: logger)
        }
        var mode = configuration.mode
        if mode == .global {
            // Everything to GLOBAL, except what must never loop into a proxy (WireGuard peers' endpoints).
            rules =
                configuration.wireguardEndpointRules + [
                    Rule(condition: .match, target: SluiceConfiguration.globalGroupName)
                ]
            mode = .rule
        }
        let engine = RuleEngine(rules: rules, providers: configuration.ruleProviders, mode: mode)
        if !engine.unsupportedKinds.isEmpty {
            logger.warning(
                "rules of kind \(engine.unsupportedKinds.sorted().joined(separator: ", ")) never match yet (they need the rule engine of a later release)"
            )
        }
        return RoutingTable(
            rules: engine, outbounds: outbounds, groups: groups, rejectNames: rejectNames,
            sniffer: SniffPolicy(configuration.sniffer))
    }
}
