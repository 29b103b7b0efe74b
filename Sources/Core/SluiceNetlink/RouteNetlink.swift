import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// An rtnetlink client: reads and changes links, addresses, routes and policy rules through one `NETLINK_ROUTE`
/// socket, replacing `ip link`, `ip addr`, `ip route` and `ip rule`.
///
/// Every change is sent with `NLM_F_ACK` and waits for the kernel's answer, so when a method returns the change
/// is in effect. Failures throw ``SystemError`` whose text names the request and the object, e.g.
/// `RTM_NEWROUTE 0.0.0.0/0 dev 7 table 2022 proto 115: File exists (errno 17)`, with the kernel's own explanation
/// in parentheses when it gave one. Works with CAP_NET_ADMIN alone; reads need no privilege.
///
/// - Note: Not thread-safe: one request is in flight at a time and replies are matched by sequence number on a
///   shared buffer. Use one instance per thread, or guard it. The socket belongs to the network namespace of the
///   thread that called `init` (see ``NetworkNamespace``).
package final class RouteNetlink {
    private let socket: NetlinkSocket

    package init() throws(SystemError) {
        socket = try NetlinkSocket()
    }

    /// The socket's descriptor, for diagnostics. Owned by this object.
    package var descriptor: CInt { socket.descriptor.rawValue }

    // MARK: Links

    /// All interfaces (`RTM_GETLINK` dump).
    package func links() throws(SystemError) -> [LinkInfo] {
        var request = NetlinkRequest(
            type: NetlinkConstant.getLink, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagDump)
        request.appendInterfaceInfo(family: NetlinkConstant.familyUnspecified, index: 0, flags: 0, change: 0)
        return try socket.dump(request, operation: "RTM_GETLINK dump").compactMap {
            $0.type == NetlinkConstant.newLink ? LinkInfo(netlinkPayload: $0.payload) : nil
        }
    }

    /// The interface called `name`, or nil when there is none (or the name cannot be an interface name).
    package func link(named name: String) throws(SystemError) -> LinkInfo? {
        // IFNAMSIZ is 16 including the NUL; a longer name cannot exist and the kernel would say EINVAL.
        guard !name.isEmpty, name.utf8.count < 16, !name.utf8.contains(0) else { return nil }
        var request = NetlinkRequest(
            type: NetlinkConstant.getLink, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck)
        request.appendInterfaceInfo(family: NetlinkConstant.familyUnspecified, index: 0, flags: 0, change: 0)
        request.addAttribute(NetlinkConstant.iflaIfname, string: name)
        do throws(SystemError) {
            let reply = try socket.exchange(request, operation: "RTM_GETLINK \(name)")
            return reply.messages.lazy.compactMap { LinkInfo(netlinkPayload: $0.payload) }.first
        } catch  where error.errno == ENODEV {
            return nil
        }
    }

    /// The interface with index `index`, or nil when there is none.
    package func link(index: Int32) throws(SystemError) -> LinkInfo? {
        var request = NetlinkRequest(
            type: NetlinkConstant.getLink, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck)
        request.appendInterfaceInfo(family: NetlinkConstant.familyUnspecified, index: index, flags: 0, change: 0)
        do throws(SystemError) {
            let reply = try socket.exchange(request, operation: "RTM_GETLINK dev \(index)")
            return reply.messages.lazy.compactMap { LinkInfo(netlinkPayload: $0.payload) }.first
        } catch  where error.errno == ENODEV {
            return nil
        }
    }

    /// Brings the interface up or down and/or sets its MTU, in one `RTM_NEWLINK`; nil leaves a setting alone.
    package func setLink(index: Int32, up: Bool? = nil, mtu: UInt32? = nil) throws(SystemError) {
        guard up != nil || mtu != nil else { return }
        var request = NetlinkRequest(
            type: NetlinkConstant.newLink, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck)
        // ifi_change selects the flag bits to change. Kernel quirk: ifi_change 0 with nonzero ifi_flags means
        // "replace all flags", so flags are only ever sent together with a change mask.
        let change = up == nil ? 0 : NetlinkConstant.interfaceUp
        let flags = up == true ? NetlinkConstant.interfaceUp : 0
        request.appendInterfaceInfo(
            family: NetlinkConstant.familyUnspecified, index: index, flags: flags, change: change)
        if let mtu { request.addAttribute(NetlinkConstant.iflaMTU, integer: mtu) }
        var what = "RTM_NEWLINK dev \(index)"
        if let up { what += up ? " up" : " down" }
        if let mtu { what += " mtu \(mtu)" }
        _ = try socket.exchange(request, operation: what)
    }

    /// Creates a virtual interface of type `kind`, down, like `ip link add NAME type KIND`: `RTM_NEWLINK` with
    /// `NLM_F_CREATE | NLM_F_EXCL`, `IFLA_IFNAME` and `IFLA_LINKINFO { IFLA_INFO_KIND }`, and nothing else, so only
    /// kinds that need no further settings work (wireguard, bridge, ifb, dummy; veth makes up a peer name).
    ///
    /// - Throws: EEXIST when an interface called `name` exists, whatever its kind (EXCL: an existing device is never
    ///   adopted by accident); EOPNOTSUPP, with the kernel's "Unknown device type", when this kernel has no such link
    ///   type (the kernel has already tried to load the module, `rtnl-link-KIND`); EINVAL for a name that cannot be an
    ///   interface name.
    package func addLink(name: String, kind: String) throws(SystemError) {
        let what = "RTM_NEWLINK \(name) type \(kind)"
        // IFNAMSIZ is 16 including the NUL.
        guard !name.isEmpty, name.utf8.count < 16, !name.utf8.contains(0), !kind.isEmpty, !kind.utf8.contains(0) else {
            throw SystemError("\(what): not an interface name and link kind", errno: EINVAL)
        }
        var request = NetlinkRequest(
            type: NetlinkConstant.newLink,
            flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck | NetlinkConstant.flagCreate
                | NetlinkConstant.flagExclusive)
        request.appendInterfaceInfo(family: NetlinkConstant.familyUnspecified, index: 0, flags: 0, change: 0)
        request.addAttribute(NetlinkConstant.iflaIfname, string: name)
        let linkInfo = request.beginNested(NetlinkConstant.iflaLinkinfo)
        request.addAttribute(NetlinkConstant.iflaInfoKind, string: kind)
        request.endNested(linkInfo)
        _ = try socket.exchange(request, operation: what)
    }

    /// Deletes the interface (a TUN, veth or other virtual device). An interface that is already gone counts as
    /// deleted.
    package func deleteLink(index: Int32) throws(SystemError) {
        var request = NetlinkRequest(
            type: NetlinkConstant.deleteLink, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck)
        request.appendInterfaceInfo(family: NetlinkConstant.familyUnspecified, index: index, flags: 0, change: 0)
        do throws(SystemError) {
            _ = try socket.exchange(request, operation: "RTM_DELLINK dev \(index)")
        } catch  where error.errno == ENODEV {
            return
        }
    }

    // MARK: Addresses

    /// The addresses on interface `index`, IPv4 and IPv6 (including IPv6 link-local ones), with prefix lengths.
    package func addresses(interface index: Int32) throws(SystemError) -> [IPPrefix] {
        var request = NetlinkRequest(
            type: NetlinkConstant.getAddress, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagDump)
        request.appendInterfaceAddress(
            family: NetlinkConstant.familyUnspecified, prefixLength: 0, flags: 0, scope: 0, index: 0)
        // Without NETLINK_GET_STRICT_CHK the kernel ignores ifa_index in a dump request; filter here.
        return try socket.dump(request, operation: "RTM_GETADDR dump").compactMap { message in
            guard message.type == NetlinkConstant.newAddress,
                let address = InterfaceAddress(netlinkPayload: message.payload), address.interface == index
            else { return nil }
            return address.prefix
        }
    }

    /// Adds `prefix` (e.g. `172.19.0.1/30`) to interface `index`. Already present with the same prefix length
    /// counts as success; present with another length throws EEXIST.
    package func addAddress(_ prefix: IPPrefix, interface index: Int32) throws(SystemError) {
        let what = "RTM_NEWADDR \(prefix) dev \(index)"
        let request = addressRequest(
            prefix, interface: index, type: NetlinkConstant.newAddress,
            flags: NetlinkConstant.flagCreate | NetlinkConstant.flagExclusive)
        do throws(SystemError) {
            _ = try socket.exchange(request, operation: what)
        } catch  where error.errno == EEXIST {
            // IPv6 says EEXIST for the same address with any prefix length; IPv4 only for the same length.
            // Check what is there before calling it done.
            if try addresses(interface: index).contains(prefix) { return }
            throw SystemError("\(what): address present with another prefix length", errno: EEXIST)
        }
    }

    /// Removes `prefix` from interface `index`. An address (or interface) that is not there counts as removed.
    package func deleteAddress(_ prefix: IPPrefix, interface index: Int32) throws(SystemError) {
        let request = addressRequest(prefix, interface: index, type: NetlinkConstant.deleteAddress, flags: 0)
        do throws(SystemError) {
            _ = try socket.exchange(request, operation: "RTM_DELADDR \(prefix) dev \(index)")
        } catch  where error.errno == EADDRNOTAVAIL || error.errno == ENODEV {
            return
        }
    }

    private func addressRequest(_ prefix: IPPrefix, interface index: Int32, type: UInt16, flags: UInt16)
        -> NetlinkRequest
    {
        var request = NetlinkRequest(
            type: type, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck | flags)
        request.appendInterfaceAddress(
            family: prefix.address.netlinkFamily, prefixLength: prefix.length, flags: 0, scope: 0, index: index)
        // Like iproute2 without `peer`: IFA_LOCAL is the interface's address, IFA_ADDRESS the same value.
        request.addAttribute(NetlinkConstant.ifaLocal, address: prefix.address)
        request.addAttribute(NetlinkConstant.ifaAddress, address: prefix.address)
        return request
    }

    // MARK: Routes

    /// The routes of `family`, from all tables or only `table` (`RTM_GETROUTE` dump). The kernel dumps every
    /// table regardless of the request, so the filter is applied here on `RTA_TABLE`. Cached clones and route
    /// types outside ``Route/Kind`` are left out.
    package func routes(family: IPFamily, table: UInt32? = nil) throws(SystemError) -> [Route] {
        var request = NetlinkRequest(
            type: NetlinkConstant.getRoute, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagDump)
        request.appendRouteHeader(
            family: family.netlinkValue, destinationLength: 0, sourceLength: 0, table: 0, protocol: 0, scope: 0,
            type: 0, flags: 0)
        let operation = "RTM_GETROUTE \(family) dump"
        return try socket.dump(request, operation: operation).compactMap { message in
            guard message.type == NetlinkConstant.newRoute, let route = Route(netlinkPayload: message.payload),
                route.family == family, table == nil || route.table == table
            else { return nil }
            return route
        }
    }

    /// Installs `route` (`NLM_F_CREATE | NLM_F_EXCL`): an existing route with the same key throws EEXIST. With
    /// `replace` it overwrites one instead (`NLM_F_REPLACE`, like `ip route replace`).
    package func addRoute(_ route: Route, replace: Bool = false) throws(SystemError) {
        let flags =
            NetlinkConstant.flagRequest | NetlinkConstant.flagAck | NetlinkConstant.flagCreate
            | (replace ? NetlinkConstant.flagReplace : NetlinkConstant.flagExclusive)
        _ = try socket.exchange(
            route.request(type: NetlinkConstant.newRoute, flags: flags), operation: "RTM_NEWROUTE \(route)")
    }

    /// Removes `route`, matched on destination, table, type and protocol, plus gateway, interface and metric when
    /// they are set. A route that is not there (ESRCH) counts as removed.
    package func deleteRoute(_ route: Route) throws(SystemError) {
        let request = route.request(
            type: NetlinkConstant.deleteRoute, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck)
        do throws(SystemError) {
            _ = try socket.exchange(request, operation: "RTM_DELROUTE \(route)")
        } catch  where error.errno == ESRCH {
            return
        }
    }

    /// The main table's unicast default route with the lowest metric (what the host's own traffic would use):
    /// its interface index, gateway and metric. Nil when there is no default route.
    package func defaultRoute(family: IPFamily) throws(SystemError) -> Route? {
        try routes(family: family, table: Route.mainTable)
            .filter { $0.destination.length == 0 && $0.kind == .unicast }
            .min { ($0.metric ?? 0) < ($1.metric ?? 0) }
    }

    // MARK: Rules

    /// The policy rules of `family` in priority order (`RTM_GETRULE` dump), including the kernel's defaults
    /// (`local`, `main`, `default`).
    package func rules(family: IPFamily) throws(SystemError) -> [RoutingRule] {
        var request = NetlinkRequest(
            type: NetlinkConstant.getRule, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagDump)
        request.appendRouteHeader(
            family: family.netlinkValue, destinationLength: 0, sourceLength: 0, table: 0, protocol: 0, scope: 0,
            type: 0, flags: 0)
        return try socket.dump(request, operation: "RTM_GETRULE \(family) dump").compactMap { message in
            guard message.type == NetlinkConstant.newRule,
                let rule = RoutingRule(netlinkPayload: message.payload), rule.family == family
            else { return nil }
            return rule
        }
    }

    /// Installs `rule`. An identical rule already present counts as success: the request carries
    /// `NLM_F_CREATE | NLM_F_EXCL`, with which the kernel refuses exact duplicates with EEXIST (without EXCL it
    /// would silently add a second copy).
    package func addRule(_ rule: RoutingRule) throws(SystemError) {
        let request = rule.request(
            type: NetlinkConstant.newRule,
            flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck | NetlinkConstant.flagCreate
                | NetlinkConstant.flagExclusive)
        do throws(SystemError) {
            _ = try socket.exchange(request, operation: "RTM_NEWRULE \(rule)")
        } catch  where error.errno == EEXIST {
            return
        }
    }

    /// Removes `rule`, matched on every selector it sets. A rule that is not there (ENOENT) counts as removed.
    package func deleteRule(_ rule: RoutingRule) throws(SystemError) {
        let request = rule.request(
            type: NetlinkConstant.deleteRule, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck)
        do throws(SystemError) {
            _ = try socket.exchange(request, operation: "RTM_DELRULE \(rule)")
        } catch  where error.errno == ENOENT {
            return
        }
    }
}

@available(*, unavailable, message: "RouteNetlink is not thread-safe; use one per thread")
extension RouteNetlink: Sendable {}
