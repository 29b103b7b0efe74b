import SluiceNet
import SluiceNetlink

/// A model of the kernel module's side of the wireguard generic netlink family, for round trips without the module:
/// it applies `WG_CMD_SET_DEVICE` requests as `wg_set_device` / `set_peer` do and answers `WG_CMD_GET_DEVICE` with
/// messages laid out and split as `wg_get_device_dump` / `get_peer` lay them out (drivers/net/wireguard/netlink.c).
///
/// Requests are checked as the kernel's generated policies check them under strict validation
/// (drivers/net/wireguard/generated/netlink.c, `NL_VALIDATE_STRICT`): known attribute types only, exact sizes for
/// integers and keys, `NLA_F_NESTED` on nested attributes and nowhere else, nothing after the last attribute.
/// It is written from the kernel source independently of ``WireGuardNetlink``'s parser, with raw byte walking.
struct WireGuardKernelModel {
    struct AllowedIP: Equatable {
        var family: UInt16
        var address: [UInt8]
        var cidr: UInt8
    }

    struct Peer {
        var publicKey: [UInt8]
        var presharedKey = [UInt8](repeating: 0, count: 32)
        /// The raw `sockaddr_in` / `sockaddr_in6`, nil before one is set.
        var endpoint: [UInt8]?
        var keepalive: UInt16 = 0
        var lastHandshake: (seconds: Int64, nanoseconds: Int64) = (0, 0)
        var rxBytes: UInt64 = 0
        var txBytes: UInt64 = 0
        var allowedIPs: [AllowedIP] = []
    }

    /// A request the kernel would refuse, with its reason.
    struct Refusal: Error, CustomStringConvertible {
        var description: String
    }

    let familyID: UInt16
    var name = "wg0"
    var index: UInt32 = 7
    var privateKey: [UInt8]?
    var listenPort: UInt16 = 0
    var fwmark: UInt32 = 0
    var peers: [Peer] = []
    /// How many `WG_CMD_SET_DEVICE` requests were applied.
    var requestsApplied = 0

    init(familyID: UInt16) { self.familyID = familyID }

    // MARK: Raw attributes

    /// One attribute with its type bits as sent.
    struct RawAttribute {
        var rawType: UInt16
        var payload: [UInt8]
        var type: UInt16 { rawType & 0x3FFF }
        var isNested: Bool { rawType & 0x8000 != 0 }
    }

    static func attributes(_ bytes: ArraySlice<UInt8>) throws -> [RawAttribute] {
        let bytes = Array(bytes)
        var out: [RawAttribute] = []
        var cursor = 0
        while cursor < bytes.count {
            guard bytes.count - cursor >= 4 else { throw Refusal(description: "trailing bytes") }
            let length = Int(bytes[cursor]) | Int(bytes[cursor + 1]) << 8
            let type = UInt16(bytes[cursor + 2]) | UInt16(bytes[cursor + 3]) << 8
            guard length >= 4, cursor + length <= bytes.count else { throw Refusal(description: "bad length") }
            out.append(RawAttribute(rawType: type, payload: Array(bytes[(cursor + 4)..<(cursor + length)])))
            cursor += (length + 3) & ~3
        }
        guard cursor == bytes.count else { throw Refusal(description: "trailing padding") }
        return out
    }

    /// Validates one level against a policy: type → expected size (nil: nested, -1: a NUL-terminated string,
    /// negative other: at least that many bytes).
    static func validate(_ attributes: [RawAttribute], _ policy: [UInt16: Int?], _ level: String) throws {
        for attribute in attributes {
            guard let rule = policy[attribute.type] else {
                throw Refusal(description: "\(level): unknown attribute type \(attribute.type)")
            }
            switch rule {
            case nil:
                guard attribute.isNested else { throw Refusal(description: "\(level): NLA_F_NESTED is missing") }
            case .some(let size):
                guard !attribute.isNested else { throw Refusal(description: "\(level): NLA_F_NESTED not expected") }
                if size == -1 {
                    guard attribute.payload.last == 0, attribute.payload.count <= 16 else {
                        throw Refusal(description: "\(level): bad string")
                    }
                } else if size < 0 {
                    guard attribute.payload.count >= -size else { throw Refusal(description: "\(level): too short") }
                } else {
                    guard attribute.payload.count == size else {
                        throw Refusal(
                            description:
                                "\(level): attribute \(attribute.type) has \(attribute.payload.count) bytes, not \(size)"
                        )
                    }
                }
            }
        }
    }

