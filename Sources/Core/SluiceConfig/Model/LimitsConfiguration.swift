/// The `limits:` section (a sluice extension): how much the workers take on at once before they refuse, so
/// that a flood degrades service for the flood and not for the supervisor, the other workers or other clients.
public struct LimitsConfiguration: Sendable, Equatable, Codable {
    /// TCP connections the tun worker relays or has half-open (SYN seen, not yet accepted) at once. At the
    /// limit a new SYN pushes out the oldest half-open one (a SYN cache); with none half-open it is refused
    /// with a RST. A relayed connection holds up to six descriptors (two sockets, two pipes of two ends), so
    /// the default fits the unit's `LimitNOFILE=65536`.
    public var maxConnections = 10_000
    /// UDP flows (one per client endpoint and outbound) at once; datagrams of new flows beyond it are dropped.
    public var udpMaxFlows = 65_536
    /// Distinct upstream queries the dns worker has in flight at once; a query that would need one more gets
    /// SERVFAIL. Cached, `hosts` and fake-IP answers, and queries joining one already in flight, are not counted.
    public var dnsMaxInFlight = 1_024

    /// The ranges the configuration accepts (checked when it is loaded).
    public static let maxConnectionsRange = 1...64_512
    public static let udpMaxFlowsRange = 1...1_048_576
    public static let dnsMaxInFlightRange = 1...65_536

    public init() {}
}
