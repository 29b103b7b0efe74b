/// An IP address of either family, as written in config files and carried in rules and NAT entries.
public enum IPAddress: Hashable, Sendable, Comparable {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Parses IPv4 or IPv6 text (no brackets, no zone id); returns nil when neither parser accepts it.
    public init?(_ text: some StringProtocol) {
        // A ':' can only appear in IPv6 text, so one scan picks the parser.
        if text.utf8.contains(UInt8(ascii: ":")) {
            guard let v6 = IPv6Address(text) else { return nil }
            self = .v6(v6)
        } else {
            guard let v4 = IPv4Address(text) else { return nil }
            self = .v4(v4)
        }
    }

    /// Whether this is an IPv4 address.
    public var isIPv4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// The width of the address in bits: 32 or 128.
    public var bitWidth: Int {
        switch self {
        case .v4: return 32
        case .v6: return 128
        }
    }

    /// IPv4 sorts before IPv6; within a family, numeric order.
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case (.v4(let a), .v4(let b)): return a < b
        case (.v6(let a), .v6(let b)): return a < b
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        }
    }
}

extension IPAddress: CustomStringConvertible, LosslessStringConvertible {
    public var description: String {
        switch self {
        case .v4(let address): return address.description
        case .v6(let address): return address.description
        }
    }
}

extension IPAddress: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = IPAddress(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "invalid IP address \"\(text)\"")
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension IPAddress {
    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        switch self {
        case .v4(let a): a.rawValue >> 24 == 127
        case .v6(let a): a == .loopback
        }
    }
}

extension IPAddress {
    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how a dual-stack socket shows an IPv4 peer) as the IPv4
    /// address it carries; any other address as it is.
    public var unmapped: IPAddress {
        if case .v6(let v6) = self, let v4 = v6.ipv4Mapped { return .v4(v4) }
        return self
    }
}

extension IPAddress {
    /// This address in the IPv4 family (an IPv4-mapped IPv6 address unwrapped) or in the IPv6 family (an IPv4
    /// address as IPv4-mapped); unchanged when it has no form there. Dual-stack sockets report IPv4 peers mapped.
    public func mapped(toIPv4: Bool) -> IPAddress {
        switch self {
        case .v6(let v6): if toIPv4, let v4 = v6.ipv4Mapped { return .v4(v4) }
        case .v4(let v4): if !toIPv4 { return .v6(IPv6Address(high: 0, low: 0xFFFF_0000_0000 | UInt64(v4.rawValue))) }
        }
        return self
    }
}
