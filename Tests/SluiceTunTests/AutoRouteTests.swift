import Logging
import SluiceConfig
import SluiceNet
import SluiceNetlink
import Testing

@testable import SluiceTun

/// The rules auto-route installs, WireGuard links' marks included (issue 7, coexistence).
@Suite("auto-route rules")
struct AutoRouteTests {
    static func config() -> TunConfiguration {
        var tun = TunConfiguration()
        tun.inet4Address = [IPPrefix("198.18.0.1/30")!]
        return tun
    }

    @Test("routing-mark, then each WireGuard bypass mark, all at P and to main; routing-mark itself not twice")
    func bypassMarks() {
        let route = AutoRoute(
            config: Self.config(), interfaceIndex: 7, serviceUID: 999, bypassMarks: [51820, 0x2d0, 0],
            logger: Logger(label: "test"))
        let rules = route.rules(for: .v4)
        let marks = rules.filter { $0.priority == 9000 && $0.fwmark != nil }
        #expect(marks.map(\.fwmark) == [0x2d0, 51820])
        #expect(marks.allSatisfy { $0.table == Route.mainTable && $0.fwmask == UInt32.max })
        #expect(rules.contains { $0.priority == 9000 && $0.uidRange == 999...999 })
        #expect(rules.last?.priority == 9003)
    }
}
