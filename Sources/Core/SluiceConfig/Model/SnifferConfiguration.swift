import SluiceNet

/// The `sniffer:` section (mihomo's spelling and defaults): which TCP connections to real
/// addresses have their name read from their first bytes (TLS ClientHello SNI, HTTP/1
/// `Host`), and whether that name then replaces the destination.
public struct SnifferConfiguration: Sendable, Equatable, Codable {
    public var enable = false
    /// The default of each protocol's `override-destination` (mihomo: true).
    public var overrideDestination = true
    /// Sniff connections whose name came from a DNS answer as well (mihomo: true). Fake-IP
    /// connections are never sniffed: their name is the one the client resolved.
    public var forceDNSMapping = true
    /// Sniff connections that have no name at all (mihomo: true); for TUN traffic to a real
    /// address that no DNS answer named, that is every one.
    public var parsePureIP = true
    /// The protocols to sniff, each on its ports. Empty while `enable` is false.
    public var protocols: [SniffedProtocol] = []
    /// Connections whose known name matches are sniffed even when the rules above say not.
    public var forceDomain: [DomainPattern] = []
    /// A sniffed name that matches is not used (the connection keeps what it had).
    public var skipDomain: [DomainPattern] = []
    /// Connections from these sources are not sniffed.
    public var skipSourceAddress: [IPPrefix] = []
    /// Connections to these destinations are not sniffed.
    public var skipDestinationAddress: [IPPrefix] = []

    public init() {}

    /// Whether anything is sniffed at all.
    public var isActive: Bool { enable && !protocols.isEmpty }

    /// The first protocol (in TLS, HTTP order) sniffed on `port`.
    public func protocolFor(port: UInt16) -> SniffedProtocol? {
        protocols.first { $0.ports.contains { $0.contains(port) } }
    }
}

/// One entry of `sniffer.sniff`: a protocol, the destination ports it is sniffed on, and
/// whether its name replaces the destination (`override-destination`).
public struct SniffedProtocol: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Equatable, Codable, CaseIterable {
        case tls = "TLS"
        case http = "HTTP"
    }

    public var kind: Kind
    public var ports: [PortRange]
    public var overrideDestination: Bool

    public init(kind: Kind, ports: [PortRange], overrideDestination: Bool) {
        self.kind = kind
        self.ports = ports
        self.overrideDestination = overrideDestination
    }

    /// mihomo's ports when none are given.
    public static func defaultPorts(_ kind: Kind) -> [PortRange] {
        switch kind {
        case .tls: [PortRange(443, 443)]
        case .http: [PortRange(80, 80)]
        }
    }
}
