import SluiceNet

/// A routing table entry, as dumped by `RTM_GETROUTE` or installed with `RTM_NEWROUTE`.
///
/// Only single-path routes are modelled. For a multipath route (`RTA_MULTIPATH`) the first next hop's gateway and
/// interface are reported, and installing one is not supported.
package struct Route: Sendable, Equatable, CustomStringConvertible {
    /// The route type (`rtm_type`, `RTN_*`). Routes of types not listed here (`RTN_NAT`, `RTN_XRESOLVE`, ...)
    /// are left out of dumps.
    package enum Kind: UInt8, Sendable {
        case unicast = 1
        case local = 2
        case broadcast = 3
        case anycast = 4
        case multicast = 5
        case blackhole = 6
        case unreachable = 7
        case prohibit = 8
        case throwRoute = 9
    }

    /// `proto 0x73` ('s'): the protocol number sluice installs its routes and rules with, so cleanup can tell
    /// them apart from everyone else's (iproute2 shows it as `proto 115` unless named in rt_protos).
    package static let sluiceProtocol: UInt8 = 0x73
    /// `RT_TABLE_MAIN`.
    package static let mainTable: UInt32 = 254
    /// `RT_SCOPE_UNIVERSE`, `RT_SCOPE_LINK`, `RT_SCOPE_HOST`.
    package static let scopeUniverse: UInt8 = 0
    package static let scopeLink: UInt8 = 253
    package static let scopeHost: UInt8 = 254

    /// `0.0.0.0/0` or `::/0` for a default route.
    package var destination: IPPrefix
    package var gateway: IPAddress?
    /// The output interface index (`RTA_OIF`).
    package var outputInterface: Int32?
    /// The table id (`RTA_TABLE`, which carries ids above 255); 254 is main.
    package var table: UInt32
    /// `RTA_PRIORITY`. Unset IPv6 routes get 1024 from the kernel, IPv4 routes 0.
    package var metric: UInt32?
    /// `RTA_PREFSRC`: the source address for locally generated traffic using this route.
    package var preferredSource: IPAddress?
    package var kind: Kind
    /// `rtm_scope`. The kernel keeps scopes for IPv4 only; IPv6 routes always read back as universe (0).
    package var scope: UInt8
    /// `rtm_protocol`: who installed the route (`RTPROT_BOOT` 3, `RTPROT_STATIC` 4, ``sluiceProtocol``).
    package var proto: UInt8

    /// A route; `scope` defaults as iproute2 chooses it: host for local routes, link for unicast routes without
    /// a gateway, universe otherwise.
    package init(
        destination: IPPrefix, gateway: IPAddress? = nil, outputInterface: Int32? = nil,
        table: UInt32 = Route.mainTable, metric: UInt32? = nil, preferredSource: IPAddress? = nil,
        kind: Kind = .unicast, scope: UInt8? = nil, proto: UInt8 = Route.sluiceProtocol
    ) {
        self.destination = destination
        self.gateway = gateway
        self.outputInterface = outputInterface
        self.table = table
        self.metric = metric
        self.preferredSource = preferredSource
        self.kind = kind
        self.proto = proto
        if let scope {
            self.scope = scope
        } else if kind == .local {
            self.scope = Route.scopeHost
        } else if kind == .unicast && gateway == nil {
            self.scope = Route.scopeLink
        } else {
            self.scope = Route.scopeUniverse
        }
    }

    /// The family of ``destination``.
    package var family: IPFamily { IPFamily(of: destination.address) }

    /// iproute2-like text, e.g. `10.9.0.0/16 via 10.1.2.1 dev 7 table 2022 metric 100`; used in error messages,
    /// which name interfaces by index because that is what the request carried. `proto` is shown only when it is
    /// not ``sluiceProtocol``.
    package var description: String {
        var text = kind == .unicast ? "" : "\(kind) "
        text += destination.description
        if let gateway { text += " via \(gateway)" }
        if let outputInterface { text += " dev \(outputInterface)" }
        text += " table \(Route.tableName(table))"
        if let metric { text += " metric \(metric)" }
        if let preferredSource { text += " src \(preferredSource)" }
        if proto != Route.sluiceProtocol { text += " proto \(proto)" }
        return text
    }

    /// `main`, `local`, `default` or the number.
    static func tableName(_ table: UInt32) -> String {
        switch table {
        case 254: "main"
        case 255: "local"
        case 253: "default"
        default: String(table)
        }
    }
}

extension Route.Kind: CustomStringConvertible {
    package var description: String {
        switch self {
        case .unicast: "unicast"
        case .local: "local"
        case .broadcast: "broadcast"
        case .anycast: "anycast"
        case .multicast: "multicast"
        case .blackhole: "blackhole"
        case .unreachable: "unreachable"
        case .prohibit: "prohibit"
        case .throwRoute: "throw"
        }
    }
}

