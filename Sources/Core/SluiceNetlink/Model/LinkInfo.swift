/// A network interface as rtnetlink reports it (`RTM_NEWLINK`): the fields the TUN worker acts on.
package struct LinkInfo: Sendable, Equatable, CustomStringConvertible {
    /// The interface index (`ifi_index`), stable for the interface's lifetime.
    package var index: Int32
    /// The interface name (`IFLA_IFNAME`).
    package var name: String
    /// The MTU (`IFLA_MTU`); 0 when the kernel did not report one.
    package var mtu: UInt32
    /// Administratively up (`IFF_UP`); says nothing about carrier.
    package var isUp: Bool
    /// The driver kind from `IFLA_LINKINFO`/`IFLA_INFO_KIND` (`tun`, `veth`, `wireguard`, ...); nil for devices
    /// without rtnl_link_ops such as `lo` or most physical NICs.
    package var kind: String?

    package init(index: Int32, name: String, mtu: UInt32, isUp: Bool, kind: String? = nil) {
        self.index = index
        self.name = name
        self.mtu = mtu
        self.isUp = isUp
        self.kind = kind
    }

    package var description: String {
        "\(index): \(name) mtu \(mtu) \(isUp ? "up" : "down")" + (kind.map { " \($0)" } ?? "")
    }
}

extension LinkInfo {
    /// Decodes the payload of `RTM_NEWLINK` / `RTM_DELLINK` (`struct ifinfomsg` + attributes); nil when the fixed
    /// header is short or the name is missing.
    package init?(netlinkPayload payload: [UInt8]) {
        let bytes = NetlinkBytes(payload)
        guard payload.count >= NetlinkConstant.ifinfomsgSize, let index = bytes.i32(at: 4),
            let flags = bytes.u32(at: 8)
        else { return nil }
        let attributes = NetlinkAttributes(bytes, from: NetlinkConstant.ifinfomsgSize)
        guard let name = attributes.string(NetlinkConstant.iflaIfname) else { return nil }
        self.init(
            index: index, name: name, mtu: attributes.u32(NetlinkConstant.iflaMTU) ?? 0,
            isUp: flags & NetlinkConstant.interfaceUp != 0,
            kind: attributes.nested(NetlinkConstant.iflaLinkinfo)?.string(NetlinkConstant.iflaInfoKind))
    }
}
