extension DomainPattern {
    /// Whether `name` (lowercase, dotted, no trailing dot) matches, with mihomo's meanings:
    /// `*` is exactly one label, `+.x` is x and everything under it, `.x` everything under
    /// x but not x. `rule-set:` references match nothing until rule providers are loaded.
    public func matches(_ name: String) -> Bool {
        switch self {
        case .exact(let pattern):
            return name == pattern
        case .suffix(let suffix):
            return name == suffix
                || (name.hasSuffix(suffix) && name.utf8.dropLast(suffix.utf8.count).last == UInt8(ascii: "."))
        case .subdomains(let suffix):
            return name.hasSuffix(suffix) && name.utf8.dropLast(suffix.utf8.count).last == UInt8(ascii: ".")
        case .wildcard(let pattern):
            let want = pattern.split(separator: ".", omittingEmptySubsequences: false)
            let have = name.split(separator: ".", omittingEmptySubsequences: false)
            guard want.count == have.count else { return false }
            return zip(want, have).allSatisfy { $0 == "*" || $0 == $1 }
        case .ruleSet:
            return false
        }
    }
}
