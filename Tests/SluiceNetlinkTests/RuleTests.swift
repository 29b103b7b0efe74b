import Foundation
import SluiceNet
import SluiceNetlink
import SluiceSystem
import Testing

@Suite("RouteNetlink rules", .enabled(if: runningAsRoot, "needs root for network namespaces"))
struct RuleTests {
    /// The sing-box-style auto-route rule set, plus one rule exercising the remaining selectors.
    static func ruleSet(_ family: IPFamily) -> [RoutingRule] {
        let privateNet = family == .v4 ? IPPrefix("192.168.0.0/16")! : IPPrefix("fd00::/8")!
        let source = family == .v4 ? IPPrefix("10.0.0.0/8")! : IPPrefix("fc00::/7")!
        return [
            RoutingRule(family: family, priority: 9000, table: 254, fwmark: 0x2d0),
            RoutingRule(family: family, priority: 9001, table: 254, suppressPrefixLength: 0),
            RoutingRule(family: family, priority: 9002, table: 254, destination: privateNet),
            RoutingRule(family: family, priority: 9003, table: 2022),
            RoutingRule(
                family: family, priority: 9004, table: 2022, fwmark: 0x2d0, fwmask: 0xff0, invert: true,
                ipProtocol: 17, destinationPortRange: 53...53),
            RoutingRule(
                family: family, priority: 9005, action: .unreachable, source: source, inputInterface: "lo",
                ipProtocol: 6, sourcePortRange: 1000...2000, uidRange: 1000...2000),
            RoutingRule(family: family, priority: 9006, table: 100_000, outputInterface: "lo"),
        ]
    }

    @Test(arguments: IPFamily.allCases)
    func installsListsAndRemovesTheAutoRouteRules(family: IPFamily) throws {
        try withTestNamespace { ns in
            let flag = family == .v4 ? "-4" : "-6"
            let wanted = Self.ruleSet(family)
            let (before, afterAdd) = try ns.run {
                let netlink = try RouteNetlink()
                let before = try netlink.rules(family: family)
                for rule in wanted + wanted {  // the second round must not duplicate anything
                    try netlink.addRule(rule)
                }
                let afterAdd = try netlink.rules(family: family)
                return (before, afterAdd)
            }
            #expect(before.map(\.priority) == (family == .v4 ? [0, 32766, 32767] : [0, 32766]))
            let ours = afterAdd.filter { $0.proto == RoutingRule.sluiceProtocol }
            #expect(ours == wanted.map(\.normalized))
            #expect(afterAdd.count == before.count + wanted.count)

            let shown = try ns.json("\(flag) rule show")
            let shownOurs = shown.filter {
                ($0["priority"] as? Int ?? 0) >= 9000 && ($0["priority"] as? Int ?? 0) < 9100
            }
            #expect(shownOurs.map { $0["priority"] as? Int } == [9000, 9001, 9002, 9003, 9004, 9005, 9006])
            #expect(shownOurs[0]["fwmark"] as? String == "0x2d0")
            #expect(shownOurs[0]["table"] as? String == "main")
            #expect(shownOurs[1]["suppress_prefixlen"] as? Int == 0)
            #expect(shownOurs[2]["dst"] as? String == (family == .v4 ? "192.168.0.0" : "fd00::"))
            #expect(shownOurs[2]["dstlen"] as? Int == (family == .v4 ? 16 : 8))
            #expect(shownOurs[3]["table"] as? String == "2022")
            #expect(shownOurs[4].keys.contains("not"))
            #expect(shownOurs[4]["fwmask"] as? String == "0xff0")
            #expect(shownOurs[4]["ipproto"] as? String == "udp")
            #expect(shownOurs[4]["dport"] as? Int == 53)
            #expect(shownOurs[5]["action"] as? String == "unreachable")
            #expect(shownOurs[5]["uid_start"] as? Int == 1000)
            #expect(shownOurs[5]["iif"] as? String == "lo")
            #expect(shownOurs[6]["table"] as? String == "100000")
            #expect(shownOurs[6]["oif"] as? String == "lo")
            #expect(shownOurs.allSatisfy { $0["protocol"] as? String == "115" })

            let (remaining, listedAgain) = try ns.run {
                let netlink = try RouteNetlink()
                for rule in wanted.reversed() + wanted {  // deleting twice is fine (ENOENT)
                    try netlink.deleteRule(rule)
                }
                return (try netlink.rules(family: family), try netlink.rules(family: family))
            }
            #expect(remaining == before)
            #expect(listedAgain == before)
            #expect(try ns.json("\(flag) rule show").count == before.count)
        }
    }

    @Test func deleteMatchesTheWholeRuleNotJustItsPriority() throws {
        try withTestNamespace { ns in
            let mark = RoutingRule(family: .v4, priority: 9000, table: 254, fwmark: 0x2d0)
            let other = RoutingRule(family: .v4, priority: 9000, table: 254, fwmark: 0x2d1)
            let left = try ns.run {
                let netlink = try RouteNetlink()
                try netlink.addRule(mark)
                try netlink.addRule(other)
                try netlink.deleteRule(mark)
                return try netlink.rules(family: .v4).filter { $0.priority == 9000 }
            }
            #expect(left == [other])
        }
    }
}
