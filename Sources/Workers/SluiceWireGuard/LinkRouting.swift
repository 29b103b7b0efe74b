import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Addresses, MTU, up and routes of one WireGuard link over rtnetlink, the way wg-quick sets them, idempotent:
/// applying twice changes nothing and leaves no duplicate routes.
package enum LinkRouting {
    /// The MTU wg-quick would choose when `mtu` is not set: the MTU of the default route's interface minus 80
    /// (IPv6 + UDP + WireGuard overhead), 1420 when there is no default route.
    package static func defaultMTU(netlink: RouteNetlink) -> UInt32 {
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
    /// - `table: auto`: each peer's allowed-ips in the main table, except a default route (`/0`), which goes to
    ///   the link's own table ``linkTable(for:)`` and is chosen by wg-quick's two rules (``rules(for:)``).
    /// - `table: N`: each peer's allowed-ips, default routes included, in table N.
    /// - `table: off`: none, except with `route-metric` a default route per address family of the link's
    ///   addresses at that metric, in the main table (the side-router guide's low-priority route) and in the
    ///   link's own table ``sourceTable(for:)``, which the source rules of ``rules(for:)`` point at.
    package static func routes(for link: WireGuardLink, interface index: Int32) -> [Route] {
        var out: [Route] = []
        func add(_ prefix: IPPrefix, table: UInt32) {
            let metric = link.routeMetric.map { UInt32(clamping: $0) }
            let route = Route(destination: prefix.network, outputInterface: index, table: table, metric: metric)
            if !out.contains(where: { $0.destination == route.destination && $0.table == route.table }) {
                out.append(route)
            }
        }
        switch link.table {
        case .auto:
            for peer in link.peers {
                for prefix in peer.allowedIPs {
                    add(prefix, table: prefix.length > 0 ? Route.mainTable : linkTable(for: link.name))
                }
            }
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
    package static let sourceRulePriority: UInt32 = 5180
    /// Priorities of wg-quick's default-route rules for `table: auto` with a `/0` allowed-ip: first
    /// `lookup main suppress_prefixlength 0` (the main table's specific routes still win), then
    /// `not fwmark MARK lookup TABLE` (everything but the link's own encrypted UDP goes into the link).
    package static let suppressRulePriority: UInt32 = 5190
    package static let defaultRulePriority: UInt32 = 5191

    /// The link's own routing table: a number derived from the link name (FNV-1a), so that it is the same across
    /// restarts and adoption, in 200000…299999 (clear of wg-quick's 51820 and of small hand-made tables). It holds a
    /// `table: off` link's metric default routes (for the source rules) or a `table: auto` link's default route.
    package static func linkTable(for name: String) -> UInt32 { sourceTable(for: name) }

    /// The routing table of a `table: off` link's source rules (``linkTable(for:)``).
    package static func sourceTable(for name: String) -> UInt32 {
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
    ///
    /// With `table: auto` and a `/0` allowed-ip, per family with a default route, wg-quick's pair: `lookup main
    /// suppress_prefixlength 0` and `not fwmark MARK lookup TABLE`, MARK being the link's fwmark (which its
    /// encrypted UDP carries, so the tunnel never routes into itself; ``defaultRouteMark(for:)``).
    package static func rules(for link: WireGuardLink) -> [RoutingRule] {
        if case .auto = link.table {
            let families = defaultRouteFamilies(of: link)
            guard !families.isEmpty, let mark = link.fwmark else { return [] }
            return families.flatMap { family in
                [
                    RoutingRule(
                        family: family, priority: suppressRulePriority, table: Route.mainTable, suppressPrefixLength: 0),
                    RoutingRule(
                        family: family, priority: defaultRulePriority, table: linkTable(for: link.name), fwmark: mark,
                        invert: true),
                ]
            }
        }
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

    /// The address families in which `link` (with `table: auto`) takes the default route.
    package static func defaultRouteFamilies(of link: WireGuardLink) -> [IPFamily] {
        guard case .auto = link.table else { return [] }
        let defaults = link.peers.flatMap(\.allowedIPs).filter { $0.length == 0 }
        return [IPFamily.v4, .v6].filter { family in
            defaults.contains { ($0.address.isIPv4 ? IPFamily.v4 : .v6) == family }
        }
    }

    /// The fwmark a link must put on its UDP: its own (`fwmark`, or `tun.routing-mark` as the keeper fills in),
    /// else, when it takes the default route with `table: auto`, the number of its table, as wg-quick does.
    package static func defaultRouteMark(for link: WireGuardLink) -> UInt32? {
        if let mark = link.fwmark { return mark }
        return defaultRouteFamilies(of: link).isEmpty ? nil : linkTable(for: link.name)
    }

    /// Removes sluice's rules of the link: those pointing at its table, and the `suppress_prefixlength 0` rule at
    /// ``suppressRulePriority`` (one link at most takes the default route per family; the config loader checks);
    /// all of them when `keeping` is empty.
    package static func removeRules(link name: String, keeping: [RoutingRule] = [], netlink: RouteNetlink)
        throws(SystemError)
    {
        let table = sourceTable(for: name)
        for family in [IPFamily.v4, .v6] {
            for rule in try netlink.rules(family: family)
            where (rule.table == table || (rule.priority == suppressRulePriority && rule.suppressPrefixLength == 0))
                && rule.proto == RoutingRule.sluiceProtocol
                && !keeping.contains(where: { $0.normalized == rule.normalized })
            {
                try netlink.deleteRule(rule)
            }
        }
    }

    /// Sets MTU, addresses (removing others, but not IPv6 link-local ones), up, and the routes of `link` on its
    /// interface (removing sluice's routes there that are no longer wanted). Returns the interface index.
    @discardableResult
    package static func apply(_ link: WireGuardLink, netlink: RouteNetlink) throws(SystemError) -> Int32 {
        guard let info = try netlink.link(named: link.name) else {
            throw SystemError("link \(link.name) not found", errno: ENODEV)
        }
        let index = info.index
        let mtu = link.mtu.map { UInt32($0) } ?? defaultMTU(netlink: netlink)
        try netlink.setLink(index: index, mtu: mtu)
        let present = try netlink.addresses(interface: index)
        for prefix in link.addresses where !present.contains(prefix) {
            try netlink.addAddress(prefix, interface: index)
        }
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

    /// wg-quick's `sysctl -q net.ipv4.conf.all.src_valid_mark=1` for a link taking the IPv4 default route: the
    /// reverse-path filter then looks the source up with the packet's mark, so that the link's own UDP coming back
    /// on the physical interface is not taken for spoofed (the unmarked lookup says: via the link). CAP_NET_ADMIN
    /// suffices for the network namespace's sysctls.
    package static func enableSourceValidMark() throws(SystemError) {
        let path = "/proc/sys/net/ipv4/conf/all/src_valid_mark"
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path)", errno: errno) }
        defer { close(fd) }
        guard write(fd, "1\n", 2) == 2 else { throw SystemError("write 1 to \(path)", errno: errno) }
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
