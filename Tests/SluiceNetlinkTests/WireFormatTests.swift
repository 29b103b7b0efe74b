import SluiceNet
import Testing

@testable import SluiceNetlink

/// Byte-level checks of the codec, runnable without privileges. Struct sizes are those of the kernel headers
/// (`sizeof` checked with a C `_Static_assert` against linux-libc-dev).
@Suite("Netlink wire format")
struct WireFormatTests {
    @Test func fixedHeadersHaveKernelSizes() {
        #expect(MemoryLayout<NetlinkSocketAddress>.size == 12)  // struct sockaddr_nl
        var link = NetlinkRequest(type: NetlinkConstant.getLink, flags: NetlinkConstant.flagRequest)
        link.appendInterfaceInfo(family: 0, index: 7, flags: 1, change: 1)
        #expect(link.bytes.count == NetlinkConstant.headerSize + 16)  // struct ifinfomsg
        var address = NetlinkRequest(type: NetlinkConstant.newAddress, flags: NetlinkConstant.flagRequest)
        address.appendInterfaceAddress(family: 2, prefixLength: 24, flags: 0, scope: 0, index: 7)
        #expect(address.bytes.count == NetlinkConstant.headerSize + 8)  // struct ifaddrmsg
        var route = NetlinkRequest(type: NetlinkConstant.newRoute, flags: NetlinkConstant.flagRequest)
        route.appendRouteHeader(
            family: 2, destinationLength: 0, sourceLength: 0, table: 0, protocol: 0, scope: 0, type: 0, flags: 0)
        #expect(route.bytes.count == NetlinkConstant.headerSize + 12)  // struct rtmsg / struct fib_rule_hdr
    }

    @Test func headerAndAttributesAreLaidOutAndPadded() {
        var request = NetlinkRequest(type: NetlinkConstant.getLink, flags: NetlinkConstant.flagRequest | 0x4)
        request.addAttribute(NetlinkConstant.iflaIfname, string: "lo")
        let nested = request.beginNested(NetlinkConstant.iflaLinkinfo)
        request.addAttribute(NetlinkConstant.iflaInfoKind, string: "veth")
        request.endNested(nested)
        let bytes = request.finish(sequence: 0x0102_0304)
        #expect(bytes.count == 16 + 8 + 4 + 12)
        #expect(Array(bytes[0..<4]) == [40, 0, 0, 0])  // nlmsg_len, little-endian host
        #expect(Array(bytes[4..<8]) == [18, 0, 5, 0])  // RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK
        #expect(Array(bytes[8..<12]) == [4, 3, 2, 1])
        #expect(Array(bytes[16..<24]) == [7, 0, 3, 0, UInt8(ascii: "l"), UInt8(ascii: "o"), 0, 0])  // len 7, padded
        #expect(Array(bytes[24..<28]) == [16, 0, 18, 0x80])  // nested: length covers the inner attribute
        let batch = NetlinkMessage.split(datagram: bytes)
        #expect(!batch.isMalformed)
        let attributes = NetlinkAttributes(batch.messages[0].payload)
        #expect(attributes.string(NetlinkConstant.iflaIfname) == "lo")
        #expect(attributes.nested(NetlinkConstant.iflaLinkinfo)?.string(NetlinkConstant.iflaInfoKind) == "veth")
    }

    @Test func routesRoundTrip() throws {
        let routes = [
            Route(destination: IPPrefix("10.9.0.0/16")!, outputInterface: 7, table: 2022),
            Route(
                destination: IPPrefix("0.0.0.0/0")!, gateway: IPAddress("192.168.1.1"), outputInterface: 2,
                metric: 100, preferredSource: IPAddress("192.168.1.5"), proto: 3),
            Route(destination: IPPrefix("2001:db8::/32")!, gateway: IPAddress("fe80::1"), outputInterface: 3),
            Route(destination: IPPrefix("10.0.0.0/8")!, table: 300, kind: .blackhole),
        ]
        for route in routes {
            let bytes = route.request(type: NetlinkConstant.newRoute, flags: 0).finish(sequence: 1)
            let message = try #require(NetlinkMessage.split(datagram: bytes).messages.first)
            #expect(Route(netlinkPayload: message.payload) == route)
        }
    }

    @Test func rulesRoundTripNormalized() {
        for family in IPFamily.allCases {
            for rule in RuleTests.ruleSet(family) {
                let bytes = rule.request(type: NetlinkConstant.newRule, flags: 0).finish(sequence: 1)
                let payload = NetlinkMessage.split(datagram: bytes).messages.first?.payload ?? []
                #expect(RoutingRule(netlinkPayload: payload) == rule.normalized)
            }
        }
        let hostBits = RoutingRule(
            family: .v4, priority: 1, table: 5, fwmask: 0xffff_ffff, source: IPPrefix("10.1.2.3/8"))
        #expect(hostBits.normalized.source == IPPrefix("10.0.0.0/8"))
        #expect(hostBits.normalized.fwmask == nil)
    }

    @Test func descriptionsReadLikeIproute2() {
        let route = Route(destination: IPPrefix("0.0.0.0/0")!, outputInterface: 7, table: 2022)
        #expect("RTM_NEWROUTE \(route)" == "RTM_NEWROUTE 0.0.0.0/0 dev 7 table 2022")
        let rule = RoutingRule(
            family: .v4, priority: 9004, table: 2022, fwmark: 0x2d0, invert: true, ipProtocol: 17,
            destinationPortRange: 53...53)
        #expect(rule.description == "inet pref 9004 not fwmark 0x2d0 ipproto 17 dport 53-53 lookup 2022")
        let suppress = RoutingRule(family: .v6, priority: 9001, table: 254, suppressPrefixLength: 0, proto: 4)
        #expect(suppress.description == "inet6 pref 9001 lookup main suppress_prefixlength 0 proto 4")
    }

    @Test func errorRepliesCarryErrnoAndKernelText() {
        // NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS: int error, the request's nlmsghdr, then NLMSGERR_ATTR_MSG.
        var payload: [UInt8] = withUnsafeBytes(of: Int32(-17)) { Array($0) }
        payload += [UInt8](repeating: 0, count: 16)
        payload += [9, 0, 1, 0] + Array("boom".utf8) + [0, 0, 0, 0]
        let message = NetlinkMessage(type: 2, flags: 0x300, sequence: 1, portID: 0, payload: payload)
        #expect(message.errorReply == .init(errno: 17, kernelMessage: "boom"))
        let ack = NetlinkMessage(
            type: 2, flags: 0x100, sequence: 1, portID: 0, payload: [UInt8](repeating: 0, count: 20))
        #expect(ack.errorReply == .init(errno: 0, kernelMessage: nil))
        let short = NetlinkMessage(type: 2, flags: 0, sequence: 1, portID: 0, payload: [1, 2])
        #expect(short.errorReply == nil)
    }

    @Test func truncatedInputIsReportedNotTrusted() {
        // nlmsg_len claims 64 bytes but only 20 arrived.
        var bytes: [UInt8] = [64, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]
        #expect(NetlinkMessage.split(datagram: bytes).isMalformed)
        // An attribute whose length runs past the end stops attribute parsing but keeps what came before.
        bytes = [8, 0, 4, 0, 0xdc, 5, 0, 0, 40, 0, 3, 0, 1]
        let attributes = NetlinkAttributes(bytes)
        #expect(attributes.isTruncated)
        #expect(attributes.u32(NetlinkConstant.iflaMTU) == 1500)
        #expect(attributes[NetlinkConstant.iflaIfname] == nil)
    }
}
