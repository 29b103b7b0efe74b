import Foundation

extension ConfigurationDecoder {
    /// Group keys mihomo knows and sluice ignores with a warning.
    static let ignoredGroupKeys: [String] = [
        "expected-status", "max-failed-times", "interface-name", "routing-mark", "dialer-proxy",
    ]

    /// Decodes `proxy-groups:` in two passes: names first (groups may refer to groups defined later), then
    /// members, which are checked against proxies, groups and what was left out; finally cycles are rejected.
    ///
    /// Like mihomo, a group may end up with no members (its members were left out, it takes them from `use:`
    /// providers, or `include-all` found none); unlike mihomo, which fills it with `COMPATIBLE` (direct), sluice
    /// makes it unavailable: its traffic is rejected, and a warning per such group says why.
    func decodeGroups(_ node: YAMLNode, _ path: String, proxies: [Proxy], names: inout NameTable) -> [ProxyGroup] {
        guard let items = context.items(node, path) else { return [] }
        var warnedProviders: Set<String> = []
        // Groups already reported as errors need no "unavailable" warning as well.
        var refused: Set<String> = []
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
                names.leaveOut(name, because: "relay groups not supported")
                continue
            }
            guard let kind = ProxyGroup.Kind(rawValue: type) else {
                context.error(
                    typeNode.mark, itemPath.key("type"),
                    "expected one of select, url-test, fallback, load-balance; got \(DecodingContext.got(typeNode))")
                // Still a name others may refer to; avoid a cascade of "no group named" errors.
                names.leaveOut(name, because: "invalid group type")
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
            var marks: [String: SourceMark] = [:]
            // Where the first left-out member is written: the group's one warning about them points there.
            var leftOutMark: SourceMark?
            if let membersNode = reader.value("proxies"),
                let members = context.items(membersNode, groupPath.key("proxies"))
            {
                for (index, memberNode) in members.enumerated() {
                    let memberPath = groupPath.key("proxies").index(index)
                    guard let member = context.string(memberNode, memberPath) else { continue }
                    var resolution = names.resolve(member)
                    // mihomo's built-in direct outbound, unless something of that name is defined.
                    if member == ProxyGroup.compatible, resolution == .unknown { resolution = .builtIn }
                    switch resolution {
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
                        if !group.leftOutMembers.contains(where: { $0.name == member }) {
                            let reason = names.leftOutReasons[member] ?? "left out"
                            group.leftOutMembers.append(ProxyGroup.LeftOutMember(name: member, reason: reason))
                        }
                        leftOutMark = leftOutMark ?? memberNode.mark
                    case .unknown:
                        context.error(
                            memberNode.mark, memberPath,
                            "no proxy or group named \"\(member)\"; define it under proxies or proxy-groups")
                    }
                }
            }
            // include-all means include-all-proxies and include-all-providers (mihomo's config.go).
            var includeAll = false
            var includeAllProxies = false
            var includeAllProviders = false
            reader.bool("include-all", into: &includeAll)
            reader.bool("include-all-proxies", into: &includeAllProxies)
            reader.bool("include-all-providers", into: &includeAllProviders)
            group.includesAll = includeAll || includeAllProxies || includeAllProviders
            if includeAll || includeAllProxies {
                // The left-out proxies count too: mihomo's include-all would have taken them, so the group says so.
                let listed = Set(group.members + group.leftOutMembers.map(\.name))
                let candidates =
                    proxies.map { (name: $0.name, types: $0.typeNames) }
                    + names.leftOutProxies.map { (name: $0.name, types: $0.types) }
                for candidate in applyFilters(candidates, reader, groupPath) where !listed.contains(candidate.name) {
                    if names.proxies.contains(candidate.name) {
                        group.members.append(candidate.name)
                    } else {
                        group.leftOutMembers.append(
                            ProxyGroup.LeftOutMember(
                                name: candidate.name, reason: names.leftOutReasons[candidate.name] ?? "left out"))
                        let key = includeAll ? "include-all" : "include-all-proxies"
                        leftOutMark = leftOutMark ?? reader.pair(key)?.value.mark
                    }
                }
            } else if reader.value("use") != nil {
                // They filter the providers' proxies, and sluice loads no provider yet (warned below).
                for key in ["filter", "exclude-filter", "exclude-type"] { _ = reader.pair(key) }
            } else {
                reader.ignore(
                    ["filter", "exclude-filter", "exclude-type"],
                    because: "only applies to include-all or proxy providers; ignored")
            }
            if let useNode = reader.value("use"), !useNode.isNull,
                let uses = context.items(useNode, groupPath.key("use"))
            {
                for (index, providerNode) in uses.enumerated() {
                    guard let provider = context.string(providerNode, groupPath.key("use").index(index)) else {
                        continue
                    }
                    if !group.providers.contains(provider) { group.providers.append(provider) }
                    if warnedProviders.insert(provider).inserted {
                        context.warning(
                            providerNode.mark, groupPath.key("use").index(index),
                            "proxy provider \"\(provider)\" is not supported yet; groups using it get no members from it"
                        )
                    }
                }
            }
            if includeAllProviders, let node = reader.pair("include-all-providers") {
                // Every provider, and sluice loads none yet: nothing to add.
                context.warning(
                    node.key.mark, groupPath.key("include-all-providers"),
                    "proxy providers are not supported yet; this adds no members")
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

            if group.members.isEmpty && group.leftOutMembers.isEmpty && group.providers.isEmpty && !group.includesAll {
                // mihomo refuses this too ("`use` or `proxies` missing").
                refused.insert(group.name)
                context.error(
                    reader.mark, groupPath,
                    "group \"\(group.name)\" has no members; list some under proxies, use or set include-all: true")
            }
            // A group left with no members gets the "unavailable" warning below, which names them with the same
            // reasons; one that keeps some says here what it lost.
            if !group.leftOutMembers.isEmpty && !group.members.isEmpty {
                let others = group.members.count
                context.warning(
                    leftOutMark ?? reader.mark, groupPath,
                    "group \"\(group.name)\": \(group.leftOutMembers.count == 1 ? "member" : "members") left out: "
                        + "\(group.leftOutSummary); it uses its other \(others == 1 ? "member" : "\(others) members")")
            }
            entry.group = group
            memberMarks[group.name] = marks
            groups.append(group)
        }
        reportCycles(groups, path: path, marks: memberMarks, items: pending.map(\.path))
        let unavailable = ProxyGroup.unavailableGroups(groups)
        for (group, entry) in zip(groups, pending) {
            guard let reason = unavailable[group.name], !refused.contains(group.name) else { continue }
            context.warning(
                entry.reader.mark, entry.path,
                "group \"\(group.name)\" is unavailable (\(reason)); its connections will be rejected, not sent DIRECT")
        }
        return groups
    }

    /// Applies `filter` and `exclude-filter` (regular expressions over proxy names) and `exclude-type` (proxy types
    /// separated by `|`, as mihomo names them — `Shadowsocks`, `Socks5`, `Http`, `Direct`, `Reject` — or as the
    /// configuration's `type:` does, any case) to include-all members.
    private func applyFilters(
        _ proxies: [(name: String, types: Set<String>)], _ reader: MappingReader, _ path: String
    ) -> [(name: String, types: Set<String>)] {
        var result = proxies
        if let node = reader.value("exclude-type"), let text = context.string(node, path.key("exclude-type")) {
            let excluded = Set(text.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
            result = result.filter { excluded.isDisjoint(with: $0.types) }
        }
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
            result = result.filter { proxy in
                let matched = regexes.contains { (try? $0.firstMatch(in: proxy.name)) != nil }
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
