/// An IPv4 address held as one `UInt32` in host byte order (`1.2.3.4` is `0x01020304`).
///
/// This type sits on the packet hot path, so it is a plain value with no allocation. Parsing is strict
/// dotted-quad only: exactly four decimal octets, each 0...255, and no leading zeros (`01.2.3.4` is rejected
/// because BSD `inet_aton` would read it as octal, and we refuse to guess which meaning the user had).
public struct IPv4Address: Hashable, Sendable, Comparable {
    /// The address in host byte order.
    public var rawValue: UInt32

    /// Creates an address from its host-byte-order integer value.
    @inlinable
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// Creates an address from its four octets in network order (`IPv4Address(10, 0, 0, 1)`).
    @inlinable
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        self.rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses strict dotted-quad text; returns nil for anything else.
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard let value = bytes.withUnsafeBufferPointer({ Self.parse($0) }) else {
            return nil
        }
        self.rawValue = value
    }

    /// The all-zero address `0.0.0.0`.
    public static let any = IPv4Address(rawValue: 0)
    /// The loopback address `127.0.0.1`.
    public static let loopback = IPv4Address(127, 0, 0, 1)

    /// The four octets in network order.
    @inlinable
    public var octets: (UInt8, UInt8, UInt8, UInt8) {
        (
            UInt8(truncatingIfNeeded: rawValue >> 24), UInt8(truncatingIfNeeded: rawValue >> 16),
            UInt8(truncatingIfNeeded: rawValue >> 8), UInt8(truncatingIfNeeded: rawValue)
        )
    }

    @inlinable
    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    /// Parses a dotted quad from raw UTF-8 bytes; shared with the IPv6 parser for the embedded-IPv4 form.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32? {
        var result: UInt32 = 0
        var octet: UInt32 = 0
        var digits = 0
        var dots = 0
        var leadingZero = false
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                // A second digit after a leading zero is the octal-looking form we refuse.
                if leadingZero { return nil }
                if digits == 0 && byte == UInt8(ascii: "0") { leadingZero = true }
                octet = octet * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                if digits > 3 || octet > 255 { return nil }
            case UInt8(ascii: "."):
                if digits == 0 || dots == 3 { return nil }
                result = result << 8 | octet
                octet = 0
                digits = 0
                dots += 1
                leadingZero = false
            default:
                return nil
            }
        }
        guard dots == 3, digits > 0 else { return nil }
        return result << 8 | octet
    }
}

extension IPv4Address: CustomStringConvertible, LosslessStringConvertible {
    /// Dotted-quad text, e.g. `192.168.1.1`.
    public var description: String {
        let (a, b, c, d) = octets
        return "\(a).\(b).\(c).\(d)"
    }
}

extension IPv4Address: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = IPv4Address(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "invalid IPv4 address \"\(text)\"")
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
