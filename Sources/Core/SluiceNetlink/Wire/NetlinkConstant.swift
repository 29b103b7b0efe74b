/// Numbers from the kernel's uapi headers: `linux/netlink.h`, `linux/rtnetlink.h`, `linux/if_link.h`,
/// `linux/if_addr.h`, `linux/fib_rules.h` and `linux/genetlink.h`.
///
/// Swift's Glibc module does not import the `linux/` headers, so the values are spelled out here. They are part
/// of the kernel ABI and never change; each was checked against `/usr/include/linux` (linux-libc-dev for 6.x)
/// with a one-off C file of `_Static_assert`s, and the struct sizes are pinned by `WireFormatTests`.
package enum NetlinkConstant {
    // MARK: Sockets (linux/netlink.h, linux/socket.h)

    /// `NETLINK_ROUTE`: the rtnetlink protocol.
    package static let protocolRoute: CInt = 0
    /// `SOL_NETLINK` (linux/socket.h).
    package static let solNetlink: CInt = 270
    /// `NETLINK_ADD_MEMBERSHIP`: join one multicast group by number (works for groups above 32 too).
    package static let addMembership: CInt = 1
    /// `NETLINK_CAP_ACK`: error replies carry only the failed request's header, not its whole payload.
    package static let capAck: CInt = 10
    /// `NETLINK_EXT_ACK`: error replies carry the kernel's explanation (`NLMSGERR_ATTR_MSG`).
    package static let extAck: CInt = 11
    /// `AF_INET` / `AF_INET6` as the one-byte family fields of the rtnetlink headers.
    package static let familyInet: UInt8 = 2
    package static let familyInet6: UInt8 = 10
    package static let familyUnspecified: UInt8 = 0

    // MARK: Generic netlink (linux/netlink.h, linux/genetlink.h)

    /// `NETLINK_GENERIC`: the multiplexer for families registered at run time (wireguard, ethtool, nl80211, ...).
    package static let protocolGeneric: CInt = 16
    /// `GENL_HDRLEN`: `struct genlmsghdr` (u8 cmd, u8 version, u16 reserved), already 4-byte aligned.
    package static let genericHeaderSize = 4
    /// `GENL_ID_CTRL`: the controller (`nlctrl`), the one family with a fixed id; it maps names to the others' ids.
    package static let genericControllerID: UInt16 = 0x10
    /// `CTRL_CMD_NEWFAMILY` (the controller's answer) and `CTRL_CMD_GETFAMILY` (the question).
    package static let controllerNewFamily: UInt8 = 1
    package static let controllerGetFamily: UInt8 = 3
    /// The controller's own interface version (`nlctrl` reports 2; any value is accepted).
    package static let controllerVersion: UInt8 = 2
    /// `CTRL_ATTR_FAMILY_ID` (u16), `CTRL_ATTR_FAMILY_NAME` (string), `CTRL_ATTR_VERSION`, `CTRL_ATTR_HDRSIZE` and
    /// `CTRL_ATTR_MAXATTR` (u32).
    package static let controllerAttributeFamilyID: UInt16 = 1
    package static let controllerAttributeFamilyName: UInt16 = 2
    package static let controllerAttributeVersion: UInt16 = 3
    package static let controllerAttributeHeaderSize: UInt16 = 4
    package static let controllerAttributeMaxAttribute: UInt16 = 5
    /// `GENL_NAMSIZ`: family names are at most 15 bytes plus the NUL.
    package static let genericNameSize = 16

    // MARK: Message header (struct nlmsghdr)

    /// `sizeof(struct nlmsghdr)`.
    package static let headerSize = 16
    /// `NLMSG_NOOP`, `NLMSG_ERROR`, `NLMSG_DONE`, `NLMSG_OVERRUN`.
    package static let messageNoop: UInt16 = 1
    package static let messageError: UInt16 = 2
    package static let messageDone: UInt16 = 3
    package static let messageOverrun: UInt16 = 4

    /// `NLM_F_*` request flags.
    package static let flagRequest: UInt16 = 0x1
    package static let flagMulti: UInt16 = 0x2
    package static let flagAck: UInt16 = 0x4
    /// `NLM_F_DUMP_INTR`: the dump was interrupted by a change and may be inconsistent.
    package static let flagDumpInterrupted: UInt16 = 0x10
    package static let flagDump: UInt16 = 0x300
    package static let flagReplace: UInt16 = 0x100
    package static let flagExclusive: UInt16 = 0x200
    package static let flagCreate: UInt16 = 0x400
    /// Flags on an `NLMSG_ERROR` reply: `NLM_F_CAPPED` (request payload left out), `NLM_F_ACK_TLVS`.
    package static let flagCapped: UInt16 = 0x100
    package static let flagAckTLVs: UInt16 = 0x200
    /// `NLMSGERR_ATTR_MSG`: the extended-ack text attribute.
    package static let errorAttributeMessage: UInt16 = 1

    // MARK: rtnetlink message types (linux/rtnetlink.h)

    package static let newLink: UInt16 = 16
    package static let deleteLink: UInt16 = 17
    package static let getLink: UInt16 = 18
    package static let newAddress: UInt16 = 20
    package static let deleteAddress: UInt16 = 21
    package static let getAddress: UInt16 = 22
    package static let newRoute: UInt16 = 24
    package static let deleteRoute: UInt16 = 25
    package static let getRoute: UInt16 = 26
    package static let newRule: UInt16 = 32
    package static let deleteRule: UInt16 = 33
    package static let getRule: UInt16 = 34

    /// The `RTM_*` name of a message type, for error messages.
    package static func name(ofMessageType type: UInt16) -> String {
        switch type {
        case newLink: "RTM_NEWLINK"
        case deleteLink: "RTM_DELLINK"
        case getLink: "RTM_GETLINK"
        case newAddress: "RTM_NEWADDR"
        case deleteAddress: "RTM_DELADDR"
        case getAddress: "RTM_GETADDR"
        case newRoute: "RTM_NEWROUTE"
        case deleteRoute: "RTM_DELROUTE"
        case getRoute: "RTM_GETROUTE"
        case newRule: "RTM_NEWRULE"
        case deleteRule: "RTM_DELRULE"
        case getRule: "RTM_GETRULE"
        default: "netlink message \(type)"
        }
    }

    // MARK: Fixed headers

    /// `sizeof(struct ifinfomsg)`, `struct ifaddrmsg`, `struct rtmsg`, `struct fib_rule_hdr`, `struct rtattr`.
    package static let ifinfomsgSize = 16
    package static let ifaddrmsgSize = 8
    package static let rtmsgSize = 12
    package static let fibRuleHeaderSize = 12
    package static let attributeHeaderSize = 4
    /// `sizeof(struct nlmsgerr)`: the error code and the failed request's `nlmsghdr`.
    package static let errorHeaderSize = 20

    /// `NLA_TYPE_MASK`: attribute types carry `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER` in their top two bits.
    package static let attributeTypeMask: UInt16 = 0x3FFF
    package static let attributeNested: UInt16 = 0x8000

    // MARK: Links (linux/if_link.h, linux/if.h)

    package static let iflaIfname: UInt16 = 3
    package static let iflaMTU: UInt16 = 4
    package static let iflaLink: UInt16 = 5
    package static let iflaOperstate: UInt16 = 16
    package static let iflaLinkinfo: UInt16 = 18
    package static let iflaInfoKind: UInt16 = 1
    /// `IFF_UP`.
    package static let interfaceUp: UInt32 = 0x1

    // MARK: Addresses (linux/if_addr.h)

    package static let ifaAddress: UInt16 = 1
    package static let ifaLocal: UInt16 = 2
    package static let ifaFlags: UInt16 = 8

    // MARK: Routes (linux/rtnetlink.h)

    package static let rtaDestination: UInt16 = 1
    package static let rtaSource: UInt16 = 2
    package static let rtaInputInterface: UInt16 = 3
    package static let rtaOutputInterface: UInt16 = 4
    package static let rtaGateway: UInt16 = 5
    package static let rtaPriority: UInt16 = 6
    package static let rtaPreferredSource: UInt16 = 7
    package static let rtaMetrics: UInt16 = 8
    package static let rtaMultipath: UInt16 = 9
    package static let rtaTable: UInt16 = 15
    package static let rtaMark: UInt16 = 16
    /// `RTM_F_CLONED`: a cached/exception route, not a FIB entry.
    package static let routeFlagCloned: UInt32 = 0x200
    /// `RT_SCOPE_NOWHERE`: in a delete request, "match any scope" (what iproute2 sends).
    package static let scopeNowhere: UInt8 = 255
    /// `RT_TABLE_UNSPEC` / `RT_TABLE_COMPAT`: what the 8-bit table field says when the id needs 32 bits.
    package static let tableUnspecified: UInt8 = 0
    package static let tableCompat: UInt8 = 252

    // MARK: Rules (linux/fib_rules.h)

    package static let fraDestination: UInt16 = 1
    package static let fraSource: UInt16 = 2
    package static let fraInputInterfaceName: UInt16 = 3
    package static let fraGoto: UInt16 = 4
    package static let fraPriority: UInt16 = 6
    package static let fraFirewallMark: UInt16 = 10
    package static let fraFlow: UInt16 = 11
    package static let fraTunnelID: UInt16 = 12
    package static let fraSuppressInterfaceGroup: UInt16 = 13
    package static let fraSuppressPrefixLength: UInt16 = 14
    package static let fraTable: UInt16 = 15
    package static let fraFirewallMask: UInt16 = 16
    package static let fraOutputInterfaceName: UInt16 = 17
    package static let fraL3MasterDevice: UInt16 = 19
    package static let fraUIDRange: UInt16 = 20
    package static let fraProtocol: UInt16 = 21
    package static let fraIPProtocol: UInt16 = 22
    package static let fraSourcePortRange: UInt16 = 23
    package static let fraDestinationPortRange: UInt16 = 24
    /// `FIB_RULE_INVERT`: the selector is negated (`ip rule add not ...`).
    package static let ruleFlagInvert: UInt32 = 0x2
    /// `FR_ACT_*`.
    package static let ruleActionToTable: UInt8 = 1
    package static let ruleActionGoto: UInt8 = 2
    package static let ruleActionNop: UInt8 = 3
    package static let ruleActionBlackhole: UInt8 = 6
    package static let ruleActionUnreachable: UInt8 = 7
    package static let ruleActionProhibit: UInt8 = 8

    /// Rounds up to the 4-byte alignment of netlink messages and attributes (`NLMSG_ALIGN`, `RTA_ALIGN`).
    @inline(__always)
    package static func align(_ length: Int) -> Int { (length + 3) & ~3 }
}
