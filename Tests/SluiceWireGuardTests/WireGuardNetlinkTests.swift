import SluiceNet
import SluiceNetlink
import SluiceTestSupport
import Testing

@testable import SluiceWireGuard

/// The kernel backend's messages, byte for byte. The machine these were written on has no wireguard module, so the
/// kernel's side is played by ``WireGuardKernelModel``, written from drivers/net/wireguard/netlink.c.
///
/// Golden bytes are for a little-endian host (x86-64, arm64): netlink integers are in host order.
@Suite("WireGuard kernel netlink codec")
struct WireGuardNetlinkTests {
    static let familyID: UInt16 = 0x20
    static let privateKey = [UInt8](repeating: 0x11, count: 32)
    static let peerKey = [UInt8](repeating: 0x22, count: 32)

    static func key(_ index: Int) -> [UInt8] {
        (0..<32).map { UInt8(truncatingIfNeeded: index >> (8 * ($0 % 4))) ^ UInt8($0) }
    }

    /// An attribute as the kernel lays it out: u16 length (header included), u16 type, payload, padding to 4.
    static func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let length = 4 + payload.count
        var bytes = [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(type & 0xFF), UInt8(type >> 8)] + payload
        while bytes.count % 4 != 0 { bytes.append(0) }
        return bytes
    }

    static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

    /// What the dump of a device configured with `settings` reads as.
    static func expectedStatus(_ settings: WireGuardUAPI.DeviceSettings) -> WireGuardUAPI.DeviceStatus {
        var status = WireGuardUAPI.DeviceStatus()
        status.listenPort = settings.listenPort
        status.fwmark = settings.fwmark.flatMap { $0 == 0 ? nil : $0 }
        status.peers = settings.peers.map { peer in
            var expected = WireGuardUAPI.PeerStatus(publicKey: peer.publicKey)
            expected.endpoint = peer.endpoint.map(WireGuardUAPI.endpointText)
            expected.persistentKeepalive = peer.persistentKeepalive
            expected.allowedIPs = peer.allowedIPs.map { $0.network.description }
            return expected
        }
        return status
    }

    static func apply(_ requests: [NetlinkRequest], to model: inout WireGuardKernelModel) throws {
        for (index, request) in requests.enumerated() {
            try model.apply(request.finish(sequence: UInt32(index + 1)))
        }
    }

    // MARK: Golden bytes

    @Test("SET_DEVICE for a new device, byte for byte: headers, device attributes, nested peer and allowed IP")
    func goldenSetDevice() throws {
        let settings = WireGuardUAPI.DeviceSettings(
            privateKey: Self.privateKey, listenPort: 51820,
            peers: [
                .init(
                    publicKey: Self.peerKey, endpoint: SocketEndpoint("192.0.2.1:51820"), persistentKeepalive: 25,
                    allowedIPs: [IPPrefix("10.0.0.7/24")!])
            ])
        let requests = try WireGuardNetlink.setDeviceRequests(
            familyID: Self.familyID, link: "wg0", settings: settings, replacePeers: true, removePeers: [])
        #expect(requests.count == 1)
        let w = UInt8(ascii: "w")
        let g = UInt8(ascii: "g")
        let zero = UInt8(ascii: "0")
        var expected: [UInt8] = [200, 0, 0, 0, 0x20, 0, 0x05, 0, 1, 0, 0, 0, 0, 0, 0, 0]  // nlmsghdr: REQUEST|ACK
        expected += [1, 1, 0, 0]  // genlmsghdr: WG_CMD_SET_DEVICE, version 1
        expected += [8, 0, 2, 0, w, g, zero, 0]  // WGDEVICE_A_IFNAME "wg0\0"
        expected += [36, 0, 3, 0] + Self.privateKey  // WGDEVICE_A_PRIVATE_KEY
        expected += [6, 0, 6, 0, 0x6C, 0xCA, 0, 0]  // WGDEVICE_A_LISTEN_PORT 51820, padded
        expected += [8, 0, 7, 0, 0, 0, 0, 0]  // WGDEVICE_A_FWMARK 0: clears
        expected += [8, 0, 5, 0, 1, 0, 0, 0]  // WGDEVICE_A_FLAGS: REPLACE_PEERS
        expected += [112, 0, 0x08, 0x80]  // WGDEVICE_A_PEERS | NLA_F_NESTED
        expected += [108, 0, 0x00, 0x80]  // peer 0 | NLA_F_NESTED
        expected += [36, 0, 1, 0] + Self.peerKey  // WGPEER_A_PUBLIC_KEY
        expected += [20, 0, 4, 0, 2, 0, 0xCA, 0x6C, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]  // ENDPOINT sockaddr_in
        expected += [6, 0, 5, 0, 25, 0, 0, 0]  // PERSISTENT_KEEPALIVE_INTERVAL 25
        expected += [8, 0, 3, 0, 2, 0, 0, 0]  // WGPEER_A_FLAGS: REPLACE_ALLOWEDIPS
        expected += [32, 0, 0x09, 0x80]  // WGPEER_A_ALLOWEDIPS | NLA_F_NESTED
        expected += [28, 0, 0x00, 0x80]  // allowed IP 0 | NLA_F_NESTED
        expected += [6, 0, 1, 0, 2, 0, 0, 0]  // WGALLOWEDIP_A_FAMILY AF_INET
        expected += [8, 0, 2, 0, 10, 0, 0, 0]  // WGALLOWEDIP_A_IPADDR 10.0.0.0: host bits cleared
        expected += [5, 0, 3, 0, 24, 0, 0, 0]  // WGALLOWEDIP_A_CIDR_MASK 24
        #expect(requests[0].finish(sequence: 1) == expected)
    }

    @Test("endpoint-only update, byte for byte: UPDATE_ONLY and a sockaddr_in6")
    func goldenEndpointUpdate() throws {
        let request = try WireGuardNetlink.setEndpointRequest(
            familyID: Self.familyID, link: "wg0", publicKey: Self.peerKey,
            endpoint: SocketEndpoint("[fd00::1]:51820")!)
        var expected: [UInt8] = [112, 0, 0, 0, 0x20, 0, 0x05, 0, 9, 0, 0, 0, 0, 0, 0, 0]
        expected += [1, 1, 0, 0]
        expected += [8, 0, 2, 0, UInt8(ascii: "w"), UInt8(ascii: "g"), UInt8(ascii: "0"), 0]
        expected += [84, 0, 0x08, 0x80, 80, 0, 0x00, 0x80]
        expected += [36, 0, 1, 0] + Self.peerKey
        // sockaddr_in6: family 10, port, flowinfo 0, fd00::1, scope id 0.
        expected += [32, 0, 4, 0, 10, 0, 0xCA, 0x6C, 0, 0, 0, 0]
        expected += [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1] + [0, 0, 0, 0]
        expected += [8, 0, 3, 0, 4, 0, 0, 0]  // WGPEER_A_FLAGS: UPDATE_ONLY
        #expect(request.finish(sequence: 9) == expected)
    }

    @Test("GET_DEVICE is a dump request naming the device")
    func goldenGetDevice() throws {
        let request = try WireGuardNetlink.getDeviceRequest(familyID: Self.familyID, link: "wg0")
        let expected: [UInt8] =
            [28, 0, 0, 0, 0x20, 0, 0x01, 0x03, 2, 0, 0, 0, 0, 0, 0, 0]  // REQUEST | NLM_F_DUMP (0x300)
            + [0, 1, 0, 0] + [8, 0, 2, 0, UInt8(ascii: "w"), UInt8(ascii: "g"), UInt8(ascii: "0"), 0]
        #expect(request.finish(sequence: 2) == expected)
    }

    // MARK: Round trips through the kernel model

    @Test("round trip: IPv4 and IPv6 endpoints and allowed IPs, preshared key, counters and handshake")
    func roundTrip() throws {
        let settings = WireGuardUAPI.DeviceSettings(
            privateKey: Self.privateKey, listenPort: 51820, fwmark: 0x1234,
            peers: [
                .init(
                    publicKey: Self.key(1), presharedKey: [UInt8](repeating: 7, count: 32),
                    endpoint: SocketEndpoint("[2001:db8::1:0:0:1]:4500"), persistentKeepalive: 25,
                    allowedIPs: [IPPrefix("10.0.0.5/24")!, IPPrefix("fd10::1/64")!, IPPrefix("0.0.0.0/0")!]),
                .init(
                    publicKey: Self.key(2), endpoint: SocketEndpoint("192.0.2.7:51820"),
                    allowedIPs: [IPPrefix("::/0")!, IPPrefix("192.168.7.1/32")!]),
                .init(publicKey: Self.key(3)),  // no endpoint yet, no allowed IPs
            ])
        var model = WireGuardKernelModel(familyID: Self.familyID)
        try Self.apply(
            try WireGuardNetlink.setDeviceRequests(
                familyID: Self.familyID, link: "wg0", settings: settings, replacePeers: true, removePeers: []),
            to: &model)
        #expect(model.privateKey == Self.privateKey)
        #expect(model.peers[0].presharedKey == [UInt8](repeating: 7, count: 32))
        model.peers[0].lastHandshake = (1_700_000_000, 123_456_789)
        model.peers[0].rxBytes = 1 << 40
        model.peers[0].txBytes = 12345

        for padCounters in [false, true] {
            let status = try WireGuardNetlink.parseDevice(model.dumpMessages(padCounters: padCounters))
            var expected = Self.expectedStatus(settings)
            expected.peers[0].lastHandshakeSeconds = 1_700_000_000
            expected.peers[0].rxBytes = 1 << 40
            expected.peers[0].txBytes = 12345
            #expect(status == expected)
            #expect(status.peers[0].endpoint == "[2001:db8::1:0:0:1]:4500")
            #expect(status.peers[0].allowedIPs == ["10.0.0.0/24", "fd10::/64", "0.0.0.0/0"])
            #expect(status.peers[1].endpoint == "192.0.2.7:51820")
            #expect(status.peers[2].endpoint == nil)
        }
    }

    @Test("running device: peers removed and updated in place, listen port left alone, fwmark cleared, zero PSK clears")
    func syncConfiguration() throws {
        var model = WireGuardKernelModel(familyID: Self.familyID)
        let first = WireGuardUAPI.DeviceSettings(
            privateKey: Self.privateKey, listenPort: 40000, fwmark: 9,
            peers: [
                .init(
                    publicKey: Self.key(1), presharedKey: [UInt8](repeating: 7, count: 32),
                    endpoint: SocketEndpoint("192.0.2.1:1"), allowedIPs: [IPPrefix("10.1.0.0/16")!]),
                .init(publicKey: Self.key(2), allowedIPs: [IPPrefix("10.2.0.0/16")!]),
            ])
        try Self.apply(
            try WireGuardNetlink.setDeviceRequests(
                familyID: Self.familyID, link: "wg0", settings: first, replacePeers: true, removePeers: []),
            to: &model)
        let second = WireGuardUAPI.DeviceSettings(
            privateKey: Self.privateKey,
            peers: [
                .init(
                    publicKey: Self.key(1), presharedKey: [UInt8](repeating: 0, count: 32), persistentKeepalive: 5,
                    allowedIPs: [IPPrefix("10.9.0.0/16")!]),
                .init(publicKey: Self.key(3), allowedIPs: [IPPrefix("10.3.0.0/16")!]),
            ])
        try Self.apply(
            try WireGuardNetlink.setDeviceRequests(
                familyID: Self.familyID, link: "wg0", settings: second, replacePeers: false,
                removePeers: [Self.key(2)]),
            to: &model)
        #expect(model.peers[0].presharedKey == [UInt8](repeating: 0, count: 32))
        let status = try WireGuardNetlink.parseDevice(model.dumpMessages())
        #expect(status.listenPort == 40000)
        #expect(status.fwmark == nil)
        #expect(status.peers.map(\.publicKey) == [Self.key(1), Self.key(3)])
        // Peer 1 kept its roaming endpoint (none was sent) and had its allowed IPs replaced.
        #expect(status.peers[0].endpoint == "192.0.2.1:1")
        #expect(status.peers[0].allowedIPs == ["10.9.0.0/16"])
        #expect(status.peers[0].persistentKeepalive == 5)
    }

    @Test("an endpoint update changes only that peer's endpoint and never creates a peer")
    func endpointUpdateRoundTrip() throws {
        var model = WireGuardKernelModel(familyID: Self.familyID)
        let settings = WireGuardUAPI.DeviceSettings(
            privateKey: Self.privateKey,
            peers: [
                .init(
                    publicKey: Self.key(1), endpoint: SocketEndpoint("192.0.2.1:1"),
                    allowedIPs: [IPPrefix("10.0.0.0/8")!])
            ])
        try Self.apply(
            try WireGuardNetlink.setDeviceRequests(
                familyID: Self.familyID, link: "wg0", settings: settings, replacePeers: true, removePeers: []),
            to: &model)
        try model.apply(
            WireGuardNetlink.setEndpointRequest(
                familyID: Self.familyID, link: "wg0", publicKey: Self.key(1),
                endpoint: SocketEndpoint("[fd00::1]:51820")!
            ).finish(sequence: 5))
        try model.apply(
            WireGuardNetlink.setEndpointRequest(
                familyID: Self.familyID, link: "wg0", publicKey: Self.key(9), endpoint: SocketEndpoint("192.0.2.9:9")!
            ).finish(sequence: 6))
        let status = try WireGuardNetlink.parseDevice(model.dumpMessages())
        #expect(status.peers.count == 1)
        #expect(status.peers[0].endpoint == "[fd00::1]:51820")
        #expect(status.peers[0].allowedIPs == ["10.0.0.0/8"])
    }

    // MARK: Splitting

    /// 300 peers × 20 allowed IPs (every fifth one IPv6), some with preshared keys.
    static func largeSettings() -> WireGuardUAPI.DeviceSettings {
        let peers = (0..<300).map { index in
            WireGuardUAPI.PeerSettings(
                publicKey: key(index + 1), presharedKey: index % 3 == 0 ? [UInt8](repeating: 3, count: 32) : nil,
                endpoint: index % 2 == 0
                    ? SocketEndpoint(address: IPAddress("198.51.100.\(index % 250)")!, port: UInt16(1000 + index))
                    : SocketEndpoint(address: IPAddress("2001:db8::\(String(index, radix: 16))")!, port: 51820),
                persistentKeepalive: index % 30,
                allowedIPs: (0..<20).map { item in
                    item % 5 == 0
                        ? IPPrefix("fd00:\(String(index, radix: 16)):\(item)::/64")!
                        : IPPrefix("10.\(index >> 8).\(index & 255).\(item * 8)/29")!
                })
        }
        return WireGuardUAPI.DeviceSettings(privateKey: privateKey, listenPort: 51820, fwmark: 7, peers: peers)
    }

    /// What one message says about peers, read with the model's own attribute walker.
    struct PeerEntry {
        var publicKey: [UInt8]
        var types: Set<UInt16>
        var allowedIPs: [[UInt8]]
    }

    static func peerEntries(_ message: [UInt8]) throws -> (device: Set<UInt16>, peers: [PeerEntry]) {
        let device = try WireGuardKernelModel.attributes(message[20...])
        var entries: [PeerEntry] = []
        for list in device where list.type == 8 {
            for peer in try WireGuardKernelModel.attributes(list.payload[...]) {
                let fields = try WireGuardKernelModel.attributes(peer.payload[...])
                var entry = PeerEntry(
                    publicKey: fields.first { $0.type == 1 }?.payload ?? [], types: Set(fields.map(\.type)),
                    allowedIPs: [])
                for allowed in fields where allowed.type == 9 {
                    entry.allowedIPs += try WireGuardKernelModel.attributes(allowed.payload[...]).map(\.payload)
                }
                entries.append(entry)
            }
        }
        return (Set(device.map(\.type)), entries)
    }

    @Test("300 peers × 20 allowed IPs: messages under the limit, each peer and allowed IP exactly once, then applied")
    func splitsLargeConfiguration() throws {
        let settings = Self.largeSettings()
        for limit in [4096, 1024, 512] {
            let requests = try WireGuardNetlink.setDeviceRequests(
                familyID: Self.familyID, link: "wg0", settings: settings, replacePeers: true, removePeers: [],
                messageLimit: limit)
            #expect(requests.count > 1)
            var headers: [[UInt8]: Int] = [:]
            var allowed: [[UInt8]: [[UInt8]]] = [:]
            var previousLast: [UInt8]?
            var continuations = 0
            for (index, request) in requests.enumerated() {
                let bytes = request.finish(sequence: 1)
                #expect(bytes.count <= limit, "message \(index) is \(bytes.count) bytes")
                let (device, peers) = try Self.peerEntries(bytes)
                if index == 0 {
                    #expect(device.isSuperset(of: [2, 3, 5, 6, 7]))  // name, key, flags, port, mark
                } else {
                    #expect(device.isSubset(of: [2, 8]), "message \(index) repeats device attributes")
                }
                for (position, peer) in peers.enumerated() {
                    if peer.types.contains(3) {
                        headers[peer.publicKey, default: 0] += 1
                        #expect(allowed[peer.publicKey] == nil, "a peer's header comes before its allowed IPs")
                    } else {
                        // A continuation: only the key and the rest of the allowed IPs, first in its message, of the
                        // peer the previous message ended with.
                        continuations += 1
                        #expect(peer.types == [1, 9])
                        #expect(position == 0)
                        #expect(peer.publicKey == previousLast)
                        #expect(!peer.allowedIPs.isEmpty)
                    }
                    allowed[peer.publicKey, default: []] += peer.allowedIPs
                }
                previousLast = peers.last?.publicKey
            }
            #expect(headers.count == 300)
            #expect(headers.values.allSatisfy { $0 == 1 })
            if limit == 512 { #expect(continuations >= 300) }  // 20 allowed IPs never fit 512 bytes with a header
            for peer in settings.peers {
                // Each allowed IP once, in order: the family, address and mask entries of the configured prefixes.
                let expected = peer.allowedIPs.map { prefix in
                    Self.attribute(1, Self.bytes(UInt16(prefix.address.isIPv4 ? 2 : 10)))
                        + Self.attribute(2, prefix.network.address.netlinkBytes)
                        + Self.attribute(3, [prefix.length])
                }
                #expect(allowed[peer.publicKey] == expected)
            }

            var model = WireGuardKernelModel(familyID: Self.familyID)
            model.peers = [WireGuardKernelModel.Peer(publicKey: Self.key(999))]  // replaced by the first message
            try Self.apply(requests, to: &model)
            let status = try WireGuardNetlink.parseDevice(model.dumpMessages())
            #expect(status == Self.expectedStatus(settings))
        }
    }

    @Test(
        "a running device's removals come first and the continuation of a split peer does not replace its allowed IPs")
    func splitSyncKeepsAllowedIPs() throws {
        var settings = Self.largeSettings()
        settings.peers = Array(settings.peers.prefix(10))
        let requests = try WireGuardNetlink.setDeviceRequests(
            familyID: Self.familyID, link: "wg0", settings: settings, replacePeers: false,
            removePeers: [Self.key(500), Self.key(501)], messageLimit: 512)
        let (device, peers) = try Self.peerEntries(requests[0].finish(sequence: 1))
        #expect(!device.contains(5))  // no REPLACE_PEERS
        #expect(device.isSuperset(of: [3, 6, 7]))  // key, port and mark still go in the first message
        #expect(peers.prefix(2).map(\.publicKey) == [Self.key(500), Self.key(501)])
        #expect(peers.prefix(2).allSatisfy { $0.types == [1, 3] })
        var model = WireGuardKernelModel(familyID: Self.familyID)
        model.peers = [
            WireGuardKernelModel.Peer(publicKey: Self.key(500)), WireGuardKernelModel.Peer(publicKey: Self.key(501)),
        ]
        try Self.apply(requests, to: &model)
        #expect(try WireGuardNetlink.parseDevice(model.dumpMessages()) == Self.expectedStatus(settings))
    }

    @Test("a limit too small for one peer with one allowed IP is an error, not an endless list of messages")
    func limitTooSmall() {
        let settings = WireGuardUAPI.DeviceSettings(
            privateKey: Self.privateKey, peers: [.init(publicKey: Self.key(1), allowedIPs: [IPPrefix("10.0.0.0/8")!])])
        #expect(throws: WireGuardNetlink.CodecError.self) {
            try WireGuardNetlink.setDeviceRequests(
                familyID: Self.familyID, link: "wg0", settings: settings, replacePeers: true, removePeers: [],
                messageLimit: 100)
        }
        #expect(throws: WireGuardNetlink.CodecError.self) {
            try WireGuardNetlink.setDeviceRequests(
                familyID: Self.familyID, link: "wg0", settings: settings, replacePeers: true, removePeers: [],
                messageLimit: 60)
        }
    }

    @Test("a device without peers is one message; with REPLACE_PEERS it removes them all")
    func noPeers() throws {
        var model = WireGuardKernelModel(familyID: Self.familyID)
        model.peers = [WireGuardKernelModel.Peer(publicKey: Self.key(1))]
        let requests = try WireGuardNetlink.setDeviceRequests(
            familyID: Self.familyID, link: "wg0", settings: .init(privateKey: Self.privateKey), replacePeers: true,
            removePeers: [])
        #expect(requests.count == 1)
        try Self.apply(requests, to: &model)
        #expect(model.peers.isEmpty)
    }

    // MARK: The dump

    @Test("a peer whose allowed IPs are split over dump messages is one peer; distinct neighbours stay apart")
    func peerSplitAcrossDumpMessages() throws {
        var model = WireGuardKernelModel(familyID: Self.familyID)
        let settings = WireGuardUAPI.DeviceSettings(
            privateKey: Self.privateKey,
            peers: [
                .init(publicKey: Self.key(1), allowedIPs: (0..<100).map { IPPrefix("10.0.\($0).0/24")! }),
                .init(publicKey: Self.key(2), allowedIPs: [IPPrefix("10.1.0.0/16")!]),
            ])
        try Self.apply(
            try WireGuardNetlink.setDeviceRequests(
                familyID: Self.familyID, link: "wg0", settings: settings, replacePeers: true, removePeers: []),
            to: &model)
        let datagrams = model.dump(limit: 1024)
        #expect(datagrams.count >= 3)
        let (_, secondMessagePeers) = try Self.peerEntries(datagrams[1])
        #expect(secondMessagePeers.first?.types == [1, 9])  // the kernel's continuation: key and allowed IPs only
        let status = try WireGuardNetlink.parseDevice(model.dumpMessages(limit: 1024))
        #expect(status == Self.expectedStatus(settings))
    }

    @Test("a hand-made two-message dump: device attributes in the first, the peer continued in the second")
    func handMadeSplitDump() throws {
        let key = Self.key(4)
        let ip = { (third: UInt8) in
            Self.attribute(
                0x8000,
                Self.attribute(3, [24]) + Self.attribute(1, Self.bytes(UInt16(2)))
                    + Self.attribute(2, [10, 0, third, 0]))
        }
        let first =
            Self.attribute(6, Self.bytes(UInt16(51820))) + Self.attribute(7, Self.bytes(UInt32(0)))
            + Self.attribute(
                0x8008,
                Self.attribute(
                    0x8000,
                    Self.attribute(1, key) + Self.attribute(5, Self.bytes(UInt16(25)))
                        + Self.attribute(7, Self.bytes(UInt64(10))) + Self.attribute(8, Self.bytes(UInt64(20)))
                        + Self.attribute(4, [2, 0, 0x12, 0x34, 203, 0, 113, 9] + [UInt8](repeating: 0, count: 8))
                        + Self.attribute(0x8009, ip(1))))
        let second = Self.attribute(
            0x8008, Self.attribute(0x8000, Self.attribute(1, key) + Self.attribute(0x8009, ip(2))))
        let status = try WireGuardNetlink.parseDevice([
            .init(command: 0, version: 1, attributes: first), .init(command: 0, version: 1, attributes: second),
        ])
        #expect(status.listenPort == 51820)
        #expect(status.fwmark == nil)
        #expect(status.peers.count == 1)
        #expect(status.peers[0].endpoint == "203.0.113.9:4660")
        #expect(status.peers[0].rxBytes == 10)
        #expect(status.peers[0].txBytes == 20)
        #expect(status.peers[0].persistentKeepalive == 25)
        #expect(status.peers[0].allowedIPs == ["10.0.1.0/24", "10.0.2.0/24"])
        #expect(status.peers[0].lastHandshakeSeconds == 0)
    }

    // MARK: Malformed input

    static func dumpWithPeer(_ peer: [UInt8]) -> [GenericNetlink.Message] {
        [.init(command: 0, version: 1, attributes: attribute(0x8008, attribute(0x8000, peer)))]
    }

    @Test(
        "malformed answers throw, naming the attribute",
        arguments: [
            (
                "listen port of 4 bytes",
                [GenericNetlink.Message(command: 0, version: 1, attributes: attribute(6, [0, 0, 0, 0]))],
                "WGDEVICE_A_LISTEN_PORT"
            ),
            (
                "fwmark of 2 bytes", [.init(command: 0, version: 1, attributes: attribute(7, [1, 0]))],
                "WGDEVICE_A_FWMARK"
            ),
            ("another command", [.init(command: 1, version: 1, attributes: [])], "command 1"),
            ("truncated attribute", [.init(command: 0, version: 1, attributes: [40, 0, 6, 0, 1, 2])], "truncated"),
            ("attribute header cut off", [.init(command: 0, version: 1, attributes: [8, 0])], "truncated"),
            ("peer without key", dumpWithPeer(attribute(5, [0, 0])), "no WGPEER_A_PUBLIC_KEY"),
            ("short key", dumpWithPeer(attribute(1, [UInt8](repeating: 1, count: 31))), "31 bytes"),
            ("short endpoint", dumpWithPeer(attribute(1, key(1)) + attribute(4, [2, 0, 0, 1, 10, 0])), "wrong size"),
            (
                "AF_INET endpoint of 28 bytes",
                dumpWithPeer(attribute(1, key(1)) + attribute(4, [2, 0] + [UInt8](repeating: 0, count: 26))),
                "wrong size"
            ),
            (
                "endpoint of family 7",
                dumpWithPeer(attribute(1, key(1)) + attribute(4, [7, 0] + [UInt8](repeating: 0, count: 14))), "family 7"
            ),
            ("endpoint of 1 byte", dumpWithPeer(attribute(1, key(1)) + attribute(4, [2])), "cannot hold"),
            (
                "handshake of 8 bytes",
                dumpWithPeer(attribute(1, key(1)) + attribute(6, [UInt8](repeating: 0, count: 8))),
                "LAST_HANDSHAKE_TIME"
            ),
            ("rx of 4 bytes", dumpWithPeer(attribute(1, key(1)) + attribute(7, [1, 0, 0, 0])), "WGPEER_A_RX_BYTES"),
            ("keepalive of 1 byte", dumpWithPeer(attribute(1, key(1)) + attribute(5, [1])), "KEEPALIVE"),
            (
                "preshared key of 16 bytes",
                dumpWithPeer(attribute(1, key(1)) + attribute(2, [UInt8](repeating: 0, count: 16))), "PRESHARED"
            ),
            (
                "allowed IP /33",
                dumpWithPeer(
                    attribute(1, key(1))
                        + attribute(
                            0x8009,
                            attribute(0x8000, attribute(1, [2, 0]) + attribute(2, [10, 0, 0, 0]) + attribute(3, [33])))),
                "too long"
            ),
            (
                "allowed IP of family 7",
                dumpWithPeer(
                    attribute(1, key(1))
                        + attribute(
                            0x8009,
                            attribute(0x8000, attribute(1, [7, 0]) + attribute(2, [10, 0, 0, 0]) + attribute(3, [8])))),
                "family 7"
            ),
            (
                "IPv6 allowed IP of 4 bytes",
                dumpWithPeer(
                    attribute(1, key(1))
                        + attribute(
                            0x8009,
                            attribute(0x8000, attribute(1, [10, 0]) + attribute(2, [10, 0, 0, 0]) + attribute(3, [8])))),
                "4 bytes"
            ),
            (
                "allowed IP without mask",
                dumpWithPeer(
                    attribute(1, key(1))
                        + attribute(0x8009, attribute(0x8000, attribute(1, [2, 0]) + attribute(2, [10, 0, 0, 0])))),
                "CIDR_MASK"
            ),
            (
                "allowed IP mask of 2 bytes",
                dumpWithPeer(
                    attribute(1, key(1))
                        + attribute(
                            0x8009,
                            attribute(
                                0x8000, attribute(1, [2, 0]) + attribute(2, [10, 0, 0, 0]) + attribute(3, [8, 0])))),
                "CIDR_MASK"
            ),
            (
                "truncated allowed IP list",
                dumpWithPeer(attribute(1, key(1)) + attribute(0x8009, [12, 0, 0, 0x80, 6, 0])), "truncated"
            ),
        ] as [(String, [GenericNetlink.Message], String)])
    func malformed(_ name: String, _ messages: [GenericNetlink.Message], _ mention: String) {
        do {
            let status = try WireGuardNetlink.parseDevice(messages)
            Issue.record("\(name): parsed as \(status)")
        } catch {
            #expect(error.description.contains(mention), "\(name): \(error)")
        }
    }

    @Test("random truncations and byte flips of a real dump throw or parse, never crash")
    func mutatedDumps() throws {
        var model = WireGuardKernelModel(familyID: Self.familyID)
        var settings = Self.largeSettings()
        settings.peers = Array(settings.peers.prefix(3))
        try Self.apply(
            try WireGuardNetlink.setDeviceRequests(
                familyID: Self.familyID, link: "wg0", settings: settings, replacePeers: true, removePeers: []),
            to: &model)
        let original = try #require(model.dumpMessages().first)
        var random = SplitMix64(seed: 0x5EED_0A11)
        var thrown = 0
        for round in 0..<3000 {
            var attributes = original.attributes
            if round % 2 == 0 {
                attributes = Array(attributes.prefix(Int.random(in: 0..<attributes.count, using: &random)))
            }
            for _ in 0..<Int.random(in: 0...3, using: &random) where !attributes.isEmpty {
                attributes[Int.random(in: 0..<attributes.count, using: &random)] = UInt8.random(
                    in: 0...255, using: &random)
            }
            do {
                _ = try WireGuardNetlink.parseDevice([.init(command: 0, version: 1, attributes: attributes)])
            } catch {
                thrown += 1
            }
        }
        #expect(thrown > 1000)
    }

    // MARK: What cannot be sent

    @Test("configurations the kernel cannot take are refused before anything is sent")
    func encodingErrors() {
        let good = WireGuardUAPI.PeerSettings(publicKey: Self.key(1))
        let cases: [(String, WireGuardUAPI.DeviceSettings, String, String)] = [
            ("short private key", .init(privateKey: [1, 2, 3]), "wg0", "private key is 3 bytes"),
            (
                "short peer key", .init(privateKey: Self.privateKey, peers: [.init(publicKey: [1])]), "wg0",
                "peer public key"
            ),
            (
                "short PSK",
                .init(privateKey: Self.privateKey, peers: [.init(publicKey: Self.key(1), presharedKey: [0])]), "wg0",
                "preshared key is 1 bytes"
            ),
            (
                "endpoint name",
                .init(
                    privateKey: Self.privateKey,
                    peers: [
                        .init(publicKey: Self.key(1), endpoint: SocketEndpoint(host: .name("vpn.example"), port: 51820))
                    ]), "wg0", "vpn.example:51820 is a name"
            ),
            (
                "keepalive 70000",
                .init(privateKey: Self.privateKey, peers: [.init(publicKey: Self.key(1), persistentKeepalive: 70000)]),
                "wg0", "keepalive 70000"
            ),
            (
                "keepalive -1",
                .init(privateKey: Self.privateKey, peers: [.init(publicKey: Self.key(1), persistentKeepalive: -1)]),
                "wg0", "keepalive -1"
            ),
            (
                "long link name", .init(privateKey: Self.privateKey, peers: [good]), "a-very-long-name0",
                "not an interface name"
            ),
            ("empty link name", .init(privateKey: Self.privateKey, peers: [good]), "", "not an interface name"),
        ]
        for (name, settings, link, mention) in cases {
            do {
                _ = try WireGuardNetlink.setDeviceRequests(
                    familyID: Self.familyID, link: link, settings: settings, replacePeers: true, removePeers: [])
                Issue.record("\(name): encoded")
            } catch {
                #expect(error.description.contains(mention), "\(name): \(error)")
            }
        }
        #expect(throws: WireGuardNetlink.CodecError.self) {
            try WireGuardNetlink.setEndpointRequest(
                familyID: Self.familyID, link: "wg0", publicKey: Self.key(1),
                endpoint: SocketEndpoint(host: .name("vpn.example"), port: 1))
        }
        // A removal's key is checked too, but only where removals are sent (not with replacePeers).
        #expect(throws: WireGuardNetlink.CodecError.self) {
            try WireGuardNetlink.setDeviceRequests(
                familyID: Self.familyID, link: "wg0", settings: .init(privateKey: Self.privateKey), replacePeers: false,
                removePeers: [[1, 2]])
        }
    }

    @Test("endpoints read back exactly as WireGuardUAPI.endpointText writes them")
    func endpointText() throws {
        for text in ["1.2.3.4:51820", "[fd00::1]:51820", "[::ffff:1.2.3.4]:1", "0.0.0.0:65535", "[2001:db8::]:80"] {
            let endpoint = try #require(SocketEndpoint(text))
            let sockaddr = try WireGuardNetlink.socketAddress(endpoint)
            #expect(sockaddr.count == (endpoint.host.description.contains(":") ? 28 : 16))
            #expect(try WireGuardNetlink.endpointText(sockaddr, "test") == WireGuardUAPI.endpointText(endpoint))
        }
    }
}
