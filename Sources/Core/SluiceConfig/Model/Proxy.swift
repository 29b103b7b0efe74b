import SluiceNet

/// One outbound from `proxies:` that sluice implements.
///
/// The configuration does not know proxy protocols: a ``ProxyCatalog`` (the outbound registry) decodes each
/// proxy's mapping when the file is loaded, and the mapping travels as written (``settings``, with its source
/// marks) in the configuration push, so the tun worker decodes it again into the protocol's own settings. What
/// the rest of the configuration and the API need is kept here, filled in by the catalog.
public struct Proxy: Sendable, Codable {
    public var name: String
    /// `type:` as written, lowercased (`ss`, `socks5`, `reject`...).
    public var type: String
    /// The type name the Clash API shows (`Socks5`, `Http`, `Shadowsocks`, `Direct`, `Reject`).
    public var typeName: String
    /// Whether the proxy carries UDP (the API's `udp`).
    public var udp: Bool
    /// What the API shows as `interface` and `routing-mark` (the catalog says which a protocol shows: today
    /// every dialing proxy its interface, `direct` its mark too).
    public var shown: DialOptions
    /// The proxy's mapping as written, source marks included.
    public var settings: YAMLNode

    public init(
        name: String, type: String, typeName: String, udp: Bool, shown: DialOptions = DialOptions(), settings: YAMLNode
    ) {
        self.name = name
        self.type = type
        self.typeName = typeName
        self.udp = udp
        self.shown = shown
        self.settings = settings
    }

    /// A `type: reject` proxy: a config-level alias of REJECT (the dispatcher rejects its traffic).
    public var isReject: Bool { type == Self.rejectType }

    /// The one proxy type the configuration itself implements.
    public static let rejectType = "reject"

    /// Names that refer to built-in outbounds and may not be used for proxies or groups.
    public static let reservedNames: Set<String> = Set(
        [BuiltinTarget.direct, .reject, .rejectDrop, .pass].map(\.rawValue))

    /// The names `exclude-type` matches: how `type:` spells it and how mihomo's adapter calls it, lowercased.
    public var typeNames: Set<String> { [type, typeName.lowercased()] }
}

extension Proxy: Equatable {
    /// Source marks do not count: a proxy that only moved in the file is the same proxy (a reload that shifts
    /// lines pushes nothing new to the tun worker).
    public static func == (lhs: Proxy, rhs: Proxy) -> Bool {
        lhs.name == rhs.name && lhs.type == rhs.type && lhs.typeName == rhs.typeName && lhs.udp == rhs.udp
            && lhs.shown == rhs.shown && lhs.settings.hasSameContent(as: rhs.settings)
    }
}

extension YAMLNode {
    /// Whether two nodes hold the same scalars, lists and mappings, wherever they were written.
    public func hasSameContent(as other: YAMLNode) -> Bool {
        switch (content, other.content) {
        case (.scalar(let a), .scalar(let b)):
            return a == b
        case (.sequence(let a), .sequence(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.hasSameContent(as: $1) }
        case (.mapping(let a), .mapping(let b)):
            return a.count == b.count
                && zip(a, b).allSatisfy { $0.key.hasSameContent(as: $1.key) && $0.value.hasSameContent(as: $1.value) }
        default:
            return false
        }
    }
}

/// Socket options every dialing proxy shares: which interface and fwmark its connections use.
public struct DialOptions: Sendable, Equatable, Codable {
    /// Bind outbound sockets to this interface (SO_BINDTODEVICE), e.g. `wg0` to send traffic through WireGuard.
    public var interfaceName: String?
    /// Put this fwmark on outbound sockets (SO_MARK); nil means the global `routing-mark`.
    public var routingMark: UInt32?

    public init(interfaceName: String? = nil, routingMark: UInt32? = nil) {
        self.interfaceName = interfaceName
        self.routingMark = routingMark
    }
}
