/// An address with a prefix length, as in `10.0.0.0/8`, `fd00::/8` or an interface address `172.19.0.1/30`.
///
/// The address is kept exactly as written, because an interface address such as `172.19.0.1/30` needs its host
/// part; `network` gives the normalised form (host bits cleared), and `contains(_:)` and `overlaps(_:)` always
/// compare networks. Two prefixes are equal only when both address and length are equal, so `10.0.0.1/8` and
/// `10.0.0.0/8` differ as values but contain the same addresses.
public struct IPPrefix: Hashable, Sendable {
    /// The address as written (host bits may be set).
    public var address: IPAddress
    /// The prefix length: 0...32 for IPv4, 0...128 for IPv6.
    public var length: UInt8

    /// Creates a prefix; returns nil when `length` exceeds the address family's width.
    public init?(address: IPAddress, length: Int) {
        guard length >= 0, length <= address.bitWidth else { return nil }
        self.address = address
        self.length = UInt8(length)
    }

    /// Parses `ADDRESS/LENGTH`, or a bare address meaning a host prefix (/32 or /128). The length must be plain
    /// decimal without leading zeros or sign.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        var length = address.bitWidth
        if parts.count == 2 {
            let lengthText = parts[1]
            guard !lengthText.isEmpty, lengthText.count <= 3,
                lengthText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                lengthText == "0" || lengthText.first != "0",
                let value = Int(lengthText)
            else { return nil }
            length = value
        }
        self.init(address: address, length: length)
    }

    /// A host prefix (/32 or /128) holding exactly `address`.
    public init(host address: IPAddress) {
        self.address = address
        self.length = UInt8(address.bitWidth)
    }

    /// The prefix with host bits cleared.
    public var network: IPPrefix {
        var copy = self
        copy.address = Self.mask(address, length: Int(length))
        return copy
    }

    /// Whether the host bits of `address` are all zero.
    public var isNetworkAddress: Bool {
        network.address == address
    }

    /// Whether `candidate` falls inside this prefix. Addresses of the other family never match.
    @inlinable
    public func contains(_ candidate: IPAddress) -> Bool {
        switch (address, candidate) {
        case (.v4(let mine), .v4(let theirs)):
            if length == 0 { return true }
            let mask = UInt32.max << (32 - UInt32(length))
            return mine.rawValue & mask == theirs.rawValue & mask
        case (.v6(let mine), .v6(let theirs)):
            let (maskHigh, maskLow) = Self.v6Mask(Int(length))
            return mine.high & maskHigh == theirs.high & maskHigh && mine.low & maskLow == theirs.low & maskLow
        default:
            return false
        }
    }

    /// Whether the two prefixes share at least one address (one contains the other's network).
    public func overlaps(_ other: IPPrefix) -> Bool {
        guard address.isIPv4 == other.address.isIPv4 else { return false }
        return length <= other.length ? contains(other.address) : other.contains(address)
    }

    @usableFromInline
    static func v6Mask(_ length: Int) -> (UInt64, UInt64) {
        if length == 0 { return (0, 0) }
        if length <= 64 { return (UInt64.max << UInt64(64 - length), 0) }
        if length == 128 { return (UInt64.max, UInt64.max) }
        return (UInt64.max, UInt64.max << UInt64(128 - length))
    }

    static func mask(_ address: IPAddress, length: Int) -> IPAddress {
        switch address {
        case .v4(let v4):
            let mask: UInt32 = length == 0 ? 0 : UInt32.max << UInt32(32 - length)
            return .v4(IPv4Address(rawValue: v4.rawValue & mask))
        case .v6(let v6):
            let (maskHigh, maskLow) = v6Mask(length)
            return .v6(IPv6Address(high: v6.high & maskHigh, low: v6.low & maskLow))
        }
    }
}

extension IPPrefix: CustomStringConvertible, LosslessStringConvertible {
    /// `ADDRESS/LENGTH` with the address in canonical form and always with an explicit length.
    public var description: String {
        "\(address)/\(length)"
    }
}

extension IPPrefix: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = IPPrefix(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "invalid IP prefix \"\(text)\"")
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
