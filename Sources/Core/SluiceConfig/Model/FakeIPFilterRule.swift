/// One entry of `dns.fake-ip-filter` under `fake-ip-filter-mode: rule`: `TYPE,PAYLOAD,real-ip|fake-ip` or
/// `MATCH,real-ip|fake-ip`. Entries are tried in order; the first that matches decides, and a name that none
/// matches gets a fake address (mihomo's default).
public struct FakeIPFilterRule: Sendable, Equatable, Codable {
    /// What the entry tests. Only the domain tests sluice can evaluate; the loader skips the others.
    public enum Condition: Sendable, Equatable, Codable {
        /// DOMAIN (`.exact`) and DOMAIN-SUFFIX (`.suffix`).
        case pattern(DomainPattern)
        /// DOMAIN-KEYWORD: the name contains this text.
        case keyword(String)
        /// MATCH: every name.
        case match
    }

    public var condition: Condition
    /// true: `real-ip` (answered with real addresses); false: `fake-ip`.
    public var realIP: Bool

    public init(condition: Condition, realIP: Bool) {
        self.condition = condition
        self.realIP = realIP
    }

    /// Whether the entry matches `name` (lowercase, no trailing dot).
    public func matches(_ name: String) -> Bool {
        switch condition {
        case .pattern(let pattern): return pattern.matches(name)
        case .keyword(let keyword): return name.contains(keyword)
        case .match: return true
        }
    }
}
