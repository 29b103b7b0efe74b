import SluiceNet

extension IPFamily {
    /// The rtnetlink family byte (`AF_INET` 2, `AF_INET6` 10).
    package var netlinkValue: UInt8 {
        self == .v4 ? NetlinkConstant.familyInet : NetlinkConstant.familyInet6
    }

    package init?(netlinkValue: UInt8) {
        switch netlinkValue {
        case NetlinkConstant.familyInet: self = .v4
        case NetlinkConstant.familyInet6: self = .v6
        default: return nil
        }
    }
}
