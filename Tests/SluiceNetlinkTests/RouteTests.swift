import Foundation
import SluiceNet
import SluiceNetlink
import SluiceSystem
import Testing

@Suite("RouteNetlink routes", .enabled(if: runningAsRoot, "needs root for network namespaces"))
struct RouteTests {
    /// A namespace with veth sln-a (10.1.2.3/24, fd00::3/64) whose peer is up too, so gateways resolve.
    private func prepare(_ ns: TestNamespace) throws -> Int32 {
        try ns.ip("link add name sln-a type veth peer name sln-b")
        try ns.ip("addr add 10.1.2.3/24 dev sln-a")
        try ns.ip("addr add fd00::3/64 dev sln-a nodad")
        try ns.ip("link set sln-a up")
        try ns.ip("link set sln-b up")
        return try interfaceIndex("sln-a", in: ns)
    }

    @Test func addsListsReplacesAndDeletesRoutes() throws {
        try withTestNamespace { ns in
            let index = try prepare(ns)
            let direct = Route(destination: IPPrefix("10.9.0.0/16")!, outputInterface: index, table: 2022)
            #expect(direct.scope == Route.scopeLink)
            #expect(direct.proto == 0x73)
            let viaGateway = Route(
                destination: IPPrefix("10.10.0.0/16")!, gateway: IPAddress("10.1.2.1"), outputInterface: index,
                table: 2022, metric: 100)
            let v6 = Route(destination: IPPrefix("fd00:9::/64")!, outputInterface: index, table: 2022)

            let (listed, duplicate) = try ns.run { () -> ([Route], SystemError?) in
                let netlink = try RouteNetlink()
                try netlink.addRoute(direct)
                try netlink.addRoute(viaGateway)
                var duplicate: SystemError?
                do throws(SystemError) { try netlink.addRoute(direct) } catch { duplicate = error }
                return (try netlink.routes(family: .v4, table: 2022), duplicate)
            }
            #expect(listed == [direct, viaGateway])
            #expect(duplicate?.errno == EEXIST)
            #expect(
                duplicate?.description == "RTM_NEWROUTE 10.9.0.0/16 dev \(index) table 2022: File exists (errno 17)")

            let shown = try ns.json("route show table 2022")
            #expect(shown.count == 2)
            #expect(shown.contains { $0["dst"] as? String == "10.9.0.0/16" && $0["dev"] as? String == "sln-a" })
            #expect(
                shown.contains {
                    $0["dst"] as? String == "10.10.0.0/16" && $0["gateway"] as? String == "10.1.2.1"
                        && $0["metric"] as? Int == 100
                })

            // Replace keys on destination and metric: the gateway changes in place, no second route.
            let replaced = Route(
                destination: viaGateway.destination, gateway: IPAddress("10.1.2.2"), outputInterface: index,
                table: 2022, metric: 100)
            let (afterReplace, mainRoutes, v6Routes) = try ns.run {
                let netlink = try RouteNetlink()
                try netlink.addRoute(replaced, replace: true)
                try netlink.addRoute(v6)
                return (
                    try netlink.routes(family: .v4, table: 2022), try netlink.routes(family: .v4, table: 254),
                    try netlink.routes(family: .v6, table: 2022)
                )
            }
            #expect(afterReplace == [direct, replaced])
            #expect(!mainRoutes.contains(direct))  // the table filter works
            let listedV6 = try #require(v6Routes.first)
            #expect(v6Routes.count == 1)
            #expect(listedV6.destination == v6.destination)
            #expect(listedV6.metric == 1024)  // the kernel's default IPv6 metric
            #expect(listedV6.scope == Route.scopeUniverse)  // IPv6 does not keep scopes
            #expect(listedV6.proto == Route.sluiceProtocol)

            let (v4Left, v6Left) = try ns.run {
                let netlink = try RouteNetlink()
                for _ in 0..<2 {  // a second delete finds nothing (ESRCH) and is fine
                    try netlink.deleteRoute(direct)
                    try netlink.deleteRoute(replaced)
                    try netlink.deleteRoute(v6)
                }
                return (try netlink.routes(family: .v4, table: 2022), try netlink.routes(family: .v6, table: 2022))
            }
            #expect(v4Left.isEmpty)
            #expect(v6Left.isEmpty)
            #expect(try ns.json("route show table 2022").isEmpty)
        }
    }

    @Test func findsTheDefaultRoute() throws {
        try withTestNamespace { ns in
            let index = try prepare(ns)
            #expect(try ns.run { try RouteNetlink().defaultRoute(family: .v4) } == nil)
            try ns.ip("route add default via 10.1.2.1")
            try ns.ip("route add default via 10.1.2.2 metric 50")
            try ns.ip("-6 route add default via fd00::1 metric 300")
            let (v4, v6) = try ns.run {
                let netlink = try RouteNetlink()
                return (try netlink.defaultRoute(family: .v4), try netlink.defaultRoute(family: .v6))
            }
            let route = try #require(v4)
            #expect(route.outputInterface == index)
            #expect(route.gateway == IPAddress("10.1.2.1"))
            #expect(route.metric == nil)
            #expect(route.table == 254)
            #expect(route.proto == 3)  // RTPROT_BOOT, what ip uses
            #expect(route.destination == IPPrefix("0.0.0.0/0"))
            #expect(v6?.gateway == IPAddress("fd00::1"))
            #expect(v6?.outputInterface == index)
            #expect(v6?.metric == 300)
        }
    }
}
