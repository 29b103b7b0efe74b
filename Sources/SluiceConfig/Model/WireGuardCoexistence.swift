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