    static let devicePolicy: [UInt16: Int?] = [1: 4, 2: -1, 3: 32, 4: 32, 5: 4, 6: 2, 7: 4, 8: nil]
    static let peerPolicy: [UInt16: Int?] = [1: 32, 2: 32, 3: 4, 4: -16, 5: 2, 6: 16, 7: 8, 8: 8, 9: nil, 10: 4]
    static let allowedIPPolicy: [UInt16: Int?] = [1: 2, 2: -4, 3: 1]

    static func integer<T: FixedWidthInteger>(_ payload: [UInt8], as: T.Type) -> T {
        payload.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    // MARK: WG_CMD_SET_DEVICE

    /// Applies one finished request (`NetlinkRequest.finish(sequence:)`).
    mutating func apply(_ message: [UInt8]) throws {
        guard message.count >= 20, Self.integer(Array(message[0..<4]), as: UInt32.self) == UInt32(message.count)
        else { throw Refusal(description: "bad nlmsghdr length") }
        let type = Self.integer(Array(message[4..<6]), as: UInt16.self)
        let flags = Self.integer(Array(message[6..<8]), as: UInt16.self)
        guard type == familyID, flags == 0x5 else { throw Refusal(description: "type \(type) flags \(flags)") }
        guard message[16] == 1, message[17] == 1 else { throw Refusal(description: "not WG_CMD_SET_DEVICE v1") }
        let device = try Self.attributes(message[20...])
        try Self.validate(device, Self.devicePolicy, "device")
        func first(_ type: UInt16) -> [UInt8]? { device.first { $0.type == type }?.payload }
        // lookup_interface: exactly one of IFINDEX and IFNAME.
        guard (first(1) == nil) != (first(2) == nil) else { throw Refusal(description: "EBADR") }
        if let ifname = first(2), ifname != Array(name.utf8) + [0] { throw Refusal(description: "ENODEV") }
        let deviceFlags = first(5).map { Self.integer($0, as: UInt32.self) } ?? 0
        guard deviceFlags & ~1 == 0 else { throw Refusal(description: "EOPNOTSUPP device flags") }
        if let mark = first(7) { fwmark = Self.integer(mark, as: UInt32.self) }
        if let port = first(6) { listenPort = Self.integer(port, as: UInt16.self) }
        if deviceFlags & 1 != 0 { peers.removeAll() }
        if let key = first(3) { privateKey = key }
        if let list = device.first(where: { $0.type == 8 }) {
            for entry in try Self.attributes(list.payload[...]) {
                let peer = try Self.attributes(entry.payload[...])
                try Self.validate(peer, Self.peerPolicy, "peer")
                try setPeer(peer)
            }
        }
        requestsApplied += 1
    }

    private mutating func setPeer(_ attributes: [RawAttribute]) throws {
        func first(_ type: UInt16) -> [UInt8]? { attributes.first { $0.type == type }?.payload }
        guard let key = first(1) else { throw Refusal(description: "EINVAL: peer without public key") }
        var flags = first(3).map { Self.integer($0, as: UInt32.self) } ?? 0
        guard flags & ~7 == 0 else { throw Refusal(description: "EOPNOTSUPP peer flags") }
        var index = peers.firstIndex { $0.publicKey == key }
        if index == nil {
            if flags & (1 | 4) != 0 { return }  // REMOVE_ME or UPDATE_ONLY of a peer that is not there
            flags &= ~2
            peers.append(Peer(publicKey: key))
            index = peers.count - 1
        }
        let at = index!
        if flags & 1 != 0 {
            peers.remove(at: at)
            return
        }
        if let psk = first(2) { peers[at].presharedKey = psk }
        if let endpoint = first(4) {
            let family = Self.integer(Array(endpoint[0..<2]), as: UInt16.self)
            if (endpoint.count == 16 && family == 2) || (endpoint.count == 28 && family == 10) {
                peers[at].endpoint = endpoint
            }
        }
        if flags & 2 != 0 { peers[at].allowedIPs.removeAll() }
        if let list = attributes.first(where: { $0.type == 9 }) {
            for entry in try Self.attributes(list.payload[...]) {
                let fields = try Self.attributes(entry.payload[...])
                try Self.validate(fields, Self.allowedIPPolicy, "allowed IP")
                guard let familyBytes = fields.first(where: { $0.type == 1 })?.payload,
                    let address = fields.first(where: { $0.type == 2 })?.payload,
                    let cidr = fields.first(where: { $0.type == 3 })?.payload.first
                else { throw Refusal(description: "EINVAL: allowed IP without family, address or mask") }
                let family = Self.integer(familyBytes, as: UInt16.self)
                guard
                    (family == 2 && cidr <= 32 && address.count == 4)
                        || (family == 10 && cidr <= 128 && address.count == 16)
                else { throw Refusal(description: "EINVAL: allowed IP") }
                let masked = IPPrefix(address: IPAddress(netlinkBytes: address)!, length: Int(cidr))!.network
                let entry = AllowedIP(family: family, address: masked.address.netlinkBytes, cidr: cidr)
                // The trie holds each prefix once: inserting it moves it to this peer.
                for other in peers.indices { peers[other].allowedIPs.removeAll { $0 == entry } }
                peers[at].allowedIPs.append(entry)
            }
        }
        if let keepalive = first(5) { peers[at].keepalive = Self.integer(keepalive, as: UInt16.self) }
    }

    // MARK: WG_CMD_GET_DEVICE

    /// The dump as the kernel sends it: whole netlink messages of at most `limit` bytes. Pads
    /// (`WGPEER_A_UNSPEC`, empty) go before the 64-bit counters when `padCounters`, as `nla_put_u64_64bit` does on
    /// architectures without efficient unaligned access.
    func dump(limit: Int = 4096, padCounters: Bool = false) -> [[UInt8]] {
        var messages: [[UInt8]] = []
        var nextPeer = 0
        var nextAllowedIP = 0
        var first = true
        while true {
            var message = NetlinkRequest(type: familyID, flags: NetlinkConstant.flagMulti)
            message.appendGenericHeader(command: 0, version: 1)
            if first {
                message.addAttribute(6, integer: listenPort)
                message.addAttribute(7, integer: fwmark)
                message.addAttribute(1, integer: index)
                message.addAttribute(2, string: name)
                if let privateKey {
                    message.addAttribute(3, privateKey)
                    message.addAttribute(4, [UInt8](repeating: 0x5A, count: 32))
                }
                first = false
            }
            var done = true
            if !peers.isEmpty {
                let list = message.beginNested(8)
                fill: while nextPeer < peers.count {
                    let peer = peers[nextPeer]
                    let peerMark = message.count
                    let entry = message.beginNested(0)
                    message.addAttribute(1, peer.publicKey)
                    if nextAllowedIP == 0 {
                        message.addAttribute(2, peer.presharedKey)
                        message.addAttribute(
                            6,
                            withUnsafeBytes(of: peer.lastHandshake.seconds) { Array($0) }
                                + withUnsafeBytes(of: peer.lastHandshake.nanoseconds) { Array($0) })
                        message.addAttribute(5, integer: peer.keepalive)
                        if padCounters { message.addAttribute(0, []) }
                        message.addAttribute(8, integer: peer.txBytes)
                        if padCounters { message.addAttribute(0, []) }
                        message.addAttribute(7, integer: peer.rxBytes)
                        message.addAttribute(10, integer: UInt32(1))
                        if let endpoint = peer.endpoint { message.addAttribute(4, endpoint) }
                    }
                    if message.count > limit {
                        message.discard(from: peerMark)
                        done = false
                        break fill
                    }
                    if nextAllowedIP < peer.allowedIPs.count {
                        let allowed = message.beginNested(9)
                        while nextAllowedIP < peer.allowedIPs.count {
                            let ip = peer.allowedIPs[nextAllowedIP]
                            let ipMark = message.count
                            let nest = message.beginNested(0)
                            message.addAttribute(3, integer: ip.cidr)
                            message.addAttribute(1, integer: ip.family)
                            message.addAttribute(2, ip.address)
                            message.endNested(nest)
                            if message.count > limit {
                                message.discard(from: ipMark)
                                message.endNested(allowed)
                                message.endNested(entry)
                                done = false
                                break fill
                            }
                            nextAllowedIP += 1
                        }
                        message.endNested(allowed)
                    }
                    message.endNested(entry)
                    nextPeer += 1
                    nextAllowedIP = 0
                }
                message.endNested(list)
            }
            messages.append(message.finish(sequence: 0))
            if done { return messages }
        }
    }

    /// The dump as ``GenericNetlink`` hands it over.
    func dumpMessages(limit: Int = 4096, padCounters: Bool = false) -> [GenericNetlink.Message] {
        dump(limit: limit, padCounters: padCounters).flatMap { datagram in
            NetlinkMessage.split(datagram: datagram).messages.compactMap {
                GenericNetlink.Message(netlinkPayload: $0.payload)
            }
        }
    }
}
