import Foundation
import SluiceNetlink
import SluiceSystem
import Testing

@Suite("RouteNetlink links", .enabled(if: runningAsRoot, "needs root for network namespaces"))
struct LinkTests {
    @Test func listsFindsChangesAndDeletesLinks() throws {
        try withTestNamespace { ns in
            try ns.ip("link add name sln-a type veth peer name sln-b")
            let (all, loopback, veth, missing) = try ns.run {
                let netlink = try RouteNetlink()
                return (
                    try netlink.links(), try netlink.link(named: "lo"), try netlink.link(named: "sln-a"),
                    try netlink.link(named: "sln-none")
                )
            }
            #expect(all.contains { $0.name == "lo" && $0.index == 1 })
            #expect(Set(all.map(\.name)) == ["lo", "sln-a", "sln-b"])
            #expect(loopback?.index == 1)
            #expect(loopback?.isUp == true)
            #expect(loopback?.mtu == 65536)
            #expect(missing == nil)
            let vethInfo = try #require(veth)
            #expect(vethInfo.kind == "veth")
            #expect(vethInfo.isUp == false)
            #expect(vethInfo.index == (try interfaceIndex("sln-a", in: ns)))

            let changed = try ns.run {
                let netlink = try RouteNetlink()
                try netlink.setLink(index: vethInfo.index, up: true, mtu: 1400)
                return try netlink.link(index: vethInfo.index)
            }
            #expect(changed?.mtu == 1400)
            #expect(changed?.isUp == true)
            let shown = try #require(try ns.json("link show dev sln-a").first)
            #expect(shown["mtu"] as? Int == 1400)
            #expect((shown["flags"] as? [String])?.contains("UP") == true)

            // Only the MTU: the up flag must stay as it is (ifi_change 0 would otherwise clear flags).
            try ns.run { try RouteNetlink().setLink(index: vethInfo.index, mtu: 1300) }
            let afterMTU = try #require(try ns.json("link show dev sln-a").first)
            #expect(afterMTU["mtu"] as? Int == 1300)
            #expect((afterMTU["flags"] as? [String])?.contains("UP") == true)

            try ns.run { try RouteNetlink().setLink(index: vethInfo.index, up: false) }
            let down = try #require(try ns.json("link show dev sln-a").first)
            #expect((down["flags"] as? [String])?.contains("UP") == false)

            let remaining = try ns.run {
                let netlink = try RouteNetlink()
                try netlink.deleteLink(index: vethInfo.index)
                try netlink.deleteLink(index: vethInfo.index)  // already gone: still fine
                return try netlink.links().map(\.name)
            }
            #expect(remaining == ["lo"])  // deleting one end of a veth pair deletes both
            #expect(try ns.json("link show").count == 1)
        }
    }

    @Test func errorsNameTheOperation() throws {
        try withTestNamespace { ns in
            let error = try ns.run { () -> SystemError? in
                do throws(SystemError) {
                    try RouteNetlink().setLink(index: 999, up: true)
                    return nil
                } catch {
                    return error
                }
            }
            let failure = try #require(error)
            #expect(failure.errno == ENODEV)
            #expect(failure.description.hasPrefix("RTM_NEWLINK dev 999 up"))
            #expect(failure.description.hasSuffix("No such device (errno 19)"))
        }
    }
}
