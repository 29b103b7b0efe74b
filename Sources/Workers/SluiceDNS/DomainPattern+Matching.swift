import SluiceConfig
import SluiceNet

extension DomainPattern {
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
