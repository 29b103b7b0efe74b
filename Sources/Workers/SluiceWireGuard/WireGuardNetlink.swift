import SluiceNet
import SluiceNetlink

/// The generic netlink protocol of the kernel's WireGuard module (family `wireguard`), in ``WireGuardUAPI``'s model:
/// `WG_CMD_SET_DEVICE` requests built from ``WireGuardUAPI/DeviceSettings``, and the `WG_CMD_GET_DEVICE` dump parsed
/// into ``WireGuardUAPI/DeviceStatus`` with endpoints written as ``WireGuardUAPI/endpointText(_:)`` writes them, so
/// the keeper compares them the same way for both backends.
///
/// Numbers are from `include/uapi/linux/wireguard.h` (the copy in `/usr/include/linux/wireguard.h` and
/// wireguard-tools' `src/uapi/linux/linux/wireguard.h`); the message layout and the splitting follow `wg`
/// (wireguard-tools `src/ipc-linux.h`, `kernel_set_device` / `kernel_get_device`), and the kernel side is
/// `drivers/net/wireguard/netlink.c`. Integers are in host byte order, addresses and ports inside the
/// `sockaddr` of an endpoint in network byte order.
///
/// Pure: builds and parses bytes only, so it is tested without a kernel module; ``KernelControl`` does the socket.
package enum WireGuardNetlink {
    /// `WG_GENL_NAME` and `WG_GENL_VERSION`.
    package static let familyName = "wireguard"
    package static let familyVersion: UInt8 = 1

    /// The largest message built, headers included. `wg` builds each message in a buffer of the page size capped at
    /// 8 KiB (`mnl_ideal_socket_buffer_size`), 4 KiB on x86-64 and most arm64, and continues in another message what
    /// does not fit; the kernel would take larger ones, but holds the RTNL lock while it applies each, so a large
    /// configuration goes in slices the kernel has seen from `wg` countless times.
    package static let defaultMessageLimit = 4096

    /// `WG_KEY_LEN`.
    static let keyLength = 32

    /// `enum wg_cmd`.
    enum Command {
        static let getDevice: UInt8 = 0
        static let setDevice: UInt8 = 1
    }

    /// `enum wgdevice_attribute` and `enum wgdevice_flag`.
    enum DeviceAttribute {
        static let ifindex: UInt16 = 1
        static let ifname: UInt16 = 2
        static let privateKey: UInt16 = 3
        static let publicKey: UInt16 = 4
        static let flags: UInt16 = 5
        static let listenPort: UInt16 = 6
        static let fwmark: UInt16 = 7
        static let peers: UInt16 = 8
        /// `WGDEVICE_F_REPLACE_PEERS`.
        static let flagReplacePeers: UInt32 = 1 << 0
    }

    /// `enum wgpeer_attribute` and `enum wgpeer_flag`.
    enum PeerAttribute {
        static let publicKey: UInt16 = 1
        static let presharedKey: UInt16 = 2
        static let flags: UInt16 = 3
        static let endpoint: UInt16 = 4
        static let persistentKeepaliveInterval: UInt16 = 5
        static let lastHandshakeTime: UInt16 = 6
        static let rxBytes: UInt16 = 7
        static let txBytes: UInt16 = 8
        static let allowedIPs: UInt16 = 9
        static let protocolVersion: UInt16 = 10
        /// `WGPEER_F_REMOVE_ME`, `WGPEER_F_REPLACE_ALLOWEDIPS`, `WGPEER_F_UPDATE_ONLY`.
        static let flagRemoveMe: UInt32 = 1 << 0
        static let flagReplaceAllowedIPs: UInt32 = 1 << 1
        static let flagUpdateOnly: UInt32 = 1 << 2
    }

    /// `enum wgallowedip_attribute`.
    enum AllowedIPAttribute {
        static let family: UInt16 = 1
        static let ipAddress: UInt16 = 2
        static let cidrMask: UInt16 = 3
    }

    /// `AF_INET` / `AF_INET6` as the u16 of `WGALLOWEDIP_A_FAMILY` and of `sa_family`.
    static let addressFamilyInet: UInt16 = 2
    static let addressFamilyInet6: UInt16 = 10
    /// `sizeof(struct sockaddr_in)`, `sizeof(struct sockaddr_in6)`, `sizeof(struct __kernel_timespec)`.
    static let socketAddressInetSize = 16
    static let socketAddressInet6Size = 28
    static let timespecSize = 16

    /// A configuration that cannot be put into a message, or a kernel answer that does not parse. The text says
    /// what and where (peer, attribute, message).
    package struct CodecError: Error, Sendable, Equatable, CustomStringConvertible {
        package var description: String
        package init(_ description: String) { self.description = description }
    }

    // MARK: Requests

    /// The `WG_CMD_GET_DEVICE` dump request for `link` (the command is dump-only: `NLM_F_DUMP`).
    package static func getDeviceRequest(familyID: UInt16, link: String) throws(CodecError) -> NetlinkRequest {
        try checkLinkName(link)
        var request = GenericNetlink.request(
            familyID: familyID, command: Command.getDevice, version: familyVersion,
            flags: NetlinkConstant.flagRequest | NetlinkConstant.flagDump)
        request.addAttribute(DeviceAttribute.ifname, string: link)
        return request
    }

    /// The `WG_CMD_SET_DEVICE` requests that configure `link` with `settings`, in the order they must be sent, each
    /// at most `messageLimit` bytes.
    ///
    /// With `replacePeers` (a new device) the first message carries `WGDEVICE_F_REPLACE_PEERS`, like `wg setconf`;
    /// without it the listed peers are updated in place and `removePeers` removed first (`WGPEER_F_REMOVE_ME`),
    /// like `wg syncconf`, so that the sessions of unchanged peers survive a reload. Exactly what
    /// ``WireGuardUAPI/setRequest(_:replacePeers:removePeers:)`` says to wireguard-go:
    /// - the private key and fwmark are always sent (fwmark 0 clears a mark), the listen port only when set;
    /// - every configured peer gets `WGPEER_F_REPLACE_ALLOWEDIPS` and its keepalive interval (0 turns it off); its
    ///   preshared key only when set (all zeros clears one), its endpoint only when set;
    /// - allowed IPs are sent as networks (host bits cleared).
    ///
    /// What does not fit one message continues in the next, as `wg` does: the device attributes only in the first,
    /// and a peer whose allowed IPs are cut off is repeated at the start of the next message with only its public key
    /// and the rest of its allowed IPs, so the continuation neither replaces the allowed IPs already sent nor touches
    /// its other settings. (Unlike `wg`, a peer of which not even one allowed IP fits moves to the next message whole
    /// instead of being sent as a header alone; the kernel ends up with the same peers either way.) Every message
    /// names the device, since each is a request of its own.
    ///
    /// - Throws: ``CodecError`` for a key that is not 32 bytes, an endpoint that is a name, a keepalive interval
    ///   outside 0...65535, a bad link name, or a `messageLimit` too small for one peer with one allowed IP.
    package static func setDeviceRequests(
        familyID: UInt16, link: String, settings: WireGuardUAPI.DeviceSettings, replacePeers: Bool,
        removePeers: [[UInt8]], messageLimit: Int = defaultMessageLimit
    ) throws(CodecError) -> [NetlinkRequest] {
        try checkLinkName(link)
        try checkKey(settings.privateKey, "private key")
        // Everything is checked and converted before the first byte is laid out.
        var changes: [PeerChange] = []
        if !replacePeers {
            for key in removePeers {
                try checkKey(key, "public key of a peer to remove")
                changes.append(PeerChange(removing: key))
            }
        }
        for peer in settings.peers { changes.append(try PeerChange(configuring: peer)) }

        var requests: [NetlinkRequest] = []
        // The peer the next message starts with, and the allowed IP it starts from: past 0 the peer is a
        // continuation of one cut off in the previous message.
        var next = 0
        var nextAllowedIP = 0
        repeat {
            var request = GenericNetlink.request(
                familyID: familyID, command: Command.setDevice, version: familyVersion,
                flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck)
            request.addAttribute(DeviceAttribute.ifname, string: link)
            if requests.isEmpty {
                request.addAttribute(DeviceAttribute.privateKey, settings.privateKey)
                if let port = settings.listenPort { request.addAttribute(DeviceAttribute.listenPort, integer: port) }
                request.addAttribute(DeviceAttribute.fwmark, integer: settings.fwmark ?? 0)
                if replacePeers {
                    request.addAttribute(DeviceAttribute.flags, integer: DeviceAttribute.flagReplacePeers)
                }
                guard request.count <= messageLimit else {
                    throw CodecError(
                        "WG_CMD_SET_DEVICE \(link): a message of \(messageLimit) bytes cannot hold the device's settings"
                    )
                }
            }
            let start = (next, nextAllowedIP)
            if next < changes.count {
                let peersMark = request.count
                let peers = request.beginNested(DeviceAttribute.peers)
                fill: while next < changes.count {
                    let change = changes[next]
                    let peerMark = request.count
                    let peer = request.beginNested(0)  // array element: type 0, as wg and the kernel write them
                    request.addAttribute(PeerAttribute.publicKey, change.publicKey)
                    if nextAllowedIP == 0 { change.appendSettings(to: &request) }
                    if request.count > messageLimit {
                        request.discard(from: peerMark)
                        break fill
                    }
                    if nextAllowedIP < change.allowedIPs.count {
                        let list = request.beginNested(PeerAttribute.allowedIPs)
                        let firstAllowedIP = nextAllowedIP
                        while nextAllowedIP < change.allowedIPs.count {
                            let entryMark = request.count
                            change.allowedIPs[nextAllowedIP].append(to: &request)
                            if request.count > messageLimit {
                                request.discard(from: entryMark)
                                break
                            }
                            nextAllowedIP += 1
                        }
                        if nextAllowedIP == firstAllowedIP {
                            // Not even one allowed IP fits: the whole peer moves to the next message rather than
                            // being sent as a header alone.
                            request.discard(from: peerMark)
                            break fill
                        }
                        request.endNested(list)
                        if nextAllowedIP < change.allowedIPs.count {
                            request.endNested(peer)  // the rest of its allowed IPs continue in the next message
                            break fill
                        }
                    }
                    request.endNested(peer)
                    next += 1
                    nextAllowedIP = 0
                }
                if request.count == peersMark + NetlinkConstant.attributeHeaderSize {
                    request.discard(from: peersMark)
                } else {
                    request.endNested(peers)
                }
            }
            // The first message always has something to say (the device's settings); a later one that took nothing
            // from the list would repeat itself forever.
            guard requests.isEmpty || (next, nextAllowedIP) != start else {
                throw CodecError(
                    "WG_CMD_SET_DEVICE \(link): a message of \(messageLimit) bytes cannot hold one peer with one allowed IP"
                )
            }
            requests.append(request)
        } while next < changes.count
        return requests
    }

    /// The `WG_CMD_SET_DEVICE` request that changes only one existing peer's endpoint (`WGPEER_F_UPDATE_ONLY`: a
    /// peer that is not there is not created).
    package static func setEndpointRequest(
        familyID: UInt16, link: String, publicKey: [UInt8], endpoint: SocketEndpoint
    ) throws(CodecError) -> NetlinkRequest {
        try checkLinkName(link)
        try checkKey(publicKey, "peer public key")
        let address = try socketAddress(endpoint)
        var request = GenericNetlink.request(
            familyID: familyID, command: Command.setDevice, version: familyVersion,
            flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck)
        request.addAttribute(DeviceAttribute.ifname, string: link)
        let peers = request.beginNested(DeviceAttribute.peers)
        let peer = request.beginNested(0)
        request.addAttribute(PeerAttribute.publicKey, publicKey)
        request.addAttribute(PeerAttribute.endpoint, address)
        request.addAttribute(PeerAttribute.flags, integer: PeerAttribute.flagUpdateOnly)
        request.endNested(peer)
        request.endNested(peers)
        return request
    }

    /// One peer of a set request, checked and converted to wire values.
    private struct PeerChange {
        var publicKey: [UInt8]
        var remove = false
        var presharedKey: [UInt8]?
        /// The `struct sockaddr_in` / `sockaddr_in6`.
        var endpoint: [UInt8]?
        var keepalive: UInt16 = 0
        var allowedIPs: [AllowedIP] = []

        init(removing key: [UInt8]) {
            publicKey = key
            remove = true
        }

        init(configuring peer: WireGuardUAPI.PeerSettings) throws(CodecError) {
            try checkKey(peer.publicKey, "peer public key")
            publicKey = peer.publicKey
            let who = "peer \(WireGuardUAPI.hex(peer.publicKey).prefix(8))…"
            if let psk = peer.presharedKey {
                guard psk.count == keyLength else {
                    throw CodecError("\(who): preshared key is \(psk.count) bytes, not \(keyLength)")
                }
                presharedKey = psk
            }
            if let endpoint = peer.endpoint {
                do throws(CodecError) {
                    self.endpoint = try socketAddress(endpoint)
                } catch {
                    throw CodecError("\(who): \(error)")
                }
            }
            guard let interval = UInt16(exactly: peer.persistentKeepalive) else {
                throw CodecError("\(who): persistent keepalive \(peer.persistentKeepalive) is outside 0...65535 s")
            }
            keepalive = interval
            allowedIPs = peer.allowedIPs.map { AllowedIP($0.network) }
        }

        /// Everything but the public key and the allowed IPs: what a continuation leaves out.
        func appendSettings(to request: inout NetlinkRequest) {
            if remove {
                request.addAttribute(PeerAttribute.flags, integer: PeerAttribute.flagRemoveMe)
                return
            }
            if let presharedKey { request.addAttribute(PeerAttribute.presharedKey, presharedKey) }
            if let endpoint { request.addAttribute(PeerAttribute.endpoint, endpoint) }
            request.addAttribute(PeerAttribute.persistentKeepaliveInterval, integer: keepalive)
            request.addAttribute(PeerAttribute.flags, integer: PeerAttribute.flagReplaceAllowedIPs)
        }
    }

    /// One allowed IP of a set request.
    private struct AllowedIP {
        var prefix: IPPrefix

        init(_ prefix: IPPrefix) { self.prefix = prefix }

        /// The array element: a nest of family, address and prefix length, in wg's order.
        func append(to request: inout NetlinkRequest) {
            let entry = request.beginNested(0)
            request.addAttribute(
                AllowedIPAttribute.family,
                integer: prefix.address.isIPv4
                    ? WireGuardNetlink.addressFamilyInet : WireGuardNetlink.addressFamilyInet6)
            request.addAttribute(AllowedIPAttribute.ipAddress, address: prefix.address)
            request.addAttribute(AllowedIPAttribute.cidrMask, integer: prefix.length)
            request.endNested(entry)
        }
    }

    /// `endpoint` as the `struct sockaddr_in` or `sockaddr_in6` the kernel takes (flow info and scope id 0).
    static func socketAddress(_ endpoint: SocketEndpoint) throws(CodecError) -> [UInt8] {
        guard case .address(let address) = endpoint.host else {
            throw CodecError(
                "endpoint \(WireGuardUAPI.endpointText(endpoint)) is a name; the kernel takes addresses only")
        }
        let port = [UInt8(endpoint.port >> 8), UInt8(endpoint.port & 0xFF)]
        switch address {
        case .v4:
            // sa_family (host order), sin_port, sin_addr, sin_zero[8].
            return hostOrder(addressFamilyInet) + port + address.netlinkBytes + [UInt8](repeating: 0, count: 8)
        case .v6:
            // sa_family, sin6_port, sin6_flowinfo, sin6_addr, sin6_scope_id.
            return hostOrder(addressFamilyInet6) + port + [0, 0, 0, 0] + address.netlinkBytes + [0, 0, 0, 0]
        }
    }

    private static func hostOrder(_ value: UInt16) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }

    private static func checkKey(_ key: [UInt8], _ what: String) throws(CodecError) {
        guard key.count == keyLength else { throw CodecError("\(what) is \(key.count) bytes, not \(keyLength)") }
    }

    /// `WGDEVICE_A_IFNAME` is a NUL-terminated string of at most `IFNAMSIZ - 1` bytes.
    private static func checkLinkName(_ link: String) throws(CodecError) {
        guard !link.isEmpty, link.utf8.count < 16, !link.utf8.contains(0) else {
            throw CodecError("\(link.debugDescription) is not an interface name (1 to 15 bytes)")
        }
    }

    // MARK: The device dump

    /// Parses the messages of a `WG_CMD_GET_DEVICE` dump, in order.
    ///
    /// The kernel puts the device's attributes in the first message only and lists peers over as many messages as
    /// it takes; a peer whose allowed IPs did not fit is repeated at the start of the next message with only its
    /// public key and the rest of its allowed IPs. Consecutive entries with the same public key are therefore one
    /// peer, as `wg`'s `coalesce_peers` has it. Unknown attributes are skipped (newer kernels add some), and so are
    /// the zero-length `WGPEER_A_UNSPEC` pads that `nla_put_u64_64bit` inserts on some architectures.
    ///
    /// Listen port 0 and fwmark 0 read as nil, as ``WireGuardUAPI/parseGetResponse(_:)`` reads wireguard-go; an IPv6
    /// endpoint's scope id is not part of ``WireGuardUAPI/endpointText(_:)`` and is dropped.
    ///
    /// - Throws: ``CodecError`` naming the message, peer and attribute for a truncated attribute, an attribute of the
    ///   wrong size, a peer without a public key, or an endpoint or allowed IP of an unknown family.
    package static func parseDevice(_ messages: [GenericNetlink.Message]) throws(CodecError)
        -> WireGuardUAPI.DeviceStatus
    {
        var status = WireGuardUAPI.DeviceStatus()
        for (index, message) in messages.enumerated() {
            let place = "WG_CMD_GET_DEVICE message \(index + 1) of \(messages.count)"
            guard message.command == Command.getDevice else {
                throw CodecError("\(place): command \(message.command), not WG_CMD_GET_DEVICE")
            }
            let attributes = try parse(message.attributes, place)
            for attribute in attributes.all {
                switch attribute.type {
                case DeviceAttribute.listenPort:
                    let port = try integer(UInt16.self, attribute, "\(place): WGDEVICE_A_LISTEN_PORT")
                    status.listenPort = port == 0 ? nil : port
                case DeviceAttribute.fwmark:
                    let mark = try integer(UInt32.self, attribute, "\(place): WGDEVICE_A_FWMARK")
                    status.fwmark = mark == 0 ? nil : mark
                case DeviceAttribute.peers:
                    let list = try parse(attribute.payload, "\(place): WGDEVICE_A_PEERS")
                    for (peerIndex, entry) in list.all.enumerated() {
                        let peer = try parsePeer(entry.payload, "\(place): peer \(peerIndex + 1)")
                        if let last = status.peers.last, last.publicKey == peer.publicKey {
                            status.peers[status.peers.count - 1].allowedIPs += peer.allowedIPs
                        } else {
                            status.peers.append(peer)
                        }
                    }
                default:
                    break
                }
            }
        }
        return status
    }

    private static func parsePeer(_ payload: [UInt8], _ place: String) throws(CodecError) -> WireGuardUAPI.PeerStatus {
        let attributes = try parse(payload, place)
        guard let key = attributes[PeerAttribute.publicKey] else {
            throw CodecError("\(place): no WGPEER_A_PUBLIC_KEY")
        }
        guard key.count == keyLength else {
            throw CodecError("\(place): WGPEER_A_PUBLIC_KEY is \(key.count) bytes, not \(keyLength)")
        }
        var peer = WireGuardUAPI.PeerStatus(publicKey: key)
        let place = "\(place) (\(WireGuardUAPI.hex(key).prefix(8))…)"
        for attribute in attributes.all {
            switch attribute.type {
            case PeerAttribute.presharedKey:
                // Not part of the status; only checked, like every other attribute.
                guard attribute.payload.count == keyLength else {
                    throw CodecError("\(place): WGPEER_A_PRESHARED_KEY is \(attribute.payload.count) bytes")
                }
            case PeerAttribute.endpoint:
                peer.endpoint = try endpointText(attribute.payload, "\(place): WGPEER_A_ENDPOINT")
            case PeerAttribute.persistentKeepaliveInterval:
                peer.persistentKeepalive = Int(
                    try integer(UInt16.self, attribute, "\(place): WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL"))
            case PeerAttribute.lastHandshakeTime:
                // struct __kernel_timespec: s64 tv_sec, s64 tv_nsec; all zero before the first handshake.
                guard attribute.payload.count == timespecSize,
                    let seconds = NetlinkBytes(attribute.payload).i64(at: 0)
                else {
                    throw CodecError(
                        "\(place): WGPEER_A_LAST_HANDSHAKE_TIME is \(attribute.payload.count) bytes, not \(timespecSize)"
                    )
                }
                peer.lastHandshakeSeconds = seconds
            case PeerAttribute.rxBytes:
                peer.rxBytes = try integer(UInt64.self, attribute, "\(place): WGPEER_A_RX_BYTES")
            case PeerAttribute.txBytes:
                peer.txBytes = try integer(UInt64.self, attribute, "\(place): WGPEER_A_TX_BYTES")
            case PeerAttribute.allowedIPs:
                let list = try parse(attribute.payload, "\(place): WGPEER_A_ALLOWEDIPS")
                for (entryIndex, entry) in list.all.enumerated() {
                    peer.allowedIPs.append(
                        try allowedIPText(entry.payload, "\(place): allowed IP \(entryIndex + 1)"))
                }
            default:
                break
            }
        }
        return peer
    }

    /// `10.0.0.0/24`, `fd10::/64`: what wireguard-go's `allowed_ip=` says.
    private static func allowedIPText(_ payload: [UInt8], _ place: String) throws(CodecError) -> String {
        let attributes = try parse(payload, place)
        guard let familyAttribute = attributes.all.first(where: { $0.type == AllowedIPAttribute.family }),
            let addressBytes = attributes[AllowedIPAttribute.ipAddress],
            let cidrAttribute = attributes.all.first(where: { $0.type == AllowedIPAttribute.cidrMask })
        else {
            throw CodecError("\(place): needs WGALLOWEDIP_A_FAMILY, WGALLOWEDIP_A_IPADDR and WGALLOWEDIP_A_CIDR_MASK")
        }
        let family = try integer(UInt16.self, familyAttribute, "\(place): WGALLOWEDIP_A_FAMILY")
        let length = try integer(UInt8.self, cidrAttribute, "\(place): WGALLOWEDIP_A_CIDR_MASK")
        let expectedSize: Int
        switch family {
        case addressFamilyInet: expectedSize = 4
        case addressFamilyInet6: expectedSize = 16
        default: throw CodecError("\(place): address family \(family) is neither AF_INET nor AF_INET6")
        }
        guard addressBytes.count == expectedSize, let address = IPAddress(netlinkBytes: addressBytes) else {
            throw CodecError("\(place): WGALLOWEDIP_A_IPADDR is \(addressBytes.count) bytes for family \(family)")
        }
        guard let prefix = IPPrefix(address: address, length: Int(length)) else {
            throw CodecError("\(place): prefix length \(length) is too long for \(address)")
        }
        return prefix.description
    }

    /// A `struct sockaddr_in` / `sockaddr_in6` as ``WireGuardUAPI/endpointText(_:)`` writes it.
    static func endpointText(_ payload: [UInt8], _ place: String) throws(CodecError) -> String {
        let bytes = NetlinkBytes(payload)
        guard let family = bytes.u16(at: 0) else {
            throw CodecError("\(place): \(payload.count) bytes cannot hold a socket address")
        }
        let addressRange: Range<Int>
        switch family {
        case addressFamilyInet where payload.count == socketAddressInetSize: addressRange = 4..<8
        case addressFamilyInet6 where payload.count == socketAddressInet6Size: addressRange = 8..<24
        case addressFamilyInet, addressFamilyInet6:
            throw CodecError("\(place): \(payload.count) bytes is the wrong size for address family \(family)")
        default:
            throw CodecError("\(place): address family \(family) is neither AF_INET nor AF_INET6")
        }
        let port = UInt16(payload[2]) << 8 | UInt16(payload[3])
        guard let address = IPAddress(netlinkBytes: Array(payload[addressRange])) else {
            throw CodecError("\(place): bad address")
        }
        return WireGuardUAPI.endpointText(SocketEndpoint(address: address, port: port))
    }

    /// Attributes that must parse to the last byte.
    private static func parse(_ payload: [UInt8], _ place: String) throws(CodecError) -> NetlinkAttributes {
        let attributes = NetlinkAttributes(payload)
        guard !attributes.isTruncated else {
            throw CodecError("\(place): truncated attribute (a length runs past the \(payload.count) bytes there)")
        }
        return attributes
    }

    /// A host-order integer attribute of exactly its type's size.
    private static func integer<T: FixedWidthInteger>(_ type: T.Type, _ attribute: NetlinkAttribute, _ place: String)
        throws(CodecError) -> T
    {
        guard attribute.payload.count == MemoryLayout<T>.size else {
            throw CodecError("\(place) is \(attribute.payload.count) bytes, not \(MemoryLayout<T>.size)")
        }
        return attribute.payload.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }
}
