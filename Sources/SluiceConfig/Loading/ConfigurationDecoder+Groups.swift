extension ConfigurationDecoder {
    /// Group keys mihomo knows and sluice ignores with a warning.
    static let ignoredGroupKeys: [String] = [
        "include-all-providers", "expected-status", "max-failed-times", "interface-name", "routing-mark",
        "dialer-proxy",
    ]

    /// Decodes `proxy-groups:` in two passes: names first (groups may refer to groups defined later), then
    /// members, which are checked against proxies, groups and what was left out; finally cycles are rejected.
    func decodeGroups(_ node: YAMLNode, _ path: String, proxies: [Proxy], names: inout NameTable) -> [ProxyGroup] {
        guard let items = context.items(node, path) else { return [] }
        struct Pending {
            var group: ProxyGroup
            var reader: MappingReader
            var path: String
        }
        var pending: [Pending] = []
        for (index, item) in items.enumerated() {
            let itemPath = path.index(index)
            guard let reader = context.mapping(item, itemPath) else { continue }
            let name = definedName(reader, itemPath, names: &names, what: "group")
            guard let typeNode = reader.value("type") else {
                context.error(reader.mark, itemPath, "missing required key \"type\"")
                continue
            }
            guard let type = context.string(typeNode, itemPath.key("type")), let name else { continue }
            if type == "relay" {
                context.warning(
                    typeNode.mark, itemPath,
                    "type \"relay\" is not supported by sluice; group \"\(name)\" left out")
                names.leftOut.insert(name)
                continue
            }
            guard let kind = ProxyGroup.Kind(rawValue: type) else {
                context.error(
                    typeNode.mark, itemPath.key("type"),
                    "expected one of select, url-test, fallback, load-balance; got \(DecodingContext.got(typeNode))")
                // Still a name others may refer to; avoid a cascade of "no group named" errors.
                names.leftOut.insert(name)
                continue
            }
            names.groups.insert(name)
            pending.append(Pending(group: ProxyGroup(name: name, kind: kind), reader: reader, path: itemPath))
        }

        var groups: [ProxyGroup] = []
        var memberMarks: [String: [String: SourceMark]] = [:]
        for var entry in pending {
            let reader = entry.reader
            let groupPath = entry.path
            var group = entry.group
            var skipped = 0
            var marks: [String: SourceMark] = [:]
            if let membersNode = reader.value("proxies"),
                let members = context.items(membersNode, groupPath.key("proxies"))
            {
                for (index, memberNode) in members.enumerated() {
                    let memberPath = groupPath.key("proxies").index(index)
                    guard let member = context.string(memberNode, memberPath) else { continue }
                    switch names.resolve(member) {
                    case .builtIn where member == "PASS":
                        context.error(memberNode.mark, memberPath, "PASS is a rule target, not a group member")
                    case .builtIn, .proxy, .group:
                        if member == group.name {
                            context.error(memberNode.mark, memberPath, "group \"\(member)\" cannot contain itself")
                        } else if group.members.contains(member) {
                            context.warning(memberNode.mark, memberPath, "\"\(member)\" is listed twice; ignored")
                        } else {
                            group.members.append(member)
                            marks[member] = memberNode.mark
                        }
                    case .leftOut:
                        skipped += 1
                        context.warning(memberNode.mark, memberPath, "\"\(member)\" was left out; member skipped")
                    case .unknown:
                        context.error(
                            memberNode.mark, memberPath,
                            "no proxy or group named \"\(member)\"; define it under proxies or proxy-groups")
                    }
                }
            }
            var includeAll = false
            reader.bool("include-all", into: &includeAll)
            reader.bool("include-all-proxies", into: &includeAll)
            if includeAll {
                var candidates = proxies.map(\.name).filter { !group.members.contains($0) }
                candidates = applyFilters(candidates, reader, groupPath)
                group.members += candidates
            } else {
                // Without include-all sluice has nothing to filter (providers are not supported).
                reader.ignore(
                    ["filter", "exclude-filter", "exclude-type"],
                    because: "only applies to include-all or proxy providers; ignored")
            }
            var usesProviders = false
            if let useNode = reader.pair("use"), !useNode.value.isNull {
                usesProviders = true
                context.warning(
                    useNode.key.mark, groupPath.key("use"),
                    "proxy providers are not supported by sluice; ignored")
            }
            reader.decode("url", into: &group.url) { node, path in
                guard let url = context.string(node, path) else { return nil }
                guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                    context.error(
                        node.mark, path, "expected an http:// or https:// URL, got \(DecodingContext.got(node))")
                    return nil
                }
                return url
            }
            reader.int("interval", 0...86400 * 7, into: &group.interval)
            reader.int("tolerance", 0...60000, into: &group.tolerance)
            reader.bool("lazy", into: &group.lazy)
            reader.int("timeout", 1...60000, into: &group.timeout)
            if let strategyNode = reader.value("strategy") {
                if group.kind != .loadBalance {
                    context.warning(
                        strategyNode.mark, groupPath.key("strategy"), "only used by load-balance groups; ignored")
                } else if let strategy = context.choice(
                    strategyNode, groupPath.key("strategy"),
                    [ProxyGroup.Strategy.consistentHashing, .roundRobin, .stickySessions])
                {
                    group.strategy = strategy
                }
            }
            reader.bool("disable-udp", into: &group.disableUDP)
            reader.bool("hidden", into: &group.hidden)
            reader.string("icon", into: &group.icon)
            reader.ignore(Self.ignoredGroupKeys)
            reader.finish()

            if group.members.isEmpty {
                if skipped > 0 || usesProviders {
                    context.warning(
                        reader.mark, groupPath,
                        "group \"\(group.name)\" has no supported members left; using DIRECT so the configuration loads"
                    )
                    group.members = ["DIRECT"]
                } else {
                    context.error(
                        reader.mark, groupPath,
                        "group \"\(group.name)\" has no members; list some under proxies or set include-all: true")
                }
            }
            entry.group = group
            memberMarks[group.name] = marks
            groups.append(group)
        }
        reportCycles(groups, path: path, marks: memberMarks, items: pending.map(\.path))
        return groups
    }

    /// Applies `filter` and `exclude-filter` (regular expressions over proxy names) to include-all members.
    private func applyFilters(_ names: [String], _ reader: MappingReader, _ path: String) -> [String] {
        var result = names
        for key in ["filter", "exclude-filter"] {
            guard let node = reader.value(key), let pattern = context.string(node, path.key(key)) else { continue }
            // mihomo separates several expressions with backquotes.
            var regexes: [Regex<AnyRegexOutput>] = []
            for part in pattern.split(separator: "`") {
                do {
                    regexes.append(try Regex(String(part)))
                } catch {
                    context.error(
                        node.mark, path.key(key),
                        "not a valid regular expression: \(DecodingContext.quote(String(part)))")
                }
            }
            if regexes.isEmpty { continue }
            result = result.filter { name in
                let matched = regexes.contains { (try? $0.firstMatch(in: name)) != nil }
                return key == "filter" ? matched : !matched
            }
        }
        return result
    }

    /// Reports each group cycle once, naming the groups in order.
    private func reportCycles(
        _ groups: [ProxyGroup], path: String, marks: [String: [String: SourceMark]], items: [String]
    ) {
        let byName = Dictionary(groups.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var state: [String: Int] = [:]  // 1: on the stack, 2: done
        var stack: [String] = []
        var reported: Set<String> = []

        func visit(_ name: String) {
            state[name] = 1
            stack.append(name)
            for member in byName[name]?.members ?? [] where byName[member] != nil {
                if state[member] == 1 {
                    guard let start = stack.firstIndex(of: member) else { continue }
                    let cycle = Array(stack[start...]) + [member]
                    let key = cycle.dropLast().sorted().joined(separator: "\u{0}")
                    if reported.insert(key).inserted, let index = groups.firstIndex(where: { $0.name == name }),
                        let mark = marks[name]?[member]
                    {
                        context.error(
                            mark, "\(items[index]).proxies",
                            "groups form a cycle: \(cycle.joined(separator: " -> ")); break it by removing one member")
                    }
                } else if state[member] == nil {
                    visit(member)
                }
            }
            stack.removeLast()
            state[name] = 2
        }
        for group in groups where state[group.name] == nil {
            visit(group.name)
        }
    }
}
