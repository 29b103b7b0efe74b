/// One entry of `proxy-groups:`: a named choice among proxies and other groups.
public struct ProxyGroup: Sendable, Equatable, Codable {
    /// How a group picks its member.
    public enum Kind: String, Sendable, Equatable, Codable {
        case select
        case urlTest = "url-test"
        case fallback
        case loadBalance = "load-balance"
    }

    /// How a `load-balance` group spreads connections.
    public enum Strategy: String, Sendable, Equatable, Codable {
        case consistentHashing = "consistent-hashing"
        case roundRobin = "round-robin"
        case stickySessions = "sticky-sessions"
    }

    public var name: String
    public var kind: Kind
    /// Member names in order: proxies, groups, or DIRECT/REJECT/REJECT-DROP. Never empty after loading.
    public var members: [String] = []
    /// Health-check URL.
    public var url = "https://www.gstatic.com/generate_204"
    /// Health-check interval in seconds (0: no periodic checks).
    public var interval = 300
    /// url-test: switch only when another member is faster by more than this many milliseconds.
    public var tolerance = 150
    /// Only health-check while the group is in use.
    public var lazy = true
    /// Health-check timeout in milliseconds.
    public var timeout = 5000
    public var strategy: Strategy = .consistentHashing
    public var disableUDP = false
    /// Hidden from status listings.
    public var hidden = false
    /// An icon URL for dashboards; kept for round-tripping, unused by sluice.
    public var icon: String?

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }
}

extension SluiceConfiguration {
    /// The name of mihomo's built-in group that `mode: global` sends everything to.
    public static let globalGroupName = "GLOBAL"

    /// The configured groups plus mihomo's built-in `GLOBAL` select group (DIRECT, REJECT, every group, every
    /// proxy; its first member DIRECT), unless the configuration defines a group of that name itself.
    public var proxyGroupsWithGlobal: [ProxyGroup] {
        guard !proxyGroups.contains(where: { $0.name == Self.globalGroupName }) else { return proxyGroups }
        var global = ProxyGroup(name: Self.globalGroupName, kind: .select)
        global.members = ["DIRECT", "REJECT"] + proxyGroups.map(\.name) + proxies.map(\.name)
        return proxyGroups + [global]
    }
}
