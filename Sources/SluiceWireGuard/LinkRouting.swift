import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluiceSystem

#if canImport(Glibc)
    import Glibc
#endif

/// Addresses, MTU, up and routes of one WireGuard link over rtnetlink, the way wg-quick sets them, idempotent:
/// applying twice changes nothing and leaves no duplicate routes.
public enum LinkRouting {
    /// The MTU wg-quick would choose when `mtu` is not set: the MTU of the default route's interface minus 80
    /// (IPv6 + UDP + WireGuard overhead), 1420 when there is no default route.
    public static func defaultMTU(netlink: RouteNetlink) -> UInt32 {
        var best: UInt32 = 0
        for family in [IPFamily.v4, .v6] {
            guard let route = try? netlink.defaultRoute(family: family), let index = route.outputInterface,
                let link = try? netlink.link(index: index)
            else { continue }
            best = max(best, link.mtu)
        }
        return best > 80 ? best - 80 : 1420
    }

    /// The routes `link` wants on interface `index` (pure).
    ///
    /// - `table: auto`: each peer's allowed-ips in the main table; a default route (`/0`) is left out, as
    ///   wg-quick's fwmark policy routing for it is not done yet.
    /// - `table: N`: each peer's allowed-ips, default routes included, in table N.
    /// - `table: off`: none, except with `route-metric` a default route per address family of the link's
    ///   addresses at that metric, in the main table (the side-router guide's low-priority route) and in the
    ///   link's own table ``sourceTable(for:)``, which the source rules of ``rules(for:)`` point at.
    public static func routes(for link: WireGuardLink, interface index: Int32) -> [Route] {
        var out: [Route] = []
        func add(_ prefix: IPPrefix, table: UInt32) {
            let metric = link.routeMetric.map { UInt32(clamping: $0) }
            let route = Route(destination: prefix.network, outputInterface: index, table: table, metric: metric)
            if !out.contains(where: { $0.destination == route.destination && $0.table == route.table }) { out.append(route) }
        }
        switch link.table {
        case .auto:
            for peer in link.peers { for prefix in peer.allowedIPs where prefix.length > 0 { add(prefix, table: Route.mainTable) } }
        case .id(let table):
            for peer in link.peers { for prefix in peer.allowedIPs { add(prefix, table: table) } }
        case .off:
            guard link.routeMetric != nil else { break }
            for table in [Route.mainTable, sourceTable(for: link.name)] {
                if link.addresses.contains(where: { $0.address.isIPv4 }) { add(IPPrefix("0.0.0.0/0")!, table: table) }
                if link.addresses.contains(where: { !$0.address.isIPv4 }) { add(IPPrefix("::/0")!, table: table) }
            }
        }
        return out
    }

    /// Priority of the source rules (before `main` at 32766 and before the TUN worker's auto-route rules).
    public static let sourceRulePriority: UInt32 = 5180

    /// The routing table of a `table: off` link's source rules: a number derived from the link name (FNV-1a), so
    /// that it is the same across restarts and adoption, in 200000…299999 (clear of wg-quick's 51820 and of
    /// small hand-made tables).
    public static func sourceTable(for name: String) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in name.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return 200_000 + hash % 100_000
    }

    /// The policy rules `link` wants (pure): with `table: off` and `route-metric`, `from ADDRESS lookup TABLE` per
    /// link address, so that replies to connections that came in through the link from peer-side addresses
    /// outside the link's subnet leave through the link rather than by the main table's default route.
    public static func rules(for link: WireGuardLink) -> [RoutingRule] {
        guard case .off = link.table, link.routeMetric != nil else { return [] }
        let table = sourceTable(for: link.name)
        var out: [RoutingRule] = []
        for prefix in link.addresses {
            let rule = RoutingRule(
                family: prefix.address.isIPv4 ? .v4 : .v6, priority: sourceRulePriority, table: table,
                source: IPPrefix(host: prefix.address))
            if !out.contains(rule) { out.append(rule) }
        }
        return out
    }

    /// Removes sluice's rules pointing at the link's source table (all of them when `keeping` is empty).
    public static func removeRules(link name: String, keeping: [RoutingRule] = [], netlink: RouteNetlink) throws(SystemError) {
        let table = sourceTable(for: name)
        for family in [IPFamily.v4, .v6] {
            for rule in try netlink.rules(family: family)
            where rule.table == table && rule.proto == RoutingRule.sluiceProtocol
                && !keeping.contains(where: { $0.normalized == rule.normalized })
            {
                try netlink.deleteRule(rule)
            }
        }
    }

    /// Sets MTU, addresses (removing others, but not IPv6 link-local ones), up, and the routes of `link` on its
    /// interface (removing sluice's routes there that are no longer wanted). Returns the interface index.
    @discardableResult
    public static func apply(_ link: WireGuardLink, netlink: RouteNetlink) throws(SystemError) -> Int32 {
        guard let info = try netlink.link(named: link.name) else {
            throw SystemError("link \(link.name) not found", errno: ENODEV)
        }
        let index = info.index
        let mtu = link.mtu.map { UInt32($0) } ?? defaultMTU(netlink: netlink)
        try netlink.setLink(index: index, mtu: mtu)
        let present = try netlink.addresses(interface: index)
        for prefix in link.addresses where !present.contains(prefix) { try netlink.addAddress(prefix, interface: index) }
        for prefix in present where !link.addresses.contains(prefix) && !isLinkLocal(prefix.address) {
            try netlink.deleteAddress(prefix, interface: index)
        }
        try netlink.setLink(index: index, up: true)
        let wanted = routes(for: link, interface: index)
        for route in wanted { try netlink.addRoute(route, replace: true) }
        for family in [IPFamily.v4, .v6] {
            for route in try netlink.routes(family: family)
            where route.outputInterface == index && route.proto == Route.sluiceProtocol
                && !wanted.contains(where: { same($0, route) })
            {
                try netlink.deleteRoute(route)
            }
        }
        let wantedRules = rules(for: link)
        for rule in wantedRules { try netlink.addRule(rule) }
        try removeRules(link: link.name, keeping: wantedRules, netlink: netlink)
        return index
    }

    static func same(_ a: Route, _ b: Route) -> Bool {
        func metric(_ r: Route) -> UInt32 { r.metric ?? (r.family == .v6 ? 1024 : 0) }
        return a.destination == b.destination && a.table == b.table && metric(a) == metric(b)
    }

    static func isLinkLocal(_ address: IPAddress) -> Bool {
        guard case .v6 = address else { return false }
        return IPPrefix("fe80::/10")!.contains(address)
    }
}
