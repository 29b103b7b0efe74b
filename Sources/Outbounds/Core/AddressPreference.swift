import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Which address families a dial may use (`ip-version` of a `direct` proxy).
package enum IPVersion: String, Sendable, Equatable, Codable {
    case ipv4, ipv6, dual
    case ipv4Prefer = "ipv4-prefer"
    case ipv6Prefer = "ipv6-prefer"
}

/// Which address families a name may resolve to (`ip-version` of a `direct` proxy).
package struct AddressPreference: Sendable, Equatable {
    package var allowsIPv4 = true
    package var allowsIPv6 = true
    package var prefersIPv6 = false

    /// `ip-version`; `dual` keeps the client's family first, as before ip-version existed.
    package init(_ version: IPVersion, clientIsIPv4: Bool) {
        switch version {
        case .ipv4: (allowsIPv4, allowsIPv6, prefersIPv6) = (true, false, false)
        case .ipv6: (allowsIPv4, allowsIPv6, prefersIPv6) = (false, true, true)
        case .ipv4Prefer: (allowsIPv4, allowsIPv6, prefersIPv6) = (true, true, false)
        case .ipv6Prefer: (allowsIPv4, allowsIPv6, prefersIPv6) = (true, true, true)
        case .dual: (allowsIPv4, allowsIPv6, prefersIPv6) = (true, true, !clientIsIPv4)
        }
    }

    /// Any family, IPv4 first (proxy servers).
    package static let any = AddressPreference(.ipv4Prefer, clientIsIPv4: true)

    package func allows(_ address: IPAddress) -> Bool { address.isIPv4 ? allowsIPv4 : allowsIPv6 }

    /// The address to dial among `addresses`: the preferred family first.
    package func pick(_ addresses: [IPAddress]) -> IPAddress? {
        addresses.first { allows($0) && $0.isIPv4 != prefersIPv6 } ?? addresses.first { allows($0) }
    }
}
