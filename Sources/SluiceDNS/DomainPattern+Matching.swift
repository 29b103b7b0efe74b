import SluiceConfig
import SluiceNet

extension DomainPattern {
    /// Whether `name` (lowercase, dotted, no trailing dot) matches, with mihomo's meanings:
    /// `*` is exactly one label, `+.x` is x and everything under it, `.x` everything under
    /// x but not x. `rule-set:` references match nothing until rule providers are loaded.
    public func matches(_ name: String) -> Bool {
        switch self {
        case .exact(let pattern):
            return name == pattern
        case .suffix(let suffix):
            return name == suffix || (name.hasSuffix(suffix) && name.utf8.dropLast(suffix.utf8.count).last == UInt8(ascii: "."))
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

    /// Exact patterns first: a hosts entry for the name itself beats a wildcard one.
    var isExact: Bool {
        if case .exact = self { return true }
        return false
    }
}

/// The `hosts:` table (and the system's /etc/hosts with `use-system-hosts`).
struct HostsTable: Sendable {
    private var exact: [String: HostEntry.Value] = [:]
    private var patterns: [(DomainPattern, HostEntry.Value)] = []

    init(entries: [HostEntry], system: [HostEntry]) {
        for entry in entries + system {
            let name = entry.name.lowercased()
            if name.hasPrefix("+.") {
                patterns.append((.suffix(String(name.dropFirst(2))), entry.value))
            } else if name.hasPrefix(".") {
                patterns.append((.subdomains(String(name.dropFirst())), entry.value))
            } else if name.contains("*") {
                patterns.append((.wildcard(name), entry.value))
            } else if exact[name] == nil {
                exact[name] = entry.value
            }
        }
    }

    var isEmpty: Bool { exact.isEmpty && patterns.isEmpty }

    func lookup(_ name: String) -> HostEntry.Value? {
        if let value = exact[name] { return value }
        return patterns.first { $0.0.matches(name) }?.1
    }

    /// Entries of an /etc/hosts file: `ADDRESS NAME [ALIAS...]`, `#` comments.
    static func parseSystemHosts(_ text: String) -> [HostEntry] {
        var byName: [String: [IPAddress]] = [:]
        var order: [String] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let address = IPAddress(fields[0]) else { continue }
            for field in fields.dropFirst() {
                let name = field.lowercased()
                if byName[name] == nil { order.append(name) }
                byName[name, default: []].append(address)
            }
        }
        return order.map { HostEntry(name: $0, value: .addresses(byName[$0]!)) }
    }
}
