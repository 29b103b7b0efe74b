/// Which kind of fragment a packet is, for statistics: the data plane does not reassemble.
///
/// Only the first fragment carries the ports (RFC 791; RFC 8200 section 4.5), so the kinds separate
/// fragments we could at least attribute to a flow from those we cannot.
public enum FragmentKind: Int, CaseIterable, Sendable, Hashable {
    /// IPv4, offset 0 with More Fragments set.
    case ipv4First
    /// IPv4 with a non-zero offset.
    case ipv4Subsequent
    /// IPv6 with a Fragment header and offset 0 (including "atomic" fragments, RFC 8200 section 4.5).
    case ipv6First
    /// IPv6 with a Fragment header and a non-zero offset.
    case ipv6Subsequent
}

extension IPPacketView {
    /// The fragment kind, or nil for a whole packet.
    @inlinable
    public var fragmentKind: FragmentKind? {
        guard isFragment else { return nil }
        switch (version == 4, fragmentOffset == 0) {
        case (true, true): return .ipv4First
        case (true, false): return .ipv4Subsequent
        case (false, true): return .ipv6First
        case (false, false): return .ipv6Subsequent
        }
    }
}

/// Per-kind counts of the fragments the TUN worker dropped; plain integers, no allocation, one per worker
/// thread (merge with `+=` for reporting).
public struct FragmentCounters: Sendable, Hashable {
    public var ipv4First: UInt64 = 0
    public var ipv4Subsequent: UInt64 = 0
    public var ipv6First: UInt64 = 0
    public var ipv6Subsequent: UInt64 = 0

    public init() {}

    /// Counts `packet` if it is a fragment; returns its kind, or nil (and counts nothing) for a whole packet.
    @inlinable
    @discardableResult
    public mutating func record(_ packet: IPPacketView) -> FragmentKind? {
        guard let kind = packet.fragmentKind else { return nil }
        self[kind] &+= 1
        return kind
    }

    /// The count for one kind.
    @inlinable
    public subscript(kind: FragmentKind) -> UInt64 {
        get {
            switch kind {
            case .ipv4First: return ipv4First
            case .ipv4Subsequent: return ipv4Subsequent
            case .ipv6First: return ipv6First
            case .ipv6Subsequent: return ipv6Subsequent
            }
        }
        set {
            switch kind {
            case .ipv4First: ipv4First = newValue
            case .ipv4Subsequent: ipv4Subsequent = newValue
            case .ipv6First: ipv6First = newValue
            case .ipv6Subsequent: ipv6Subsequent = newValue
            }
        }
    }

    /// All fragments counted.
    public var total: UInt64 {
        ipv4First &+ ipv4Subsequent &+ ipv6First &+ ipv6Subsequent
    }

    /// Adds another worker's counts.
    public static func += (lhs: inout FragmentCounters, rhs: FragmentCounters) {
        for kind in FragmentKind.allCases { lhs[kind] &+= rhs[kind] }
    }
}
