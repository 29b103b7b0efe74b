import SluiceNet

/// One WireGuard interface from `wireguard:`, brought up by the keepalive worker the way wg-quick would.
public struct WireGuardLink: Sendable, Equatable, Codable {
    /// Where the interface's private key comes from.
    public enum PrivateKey: Sendable, Equatable, Codable {
        case key(WireGuardKey)
        /// A file holding the base64 key, read by the keepalive worker (so the key need not sit in the config).
        case file(String)
    }

    /// Which routing table the peers' allowed-ips go to.
    public enum Table: Sendable, Equatable, Codable {
        /// No routes are added (use `route-metric` for a low-priority default route if wanted).
        case off
        /// wg-quick's behaviour: the main table, or a fwmark table for a default route.
        case auto
        case id(UInt32)
    }

    public var name: String
    public var privateKey: PrivateKey
    public var addresses: [IPPrefix] = []
    public var listenPort: UInt16?
    /// nil: computed from the egress MTU when the link comes up.
    public var mtu: Int?
    public var fwmark: UInt32?
    public var table: Table = .auto
    public var routeMetric: Int?
    public var peers: [WireGuardPeer] = []

    public init(name: String, privateKey: PrivateKey) {
        self.name = name
        self.privateKey = privateKey
    }
}

/// One `peers:` entry of a WireGuard link.
public struct WireGuardPeer: Sendable, Equatable, Codable {
    public var publicKey: WireGuardKey
    public var presharedKey: WireGuardKey?
    /// The peer's address; the host may be a name, re-resolved when handshakes go stale.
    public var endpoint: SocketEndpoint?
    public var allowedIPs: [IPPrefix] = []
    /// Seconds between keepalive packets; nil or 0 means off.
    public var persistentKeepalive: Int?

    public init(publicKey: WireGuardKey) {
        self.publicKey = publicKey
    }
}

/// A 32-byte WireGuard key (Curve25519 key or preshared key), held as its 32 bytes and written as base64.
public struct WireGuardKey: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    public private(set) var bytes: [UInt8]

    /// Decodes standard base64 of exactly 32 bytes (44 characters ending in one '='); nil otherwise.
    public init?(base64 text: some StringProtocol) {
        guard let bytes = Base64.decode(text), bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    /// The base64 form, as `wg` prints it.
    public var description: String {
        Base64.encode(bytes)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let key = WireGuardKey(base64: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "invalid WireGuard key")
        }
        self = key
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Standard base64 (RFC 4648 section 4) with mandatory padding; small enough not to need Foundation.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = UInt32(bytes[index])
            let b1 = index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0
            let b2 = index + 2 < bytes.count ? UInt32(bytes[index + 2]) : 0
            let triple = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(triple >> 18 & 63)])
            out.append(alphabet[Int(triple >> 12 & 63)])
            out.append(index + 1 < bytes.count ? alphabet[Int(triple >> 6 & 63)] : UInt8(ascii: "="))
            out.append(index + 2 < bytes.count ? alphabet[Int(triple & 63)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let input = Array(text.utf8)
        guard !input.isEmpty, input.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        var index = 0
        while index < input.count {
            var quad: UInt32 = 0
            var padding = 0
            for offset in 0..<4 {
                let byte = input[index + offset]
                let value: UInt32
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
                case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a")) + 26
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0")) + 52
                case UInt8(ascii: "+"): value = 62
                case UInt8(ascii: "/"): value = 63
                case UInt8(ascii: "="):
                    // Padding only in the last quad, only in its last two places, and nothing after it.
                    guard index + 4 == input.count, offset >= 2 else { return nil }
                    padding += 1
                    value = 0
                default:
                    return nil
                }
                if padding > 0 && byte != UInt8(ascii: "=") { return nil }
                quad = quad << 6 | value
            }
            out.append(UInt8(truncatingIfNeeded: quad >> 16))
            if padding < 2 { out.append(UInt8(truncatingIfNeeded: quad >> 8)) }
            if padding < 1 { out.append(UInt8(truncatingIfNeeded: quad)) }
            index += 4
        }
        return out
    }
}
