/// An IPv6 address held as two `UInt64` halves in host byte order (`high` holds bytes 0...7).
///
/// Plain storage keeps it cheap on the packet path. Parsing accepts RFC 4291 text forms (`::`, compressed
/// groups, a trailing embedded IPv4 such as `::ffff:1.2.3.4`) and rejects zone ids (`fe80::1%eth0`): a zone
/// is a property of a socket address, not of the address, and the config has nowhere meaningful to put it.
/// `description` renders RFC 5952 canonical text.
public struct IPv6Address: Hashable, Sendable, Comparable {
    /// Bytes 0...7 of the address, big-endian interpretation.
    public var high: UInt64
    /// Bytes 8...15 of the address, big-endian interpretation.
    public var low: UInt64

    /// Creates an address from its two halves.
    @inlinable
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Creates an address from its eight 16-bit groups, first group first.
    public init(groups: [UInt16]) {
        precondition(groups.count == 8, "an IPv6 address has eight groups")
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<4 { high = high << 16 | UInt64(groups[index]) }
        for index in 4..<8 { low = low << 16 | UInt64(groups[index]) }
        self.init(high: high, low: low)
    }

    /// Parses IPv6 text; returns nil for anything that is not a valid address (including zone ids).
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard let value = bytes.withUnsafeBufferPointer({ Self.parse($0) }) else { return nil }
        self = value
    }

    /// The unspecified address `::`.
    public static let any = IPv6Address(high: 0, low: 0)
    /// The loopback address `::1`.
    public static let loopback = IPv6Address(high: 0, low: 1)

    /// The eight 16-bit groups, first group first.
    public var groups: [UInt16] {
        var result = [UInt16](repeating: 0, count: 8)
        for index in 0..<4 {
            result[index] = UInt16(truncatingIfNeeded: high >> (48 - 16 * UInt64(index)))
            result[index + 4] = UInt16(truncatingIfNeeded: low >> (48 - 16 * UInt64(index)))
        }
        return result
    }

    /// The embedded IPv4 address when this is an IPv4-mapped address (`::ffff:a.b.c.d`).
    public var ipv4Mapped: IPv4Address? {
        guard high == 0, low >> 32 == 0xffff else { return nil }
        return IPv4Address(rawValue: UInt32(truncatingIfNeeded: low))
    }

    @inlinable
    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    private static func hexValue(_ byte: UInt8) -> UInt16? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt16(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt16(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt16(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> IPv6Address? {
        let colon = UInt8(ascii: ":")
        guard bytes.count >= 2, bytes.count <= 45 else { return nil }
        var head: [UInt16] = []  // groups before "::" (or all groups when there is none)
        var tail: [UInt16] = []  // groups after "::"
        var sawDoubleColon = false
        var index = 0
        // A leading ':' is only legal as the start of "::".
        if bytes[0] == colon {
            guard bytes[1] == colon else { return nil }
            sawDoubleColon = true
            index = 2
            if index == bytes.count { return .any }
        }
        while index < bytes.count {
            // Read one group: up to four hex digits, or a dotted quad in the last position.
            let start = index
            var value: UInt16 = 0
            var digits = 0
            while index < bytes.count, let digit = hexValue(bytes[index]) {
                value = value << 4 | digit
                digits += 1
                index += 1
                if digits > 4 { return nil }
            }
            if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
                // Embedded IPv4: must run to the end of the text and fill the last two groups.
                guard let v4 = IPv4Address.parse(UnsafeBufferPointer(rebasing: bytes[start...])) else { return nil }
                let groups = [UInt16(truncatingIfNeeded: v4 >> 16), UInt16(truncatingIfNeeded: v4)]
                if sawDoubleColon { tail += groups } else { head += groups }
                index = bytes.count
                break
            }
            guard digits > 0 else { return nil }
            if sawDoubleColon { tail.append(value) } else { head.append(value) }
            if index == bytes.count { break }
            guard bytes[index] == colon else { return nil }  // catches '%' zone ids and stray characters
            index += 1
            if index < bytes.count && bytes[index] == colon {
                if sawDoubleColon { return nil }
                sawDoubleColon = true
                index += 1
                if index == bytes.count { break }
            } else if index == bytes.count {
                return nil  // a trailing single ':'
            }
        }
        let count = head.count + tail.count
        if sawDoubleColon {
            // "::" stands for at least one zero group.
            guard count <= 7 else { return nil }
        } else {
            guard count == 8 else { return nil }
        }
        let groups = head + [UInt16](repeating: 0, count: 8 - count) + tail
        return IPv6Address(groups: groups)
    }
}

extension IPv6Address: CustomStringConvertible, LosslessStringConvertible {
    /// RFC 5952 canonical text: lowercase hex without leading zeros, the longest run of two or more zero groups
    /// (the first on a tie) shortened to `::`, and IPv4-mapped addresses in mixed notation (`::ffff:1.2.3.4`).
    public var description: String {
        if let v4 = ipv4Mapped { return "::ffff:\(v4)" }
        let groups = self.groups
        var bestStart = -1
        var bestLength = 0
        var runStart = -1
        for index in 0...8 {
            if index < 8 && groups[index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                let length = index - runStart
                if length > bestLength {
                    bestStart = runStart
                    bestLength = length
                }
                runStart = -1
            }
        }
        if bestLength < 2 { bestStart = -1 }
        var text = ""
        var index = 0
        while index < 8 {
            if index == bestStart {
                text += "::"
                index += bestLength
                continue
            }
            if !text.isEmpty && !text.hasSuffix(":") { text += ":" }
            text += String(groups[index], radix: 16)
            index += 1
        }
        return text
    }
}

extension IPv6Address: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = IPv6Address(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "invalid IPv6 address \"\(text)\"")
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