// MARK: - Wire format

extension Route {
    /// Decodes the payload of `RTM_NEWROUTE` / `RTM_DELROUTE` (`struct rtmsg` + attributes). Returns nil for
    /// families other than IPv4/IPv6, unknown route types, cached clones (`RTM_F_CLONED`) and inconsistent
    /// prefixes; a malformed optional attribute just leaves its field nil.
    package init?(netlinkPayload payload: [UInt8]) {
        let bytes = NetlinkBytes(payload)
        guard payload.count >= NetlinkConstant.rtmsgSize, let familyByte = bytes.u8(at: 0),
            let family = IPFamily(netlinkValue: familyByte), let destinationLength = bytes.u8(at: 1),
            let tableByte = bytes.u8(at: 4), let proto = bytes.u8(at: 5), let scope = bytes.u8(at: 6),
            let typeByte = bytes.u8(at: 7), let kind = Kind(rawValue: typeByte), let flags = bytes.u32(at: 8),
            flags & NetlinkConstant.routeFlagCloned == 0
        else { return nil }
        let attributes = NetlinkAttributes(bytes, from: NetlinkConstant.rtmsgSize)
        func ofFamily(_ address: IPAddress?) -> IPAddress? {
            guard let address, IPFamily(of: address) == family else { return nil }
            return address
        }
        // A default route has no RTA_DST at all.
        let destinationAddress =
            ofFamily(attributes.address(NetlinkConstant.rtaDestination)) ?? family.anyPrefix.address
        guard let destination = IPPrefix(address: destinationAddress, length: Int(destinationLength)) else {
            return nil
        }
        var gateway = attributes.address(NetlinkConstant.rtaGateway)
        var outputInterface = attributes.u32(NetlinkConstant.rtaOutputInterface).map { Int32(bitPattern: $0) }
        if gateway == nil, outputInterface == nil, let multipath = attributes[NetlinkConstant.rtaMultipath] {
            // struct rtnexthop { u16 len; u8 flags; u8 hops; int ifindex; } followed by the hop's attributes.
            let hops = NetlinkBytes(multipath)
            if let length = hops.u16(at: 0), Int(length) >= 8, let index = hops.i32(at: 4),
                let hopAttributes = hops.slice(at: 8, count: Int(length) - 8)
            {
                outputInterface = index
                gateway = NetlinkAttributes(hopAttributes).address(NetlinkConstant.rtaGateway)
            }
        }
        self.init(
            destination: destination, gateway: ofFamily(gateway), outputInterface: outputInterface,
            // The 8-bit rtm_table says RT_TABLE_COMPAT for ids above 255; RTA_TABLE has the real id.
            table: attributes.u32(NetlinkConstant.rtaTable) ?? UInt32(tableByte),
            metric: attributes.u32(NetlinkConstant.rtaPriority),
            preferredSource: ofFamily(attributes.address(NetlinkConstant.rtaPreferredSource)), kind: kind,
            scope: scope, proto: proto)
    }

    /// The request that adds (`RTM_NEWROUTE`) or deletes (`RTM_DELROUTE`) this route.
    package func request(type: UInt16, flags: UInt16) -> NetlinkRequest {
        let isDelete = type == NetlinkConstant.deleteRoute
        var request = NetlinkRequest(type: type, flags: flags)
        request.appendRouteHeader(
            family: family.netlinkValue, destinationLength: destination.length, sourceLength: 0,
            table: table < 256 ? UInt8(table) : NetlinkConstant.tableUnspecified,
            // Deletes match any scope, as `ip route del` does: the scope we would compute for a route given
            // without one need not be the one the kernel stored.
            protocol: proto, scope: isDelete ? NetlinkConstant.scopeNowhere : scope, type: kind.rawValue, flags: 0)
        request.addAttribute(NetlinkConstant.rtaTable, integer: table)
        if destination.length > 0 {
            // IPv4 rejects host bits with EINVAL ("Invalid prefix for given prefix length"); send the network.
            request.addAttribute(NetlinkConstant.rtaDestination, address: destination.network.address)
        }
        if let gateway { request.addAttribute(NetlinkConstant.rtaGateway, address: gateway) }
        if let outputInterface {
            request.addAttribute(NetlinkConstant.rtaOutputInterface, integer: UInt32(bitPattern: outputInterface))
        }
        if let metric { request.addAttribute(NetlinkConstant.rtaPriority, integer: metric) }
        if let preferredSource { request.addAttribute(NetlinkConstant.rtaPreferredSource, address: preferredSource) }
        return request
    }
}
