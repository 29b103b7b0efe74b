import SluiceNet

/// The local proxy ports, Clash's own inbound: `port` (HTTP), `socks-port` (SOCKS4/5), `mixed-port` (both on one
/// port) and `listeners:` entries of type `http`, `socks` and `mixed`. sluiced binds them and hands them to the tun
/// worker, whose connections go through the same rules, groups and outbounds as the TUN's.
public struct InboundConfiguration: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Equatable, Codable, CaseIterable {
        case mixed, socks, http
    }

    /// One listening port.
    public struct Listener: Sendable, Equatable, Codable {
        /// mihomo's inbound name: `DEFAULT-MIXED`, `DEFAULT-SOCKS`, `DEFAULT-HTTP`, or the listener's `name`.
        public var name: String
        public var kind: Kind
        /// Where it listens; `::` is every address of both families (0.0.0.0 where IPv6 is off).
        public var address: IPAddress
        public var port: UInt16
        /// SOCKS5 UDP ASSOCIATE is served (a UDP socket on the same port); never for `http`.
        public var udp: Bool
        /// The listener's own `users` (an empty list: no authentication), which also exempts it from the LAN
        /// filter, as in mihomo; nil: the top-level `authentication`, `skip-auth-prefixes` and
        /// `lan-allowed-ips`/`lan-disallowed-ips`.
        public var users: [String: String]?
        /// `proxy:` of a listener: every connection goes to this proxy or group, without rules.
        public var proxy: String?

        public init(
            name: String, kind: Kind, address: IPAddress, port: UInt16, udp: Bool, users: [String: String]? = nil,
            proxy: String? = nil
        ) {
            self.name = name
            self.kind = kind
            self.address = address
            self.port = port
            self.udp = udp
            self.users = users
            self.proxy = proxy
        }

        /// Whether the top-level credentials and LAN lists apply (no `users` of its own).
        public var usesDefaultStore: Bool { users == nil }
    }

    public var listeners: [Listener] = []
    /// `authentication`: username → password.
    public var authentication: [String: String] = [:]
    /// `skip-auth-prefixes`: clients here need no credentials.
    public var skipAuthPrefixes: [IPPrefix] = []
    /// `lan-allowed-ips` (default everything) and `lan-disallowed-ips`: who may connect to the default ports.
    public var lanAllowed: [IPPrefix] = [
        IPPrefix(address: .v4(IPv4Address(rawValue: 0)), length: 0)!, IPPrefix(address: .v6(.any), length: 0)!,
    ]
    public var lanDisallowed: [IPPrefix] = []

    public init() {}

    /// Whether a client at `address` may use `listener` (mihomo applies the LAN lists to the listeners that use
    /// the default credentials only).
    public func admits(_ address: IPAddress, on listener: Listener) -> Bool {
        guard listener.usesDefaultStore else { return true }
        let plain = address.unmapped
        return lanAllowed.contains { $0.contains(plain) } && !lanDisallowed.contains { $0.contains(plain) }
    }

    /// The credentials a client at `address` must give on `listener`; empty: none.
    public func credentials(for address: IPAddress, on listener: Listener) -> [String: String] {
        if let users = listener.users { return users }
        let plain = address.unmapped
        return skipAuthPrefixes.contains { $0.contains(plain) } ? [:] : authentication
    }
}
