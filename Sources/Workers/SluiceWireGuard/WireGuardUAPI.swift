import SluiceNet

/// The text protocol of a userspace WireGuard device (wireguard-go's UAPI socket, `/var/run/wireguard/NAME.sock`),
/// as described at https://www.wireguard.com/xplatform/: `set=1` and `get=1` requests of `key=value` lines ended by
/// an empty line, answered with `errno=N`. Keys are lowercase hex on this protocol (base64 in configs).
///
/// Pure: builds and parses text only; ``UAPIClient`` does the socket.
package enum WireGuardUAPI {
    /// What a `set=1` request configures for one peer.
    package struct PeerSettings: Sendable, Equatable {
        package var publicKey: [UInt8]
        package var presharedKey: [UInt8]?
        /// A resolved endpoint (`IP:PORT`, `[IPv6]:PORT`); nil leaves the peer's roaming endpoint alone.
        package var endpoint: SocketEndpoint?
        package var persistentKeepalive: Int
        package var allowedIPs: [IPPrefix]

        package init(
            publicKey: [UInt8], presharedKey: [UInt8]? = nil, endpoint: SocketEndpoint? = nil,
            persistentKeepalive: Int = 0, allowedIPs: [IPPrefix] = []
        ) {
            self.publicKey = publicKey
            self.presharedKey = presharedKey
            self.endpoint = endpoint
            self.persistentKeepalive = persistentKeepalive
            self.allowedIPs = allowedIPs
        }
    }

    /// What a `set=1` request configures for the device: everything, replacing all peers (like `wg setconf`).
    package struct DeviceSettings: Sendable, Equatable {
        package var privateKey: [UInt8]
        /// nil: leave the port as it is (random on a new device).
        package var listenPort: UInt16?
        /// nil: no mark (sent as 0, which clears an earlier one).
        package var fwmark: UInt32?
        package var peers: [PeerSettings]

        package init(privateKey: [UInt8], listenPort: UInt16? = nil, fwmark: UInt32? = nil, peers: [PeerSettings] = [])
        {
            self.privateKey = privateKey
            self.listenPort = listenPort
            self.fwmark = fwmark
            self.peers = peers
        }
    }

    /// One peer as `get=1` reports it.
    package struct PeerStatus: Sendable, Equatable {
        package var publicKey: [UInt8]
        package var endpoint: String?
        /// Seconds since the epoch of the last handshake; 0 when there has been none.
        package var lastHandshakeSeconds: Int64 = 0
        package var rxBytes: UInt64 = 0
        package var txBytes: UInt64 = 0
        package var persistentKeepalive: Int = 0
        package var allowedIPs: [String] = []

        package init(publicKey: [UInt8]) { self.publicKey = publicKey }

        /// Seconds since the last handshake at `now` (epoch seconds); nil when there has been none.
        package func handshakeAge(now: Int64) -> Int64? {
            lastHandshakeSeconds == 0 ? nil : max(0, now - lastHandshakeSeconds)
        }
    }

    /// The device as `get=1` reports it.
    package struct DeviceStatus: Sendable, Equatable {
        package var listenPort: UInt16?
        package var fwmark: UInt32?
        package var peers: [PeerStatus] = []

        package init() {}
    }

    /// A protocol-level failure: a bad line, or a nonzero `errno=` answer.
    package struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
        package var description: String
        package init(_ description: String) { self.description = description }
    }

    /// The request text for `settings`, ending with the empty line.
    ///
    /// With `replacePeers` (a new device) all peers are replaced, like `wg setconf`. Without it (a running or adopted
    /// device) the listed peers are updated in place and `removePeers` removed, like `wg syncconf`, so that the
    /// sessions of unchanged peers survive a reload.
    package static func setRequest(_ settings: DeviceSettings, replacePeers: Bool = true, removePeers: [[UInt8]] = [])
        -> String
    {
        var lines = ["set=1", "private_key=\(hex(settings.privateKey))"]
        if let port = settings.listenPort { lines.append("listen_port=\(port)") }
        lines.append("fwmark=\(settings.fwmark ?? 0)")
        if replacePeers { lines.append("replace_peers=true") }
        for key in removePeers where !replacePeers {
            lines.append("public_key=\(hex(key))")
            lines.append("remove=true")
        }
        for peer in settings.peers {
            lines.append("public_key=\(hex(peer.publicKey))")
            if let psk = peer.presharedKey { lines.append("preshared_key=\(hex(psk))") }
            if let endpoint = peer.endpoint { lines.append("endpoint=\(endpointText(endpoint))") }
            lines.append("persistent_keepalive_interval=\(peer.persistentKeepalive)")
            lines.append("replace_allowed_ips=true")
            for prefix in peer.allowedIPs { lines.append("allowed_ip=\(prefix.network)") }
        }
        return lines.joined(separator: "\n") + "\n\n"
    }

    /// A request that changes only one peer's endpoint (after re-resolving its name).
    package static func setEndpointRequest(publicKey: [UInt8], endpoint: SocketEndpoint) -> String {
        "set=1\npublic_key=\(hex(publicKey))\nupdate_only=true\nendpoint=\(endpointText(endpoint))\n\n"
    }

    package static let getRequest = "get=1\n\n"

    /// `1.2.3.4:51820` or `[fd00::1]:51820`; a name is written as is (the device would refuse it).
    package static func endpointText(_ endpoint: SocketEndpoint) -> String {
        switch endpoint.host {
        case .address(.v6(let v6)): "[\(v6)]:\(endpoint.port)"
        case .address(let address): "\(address):\(endpoint.port)"
        case .name(let name): "\(name):\(endpoint.port)"
        }
    }

    /// The `errno=` value of an answer to `set=1`; throws when it is missing or the text is not an answer.
    package static func parseSetResponse(_ text: String) throws(ProtocolError) {
        let fields = try pairs(text)
        guard let last = fields.last, last.key == "errno", let code = Int32(last.value) else {
            throw ProtocolError("answer without errno=: \(text.prefix(80).debugDescription)")
        }
        guard code == 0 else { throw ProtocolError("the device refused the configuration (errno=\(code))") }
    }

    /// Parses the answer to `get=1`. Unknown keys are skipped (newer devices add some).
    package static func parseGetResponse(_ text: String) throws(ProtocolError) -> DeviceStatus {
        var status = DeviceStatus()
        var sawErrno = false
        for (key, value) in try pairs(text) {
            if key == "public_key" {
                guard let bytes = unhex(value), bytes.count == 32 else {
                    throw ProtocolError("bad public_key \(value.prefix(8))…")
                }
                status.peers.append(PeerStatus(publicKey: bytes))
                continue
            }
            if key == "errno" {
                guard let code = Int32(value) else { throw ProtocolError("bad errno=\(value)") }
                guard code == 0 else { throw ProtocolError("get failed (errno=\(code))") }
                sawErrno = true
                continue
            }
            if status.peers.isEmpty {
                switch key {
                case "listen_port": status.listenPort = UInt16(value)
                case "fwmark": status.fwmark = UInt32(value).flatMap { $0 == 0 ? nil : $0 }
                default: break
                }
                continue
            }
            let index = status.peers.count - 1
            switch key {
            case "endpoint": status.peers[index].endpoint = String(value)
            case "last_handshake_time_sec": status.peers[index].lastHandshakeSeconds = Int64(value) ?? 0
            case "rx_bytes": status.peers[index].rxBytes = UInt64(value) ?? 0
            case "tx_bytes": status.peers[index].txBytes = UInt64(value) ?? 0
            case "persistent_keepalive_interval": status.peers[index].persistentKeepalive = Int(value) ?? 0
            case "allowed_ip": status.peers[index].allowedIPs.append(String(value))
            default: break
            }
        }
        guard sawErrno else { throw ProtocolError("answer without errno=") }
        return status
    }

    private static func pairs(_ text: String) throws(ProtocolError) -> [(key: Substring, value: Substring)] {
        var out: [(key: Substring, value: Substring)] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let equals = line.firstIndex(of: "=") else {
                throw ProtocolError("line without '=': \(line.prefix(40))")
            }
            out.append((line[..<equals], line[line.index(after: equals)...]))
        }
        return out
    }

    /// Lowercase hex.
    package static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Hex of either case; nil for odd length or a non-hex character.
    package static func unhex(_ text: some StringProtocol) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        var index = 0
        while index < chars.count {
            guard let high = nibble(chars[index]), let low = nibble(chars[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}
