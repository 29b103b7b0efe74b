import SluiceNet

/// How WireGuard links and the TUN's `auto-route` stay out of each other's way (issue 7).
///
/// A link's encrypted UDP must never be routed into sluice's own TUN (it would loop: the tunnel's packets
/// would be proxied, possibly through the tunnel). wireguard-go puts the link's `fwmark` on its UDP sockets
/// (UAPI `fwmark=`), and auto-route sends that mark to the main table at priority P, before the TUN's table.
/// A link without `fwmark` gets `tun.routing-mark` (default 0x2d0), the mark auto-route's first rule already
/// covers; a link with another mark gets its own `fwmark <mark> lookup main` rule at P.
extension SluiceConfiguration {
    /// The fwmark wireguard-go puts on `link`'s UDP: its `fwmark`, else `tun.routing-mark`; nil when both are 0.
    public func effectiveFwmark(of link: WireGuardLink) -> UInt32? {
        let mark = link.fwmark ?? tun.routingMark
        return mark == 0 ? nil : mark
    }

    /// The links' marks that auto-route must send to the main table besides `tun.routing-mark`, sorted, unique.
    public var wireguardBypassMarks: [UInt32] {
        Set(wireguard.compactMap { effectiveFwmark(of: $0) }).subtracting([tun.routingMark]).sorted()
    }
}

extension SluiceConfiguration {
    /// The host names of the links' peer endpoints, lowercased. The dns worker answers them with real addresses even
    /// in fake-IP mode: the keepalive worker resolves them through the system resolver, which may be sluice itself,
    /// and a fake address would send the tunnel's own UDP nowhere.
    public var wireguardEndpointNames: [String] {
        var names: [String] = []
        for link in wireguard {
            for peer in link.peers {
                guard case .name(let host)? = peer.endpoint?.host else { continue }
                let name = host.lowercased()
                if !names.contains(name) { names.append(name) }
            }
        }
        return names
    }

    /// Rules the tun worker puts in front of the user's: UDP to a link's peer endpoint goes DIRECT, so that
    /// WireGuard traffic the TUN sees anyway (a WireGuard client on a LAN device using this side router, or a link
    /// whose mark was changed) is never proxied. An address endpoint matches by address and port; a name endpoint by
    /// name and port (where the flow carries the name: redir-host, or the DNS mapping).
    public var wireguardEndpointRules: [Rule] {
        var rules: [Rule] = []
        for link in wireguard {
            for peer in link.peers {
                guard let endpoint = peer.endpoint else { continue }
                let destination: RuleCondition =
                    switch endpoint.host {
                    case .address(let address): .ipCIDR(IPPrefix(host: address))
                    case .name(let host): .domain(host.lowercased())
                    }
                let rule = Rule(
                    condition: .and([
                        destination, .network(.udp), .destinationPort([PortRange(endpoint.port, endpoint.port)]),
                    ]),
                    target: BuiltinTarget.direct.rawValue, noResolve: true)
                if !rules.contains(rule) { rules.append(rule) }
            }
        }
        return rules
    }
}
