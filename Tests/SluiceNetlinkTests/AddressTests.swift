import Foundation
import SluiceNet
import SluiceNetlink
import SluiceSystem
import Testing

@Suite("RouteNetlink addresses", .enabled(if: runningAsRoot, "needs root for network namespaces"))
struct AddressTests {
    @Test func addsListsAndDeletesAddressesIdempotently() throws {
        try withTestNamespace { ns in
            try ns.ip("link add name sln-a type veth peer name sln-b")
            let index = try interfaceIndex("sln-a", in: ns)
            let v4 = try #require(IPPrefix("10.1.2.3/24"))
            let v6 = try #require(IPPrefix("fd00::1/64"))

            let listed = try ns.run {
                let netlink = try RouteNetlink()
                for _ in 0..<2 {  // the second round must be a no-op
                    try netlink.addAddress(v4, interface: index)
                    try netlink.addAddress(v6, interface: index)
                }
                return try netlink.addresses(interface: index)
            }
            #expect(listed.filter { $0 == v4 }.count == 1)
            #expect(listed.filter { $0 == v6 }.count == 1)
            let shown = try ns.json("addr show dev sln-a").first?["addr_info"] as? [[String: Any]] ?? []
            let shownPrefixes = Set(
                shown.compactMap { info -> String? in
                    guard let local = info["local"] as? String, let length = info["prefixlen"] as? Int else {
                        return nil
                    }
                    return "\(local)/\(length)"
                })
            #expect(shownPrefixes.isSuperset(of: ["10.1.2.3/24", "fd00::1/64"]))
            // lo's addresses are not sln-a's.
            let loopback = try ns.run { try RouteNetlink().addresses(interface: 1) }
            #expect(loopback.contains(IPPrefix("127.0.0.1/8")!))
            #expect(!loopback.contains(v4))

            let conflict = try ns.run { () -> SystemError? in
                do throws(SystemError) {
                    // IPv6 refuses the same address with another length; that is not "already present".
                    try RouteNetlink().addAddress(IPPrefix("fd00::1/48")!, interface: index)
                    return nil
                } catch {
                    return error
                }
            }
            #expect(conflict?.errno == EEXIST)
            #expect(conflict?.description.hasPrefix("RTM_NEWADDR fd00::1/48 dev \(index)") == true)

            let after = try ns.run {
                let netlink = try RouteNetlink()
                for _ in 0..<2 {
                    try netlink.deleteAddress(v4, interface: index)
                    try netlink.deleteAddress(v6, interface: index)
                }
                try netlink.deleteAddress(v4, interface: 4242)  // no such interface: nothing to delete
                return try netlink.addresses(interface: index)
            }
            #expect(!after.contains(v4))
            #expect(!after.contains(v6))
            let remaining = try ns.json("addr show dev sln-a").first?["addr_info"] as? [[String: Any]] ?? []
            #expect(
                !remaining.contains { ($0["local"] as? String) == "10.1.2.3" || ($0["local"] as? String) == "fd00::1" })
        }
    }
}
