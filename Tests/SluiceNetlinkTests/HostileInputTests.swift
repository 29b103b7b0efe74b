import SluiceNet
import SluiceTestSupport
import Testing

@testable import SluiceNetlink

/// The decoders take bytes from the kernel, which we trust for content but not for our own parser's
/// correctness: random and mutated messages must never trap.
@Suite("Hostile netlink input")
struct HostileInputTests {
    /// Well-formed messages of every type the decoders understand, to mutate.
    static func samples() -> [[UInt8]] {
        var link = NetlinkRequest(type: NetlinkConstant.newLink, flags: 0)
        link.appendInterfaceInfo(family: 0, index: 3, flags: 1, change: 0)
        link.addAttribute(NetlinkConstant.iflaIfname, string: "tun0")
        link.addAttribute(NetlinkConstant.iflaMTU, integer: UInt32(1500))
        let info = link.beginNested(NetlinkConstant.iflaLinkinfo)
        link.addAttribute(NetlinkConstant.iflaInfoKind, string: "tun")
        link.endNested(info)

        var address = NetlinkRequest(type: NetlinkConstant.newAddress, flags: 0)
        address.appendInterfaceAddress(family: 10, prefixLength: 64, flags: 0, scope: 0, index: 3)
        address.addAttribute(NetlinkConstant.ifaAddress, address: IPAddress("fd00::1")!)

        var multipath = NetlinkRequest(type: NetlinkConstant.newRoute, flags: 0)
        multipath.appendRouteHeader(
            family: 2, destinationLength: 0, sourceLength: 0, table: 254, protocol: 3, scope: 0, type: 1, flags: 0)
        var hop: [UInt8] = [16, 0, 0, 0, 3, 0, 0, 0]
        hop += [8, 0, 5, 0, 10, 0, 0, 1]
        multipath.addAttribute(NetlinkConstant.rtaMultipath, hop)

        let error: [UInt8] =
            [44, 0, 0, 0, 2, 0, 0, 3, 1, 0, 0, 0, 0, 0, 0, 0] + [0xef, 0xff, 0xff, 0xff]
            + [UInt8](repeating: 0, count: 16)
            + [8, 0, 1, 0, 65, 66, 67, 0]
        let done: [UInt8] = [20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]

        var messages = [
            link.finish(sequence: 1), address.finish(sequence: 2), multipath.finish(sequence: 3), error, done,
        ]
        for family in IPFamily.allCases {
            for rule in RuleTests.ruleSet(family) {
                messages.append(rule.request(type: NetlinkConstant.newRule, flags: 0).finish(sequence: 4))
            }
        }
        messages.append(
            Route(destination: IPPrefix("10.9.0.0/16")!, gateway: IPAddress("10.1.2.1"), outputInterface: 7, metric: 5)
                .request(type: NetlinkConstant.newRoute, flags: 0).finish(sequence: 5))
        return messages
    }

    /// Runs every decoder over `datagram` and every message in it, whatever the message type says.
    static func decodeEverything(_ datagram: [UInt8]) -> Int {
        var decoded = RouteEvent.decode(datagram: datagram).count
        let batch = NetlinkMessage.split(datagram: datagram)
        for message in batch.messages + [
            NetlinkMessage(type: 0, flags: 0xffff, sequence: 0, portID: 0, payload: datagram)
        ] {
            if LinkInfo(netlinkPayload: message.payload) != nil { decoded += 1 }
            if Route(netlinkPayload: message.payload) != nil { decoded += 1 }
            if RoutingRule(netlinkPayload: message.payload) != nil { decoded += 1 }
            if InterfaceAddress(netlinkPayload: message.payload) != nil { decoded += 1 }
            var asError = message
            asError.type = NetlinkConstant.messageError
            if asError.errorReply != nil { decoded += 1 }
            asError.flags = NetlinkConstant.flagAckTLVs
            if asError.errorReply != nil { decoded += 1 }
            _ = NetlinkAttributes(message.payload).nested(NetlinkConstant.iflaLinkinfo)
        }
        return decoded
    }

    @Test func tenThousandRandomAndMutatedBuffersNeverTrap() {
        let seed: UInt64 = 0x5_1ce_2026
        var random = SplitMix64(seed: seed)
        let samples = Self.samples()
        #expect(samples.allSatisfy { Self.decodeEverything($0) > 0 }, "seed \(seed)")
        var decodedSomething = 0
        for _ in 0..<10_000 {
            var buffer: [UInt8]
            switch Int.random(in: 0..<4, using: &random) {
            case 0:
                buffer = random.bytes(Int.random(in: 0...256, using: &random))
            case 1:
                // Flip a few bytes of a valid message, often in the length fields.
                buffer = samples[Int.random(in: 0..<samples.count, using: &random)]
                for _ in 0..<Int.random(in: 1...6, using: &random) where !buffer.isEmpty {
                    let position =
                        Bool.random(using: &random)
                        ? Int.random(in: 0..<min(buffer.count, 32), using: &random)
                        : Int.random(in: 0..<buffer.count, using: &random)
                    buffer[position] = UInt8.random(in: 0...255, using: &random)
                }
            case 2:
                // Cut a valid message anywhere, or glue several and cut.
                let count = Int.random(in: 1...3, using: &random)
                buffer = (0..<count).flatMap { _ in samples[Int.random(in: 0..<samples.count, using: &random)] }
                buffer.removeLast(Int.random(in: 0...buffer.count, using: &random))
            default:
                // Extreme length values in the message or first attribute header.
                buffer = samples[Int.random(in: 0..<samples.count, using: &random)]
                let extremes: [UInt8] = [0, 1, 3, 4, 15, 16, 17, 0x7f, 0x80, 0xfe, 0xff]
                let position = [0, 1, 2, 3, 16, 17, 28, 29, 32, 33].randomElement(using: &random) ?? 0
                if position < buffer.count { buffer[position] = extremes.randomElement(using: &random) ?? 0 }
            }
            decodedSomething += Self.decodeEverything(buffer)
        }
        #expect(decodedSomething > 0, "seed \(seed)")
    }
}
