/// IPv4 or IPv6: the family of an address, a socket, a route or a rule.
public enum IPFamily: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case v4, v6

    /// The family of `address`.
    public init(of address: IPAddress) {
        self = address.isIPv4 ? .v4 : .v6
    }

    /// The all-zero prefix of the family: `0.0.0.0/0` or `::/0`.
    public var anyPrefix: IPPrefix {
        self == .v4 ? IPPrefix(address: .v4(.any), length: 0)! : IPPrefix(address: .v6(.any), length: 0)!
    }

    /// `inet` / `inet6`, as iproute2 prints it.
    public var description: String { self == .v4 ? "inet" : "inet6" }
}

extension IPAddress {
    /// The address's family.
    public var family: IPFamily { IPFamily(of: self) }
}
