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
    /// Member names in order: proxies, groups, DIRECT/REJECT/REJECT-DROP, or mihomo's `COMPATIBLE` (direct) and
    /// `PASS`. May be empty: such a group is unavailable (see ``unavailableGroups(_:)``) and rejects its traffic.
    public var members: [String] = []
    /// Members listed under `proxies`, or that `include-all` would have taken, that were left out (an unsupported
    /// proxy type or cipher, a `relay` group), with why: for saying what the group lost and why it is unavailable.
    public var leftOutMembers: [LeftOutMember] = []
    /// `use:` proxy providers, which sluice does not load yet: each counts as an empty provider.
    public var providers: [String] = []
    /// `include-all`, `include-all-proxies` or `include-all-providers` was set.
    public var includesAll = false
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

extension ProxyGroup {
    /// A member that was left out, and why in a few words (`vless not supported`, `cipher rc4-md5 not supported`).
    public struct LeftOutMember: Sendable, Equatable, Codable {
        public var name: String
        public var reason: String

        public init(name: String, reason: String) {
            self.name = name
            self.reason = reason
        }
    }

    /// The left-out members with their reasons: `"hk-1" (vless not supported), "jp-2" (cipher aes-256-cfb not
    /// supported)`.
    public var leftOutSummary: String {
        leftOutMembers.map { "\"\($0.name)\" (\($0.reason))" }.joined(separator: ", ")
    }

    /// mihomo's built-in `COMPATIBLE`: a direct outbound. mihomo fills an empty group with it; sluice does not
    /// (an empty group rejects), but a configuration may list it as a member, and then it is `DIRECT`.
    public static let compatible = BuiltinTarget.compatible.rawValue
    /// The rule target `PASS` (continue with the next rule). sluice cannot continue from a group yet, so a
    /// connection whose group picks it is rejected.
    public static let pass = BuiltinTarget.pass.rawValue

    /// The groups that can carry no connection, each with why: a group with no members, or whose every member is
    /// `PASS` or such a group. Their traffic is rejected (fail closed), never sent `DIRECT`.
    public static func unavailableGroups(_ groups: [ProxyGroup]) -> [String: String] {
        let byName = Dictionary(groups.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var reasons: [String: String] = [:]
        for group in groups where group.members.isEmpty { reasons[group.name] = group.emptyReason }
        // Unavailability spreads to groups whose members are all unavailable; repeat until nothing changes.
        var changed = true
        while changed {
            changed = false
            for group in groups where reasons[group.name] == nil {
                let unusable = group.members.filter { $0 == pass || (byName[$0] != nil && reasons[$0] != nil) }
                guard unusable.count == group.members.count else { continue }
                let groupsDown = unusable.filter { $0 != pass }
                reasons[group.name] =
                    groupsDown.isEmpty
                    ? "its only member is PASS, which sluice does not support in groups yet"
                    : "every member is unavailable: \(unusable.joined(separator: ", "))"
                changed = true
            }
        }
        return reasons
    }

    /// Why a group without members has none.
    private var emptyReason: String {
        var parts: [String] = []
        if leftOutMembers.count == 1 {
            parts.append("its only member was left out: \(leftOutSummary)")
        } else if !leftOutMembers.isEmpty {
            parts.append("all \(leftOutMembers.count) members were left out: \(leftOutSummary)")
        }
        if !providers.isEmpty {
            parts.append("proxy providers are not supported yet: \(providers.joined(separator: ", "))")
        }
        if includesAll && parts.isEmpty { parts.append("include-all found no supported proxy") }
        return parts.isEmpty ? "no members" : parts.joined(separator: "; ")
    }
}

extension SluiceConfiguration {
    /// The name of mihomo's built-in group that `mode: global` sends everything to.
    public static let globalGroupName = BuiltinTarget.global.rawValue

    /// The configured groups plus mihomo's built-in `GLOBAL` select group (DIRECT, REJECT, every group, every
    /// proxy; its first member DIRECT), unless the configuration defines a group of that name itself.
    public var proxyGroupsWithGlobal: [ProxyGroup] {
        guard !proxyGroups.contains(where: { $0.name == Self.globalGroupName }) else { return proxyGroups }
        var global = ProxyGroup(name: Self.globalGroupName, kind: .select)
        global.members =
            [BuiltinTarget.direct.rawValue, BuiltinTarget.reject.rawValue] + proxyGroups.map(\.name)
            + proxies.map(\.name)
        return proxyGroups + [global]
    }
}
