import Logging
import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluiceRouting
import SluiceSystem

/// `auto-route`: the policy rules and the routing table that send the host's (and, as a
/// gateway, the LAN's) traffic into the TUN, while sluice's own sockets go around it.
///
/// For each family the TUN has an address in, with P = `iproute2-rule-index` and
/// T = `iproute2-table-index`:
///
/// | pref | rule | why |
/// |---|---|---|
/// | P | `fwmark <routing-mark> lookup main` | our own outbound sockets (SO_MARK) never loop into the TUN |
/// | P | `fwmark <link mark> lookup main` | a WireGuard link's encrypted UDP (its `fwmark` when it differs from `routing-mark`; links without one use `routing-mark`) |
/// | P | `uidrange <service uid> lookup main` | the workers' own traffic without a mark (the dns worker's upstream queries); only when they run as a dedicated user |
/// | P+1 | `to <route-exclude-address> lookup main` (one per prefix) | what the user keeps out |
/// | P+2 | `lookup main suppress_prefixlength 0` | connected and LAN routes win; only main's default route is overridden |
/// | P+3 | `lookup T` | the rest goes to table T: `default dev TUN`, or only `route-address` prefixes |
///
/// Everything is installed with our rtnetlink protocol number and removed again by
/// priority and table, so a run that crashed leaves nothing a restart would duplicate:
/// ``install()`` first deletes whatever a previous run left, and ``remove()`` restores
/// the rule list and table exactly.
final class AutoRoute {
    let config: TunConfiguration
    let interfaceIndex: Int32
    let families: [IPFamily]
    private let logger: Logger

    /// The dedicated service user the workers run as, if any.
    let serviceUID: UInt32?
    /// WireGuard links' fwmarks other than `routing-mark` (``SluiceConfiguration/wireguardBypassMarks``).
    let bypassMarks: [UInt32]

    init(
        config: TunConfiguration, interfaceIndex: Int32, serviceUID: UInt32? = nil, bypassMarks: [UInt32] = [],
        logger: Logger
    ) {
        self.config = config
        self.bypassMarks = bypassMarks.filter { $0 != 0 && $0 != config.routingMark }
        self.serviceUID = serviceUID
        self.interfaceIndex = interfaceIndex
        var families: [IPFamily] = []
        if !config.inet4Address.isEmpty { families.append(.v4) }
        if !config.inet6Address.isEmpty { families.append(.v6) }
        self.families = families
        self.logger = logger
    }

    var table: UInt32 { UInt32(config.iproute2TableIndex) }
    var basePriority: UInt32 { UInt32(config.iproute2RuleIndex) }

    /// The rules this configuration installs, in order.
    func rules(for family: IPFamily) -> [RoutingRule] {
        let p = basePriority
        var rules: [RoutingRule] = []
        if config.routingMark != 0 {
            rules.append(
                RoutingRule(
                    family: family, priority: p, table: Route.mainTable, fwmark: config.routingMark, fwmask: UInt32.max)
            )
        }
        for mark in bypassMarks {
            rules.append(
                RoutingRule(family: family, priority: p, table: Route.mainTable, fwmark: mark, fwmask: UInt32.max))
        }
        if let uid = serviceUID {
            rules.append(RoutingRule(family: family, priority: p, table: Route.mainTable, uidRange: uid...uid))
        }
        for prefix in config.routeExcludeAddress where IPFamily(of: prefix.address) == family {
            rules.append(
                RoutingRule(family: family, priority: p + 1, table: Route.mainTable, destination: prefix.network))
        }
        rules.append(RoutingRule(family: family, priority: p + 2, table: Route.mainTable, suppressPrefixLength: 0))
        rules.append(RoutingRule(family: family, priority: p + 3, table: table))
        return rules
    }

    /// The routes of table T.
    func routes(for family: IPFamily) -> [Route] {
        let selected = config.routeAddress.filter { IPFamily(of: $0.address) == family }
        let destinations =
            selected.isEmpty
            ? [family == .v4 ? IPPrefix("0.0.0.0/0")! : IPPrefix("::/0")!]
            : selected.map(\.network)
        return destinations.map { Route(destination: $0, outputInterface: interfaceIndex, table: table) }
    }

    /// Removes leftovers, then installs the rules and routes.
    func install(_ netlink: RouteNetlink) throws(SystemError) {
        remove(netlink)
        for family in families {
            for route in routes(for: family) { try netlink.addRoute(route, replace: true) }
            for rule in rules(for: family) { try netlink.addRule(rule) }
        }
        logger.info(
            "auto-route: rules \(basePriority)...\(basePriority + 3) and table \(table) installed (\(families.map(\.description).joined(separator: ", ")))"
        )
    }

    /// Deletes every rule in our priority range and every route in table T (ours or left
    /// by an earlier run). Errors are logged, not thrown: cleanup must go as far as it can.
    func remove(_ netlink: RouteNetlink) {
        for family in [IPFamily.v4, .v6] {
            do {
                for rule in try netlink.rules(family: family)
                where rule.priority >= basePriority && rule.priority <= basePriority + 3 {
                    try netlink.deleteRule(rule)
                }
                for route in try netlink.routes(family: family, table: table) {
                    try netlink.deleteRoute(route)
                }
            } catch {
                logger.warning("auto-route cleanup (\(family)): \(error)")
            }
        }
    }
}
