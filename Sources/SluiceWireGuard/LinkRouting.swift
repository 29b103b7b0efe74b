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
    ///   addresses in the main table at that metric (the side-router guide's low-priority route).
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
            if link.addresses.contains(where: { $0.address.isIPv4 }) { add(IPPrefix("0.0.0.0/0")!, table: Route.mainTable) }
            if link.addresses.contains(where: { !$0.address.isIPv4 }) { add(IPPrefix("::/0")!, table: Route.mainTable) }
        }
        return out
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
