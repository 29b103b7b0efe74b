import SluiceNet

extension ConfigurationDecoder {
    /// mihomo `dns:` keys that sluice accepts and ignores with a warning.
    static let ignoredDNSKeys: [String] = [
        "cache-algorithm", "cache-max-size", "prefer-h3", "fallback-filter", "direct-nameserver",
        "direct-nameserver-follow-policy", "proxy-server-nameserver-policy", "ipv6-timeout", "fake-ip-ttl",
    ]

    func decodeDNS(_ node: YAMLNode, _ path: String, providers: RuleProviderTable, into dns: inout DNSConfiguration) {
        guard let reader = context.mapping(node, path) else { return }
        reader.bool("enable", into: &dns.enable)
        reader.decode("listen", intoOptional: &dns.listen) { node, path in
            // mihomo's ":53" (empty host) is Go's net.Listen(":53"): every address of both families. sluice binds
            // [::] with IPV6_V6ONLY cleared, which is the same (see InetSocket.serverPair).
            if let text = node.scalar?.value, text.hasPrefix(":"), let port = UInt16(text.dropFirst()), port != 0 {
                return SocketEndpoint(host: .address(.v6(.any)), port: port)
            }
            return context.endpoint(node, path, allowingHostNames: false)
        }
        reader.bool("ipv6", into: &dns.ipv6)
        reader.decode("enhanced-mode", into: &dns.enhancedMode) {
            context.choice($0, $1, [DNSConfiguration.EnhancedMode.fakeIP, .redirHost, .normal])
        }
        reader.decode("fake-ip-range", into: &dns.fakeIPRange) { node, path in
            guard let prefix = context.prefix(node, path) else { return nil }
            guard prefix.address.isIPv4, prefix.length <= 30 else {
                context.error(node.mark, path, "expected an IPv4 prefix of length 30 or shorter, got \(prefix)")
                return nil
            }
            return prefix
        }
        reader.decode("fake-ip-range6", intoOptional: &dns.fakeIPRange6) { node, path in
            guard let prefix = context.prefix(node, path) else { return nil }
            guard !prefix.address.isIPv4, prefix.length <= 126 else {
                context.error(node.mark, path, "expected an IPv6 prefix of length 126 or shorter, got \(prefix)")
                return nil
            }
            return prefix
        }
        reader.decode("fake-ip-filter-mode", into: &dns.fakeIPFilterMode) { node, path in
            // mihomo reads the mode in any case ("Rule").
            guard let text = context.scalarText(node, path, expected: "blacklist, whitelist or rule") else {
                return nil
            }
            guard let mode = DNSConfiguration.FakeIPFilterMode(rawValue: text.lowercased()) else {
                context.error(
                    node.mark, path, "expected one of blacklist, whitelist, rule; got \(DecodingContext.got(node))")
                return nil
            }
            return mode
        }
        if let node = reader.value("fake-ip-filter") {
            decodeFakeIPFilter(node, path.key("fake-ip-filter"), providers: providers, into: &dns)
        }
        for key in ["nameserver", "default-nameserver", "fallback", "proxy-server-nameserver"] {
            guard let node = reader.value(key) else { continue }
            // default-nameserver bootstraps the others, so it must be plain IPs (as in mihomo).
            let upstreams = upstreamList(node, path.key(key))
            switch key {
            case "nameserver": dns.nameserver = upstreams
            case "default-nameserver": dns.defaultNameserver = upstreams
            case "fallback": dns.fallback = upstreams
            default: dns.proxyServerNameserver = upstreams
            }
        }
        if let policyNode = reader.value("nameserver-policy") {
            dns.nameserverPolicy = nameserverPolicy(policyNode, path.key("nameserver-policy"), providers: providers)
        }
        reader.bool("use-hosts", into: &dns.useHosts)
        reader.bool("use-system-hosts", into: &dns.useSystemHosts)
        reader.bool("respect-rules", into: &dns.respectRules)
        reader.int("cache-min-ttl", 0...604_800, into: &dns.cacheMinTTL)
        reader.int("cache-max-ttl", 0...604_800, into: &dns.cacheMaxTTL)
        if dns.cacheMinTTL > dns.cacheMaxTTL, let pair = reader.pair("cache-min-ttl") {
            context.error(
                pair.value.mark, path.key("cache-min-ttl"),
                "must not exceed cache-max-ttl (\(dns.cacheMaxTTL))")
        }
        if dns.enhancedMode == .fakeIP, dns.nameserver.isEmpty, dns.enable, let pair = reader.pair("enhanced-mode") {
            context.warning(
                pair.value.mark, path.key("nameserver"),
                "no usable nameserver; real answers (fake-ip-filter, non-A queries) will fail")
        }
        reader.ignore(Self.ignoredDNSKeys)
        reader.finish()
    }

    /// `fake-ip-filter` in the mode already decoded.
    ///
    /// An entry sluice cannot evaluate (GEOSITE, a left-out rule provider, in rule mode also DOMAIN-REGEX,
    /// DOMAIN-WILDCARD and RULE-SET) is skipped with a warning, and skipping never turns a fake answer into a
    /// real one: a real answer takes the name's domain away from the routing rules, so the names of a skipped
    /// entry get fake addresses. In blacklist mode dropping the entry does that; in whitelist mode every name
    /// then gets a fake address; in rule mode a skipped `real-ip` entry is dropped and a skipped `fake-ip` entry
    /// becomes `MATCH,fake-ip`.
    private func decodeFakeIPFilter(
        _ node: YAMLNode, _ path: String, providers: RuleProviderTable, into dns: inout DNSConfiguration
    ) {
        guard let items = context.items(node, path) else { return }
        var skippedAny = false
        for (index, item) in items.enumerated() {
            let itemPath = path.index(index)
            guard let text = context.string(item, itemPath) else { continue }
            if dns.fakeIPFilterMode == .rule {
                switch fakeIPFilterRule(text, item, itemPath, providers: providers) {
                case .rule(let rule):
                    dns.fakeIPFilterRules.append(rule)
                case .skipped(realIP: true), .invalid:
                    break
                case .skipped(realIP: false):
                    dns.fakeIPFilterRules.append(FakeIPFilterRule(condition: .match, realIP: false))
                }
                continue
            }
            for entry in patterns(text, item, itemPath, providers: providers) {
                if let pattern = entry { dns.fakeIPFilter.append(pattern) } else { skippedAny = true }
            }
        }
        if skippedAny, dns.fakeIPFilterMode == .whitelist {
            context.warning(
                node.mark, path,
                "in whitelist mode a skipped entry would give its names real addresses; every name gets a fake address instead"
            )
            dns.fakeIPFilter = []
            dns.fakeIPFilterMode = .blacklist
        }
    }

    /// What one rule-mode entry became.
    private enum FakeIPFilterEntry {
        case rule(FakeIPFilterRule)
        /// Skipped with a warning; `realIP` is the entry's action.
        case skipped(realIP: Bool)
        /// An error was reported.
        case invalid
    }

    /// One `TYPE,PAYLOAD,ACTION` entry under `fake-ip-filter-mode: rule` (mihomo: domain rule types only, action
    /// real-ip or fake-ip in any case; options after the action are ignored).
    private func fakeIPFilterRule(_ text: String, _ node: YAMLNode, _ path: String, providers: RuleProviderTable)
        -> FakeIPFilterEntry
    {
        let fields = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        let type = fields[0].uppercased()
        let actionIndex = type == "MATCH" ? 1 : 2
        guard fields.count > actionIndex, !fields[0].isEmpty else {
            context.error(
                node.mark, path,
                "expected TYPE,PAYLOAD,real-ip|fake-ip or MATCH,real-ip|fake-ip, got \(DecodingContext.quote(text))")
            return .invalid
        }
        let realIP: Bool
        switch fields[actionIndex].lowercased() {
        case "real-ip": realIP = true
        case "fake-ip": realIP = false
        default:
            context.error(
                node.mark, path,
                "the action must be real-ip or fake-ip, got \(DecodingContext.quote(fields[actionIndex]))")
            return .invalid
        }
        let payload = type == "MATCH" ? "" : fields[1]
        func skipped(_ why: String) -> FakeIPFilterEntry {
            let effect =
                realIP
                ? "skipped (its names go on to the entries below)"
                : "treated as MATCH,fake-ip (a fake answer is never made real by a skipped entry)"
            context.warning(node.mark, path, "\(why); \(DecodingContext.quote(text)) \(effect)")
            return .skipped(realIP: realIP)
        }
        func domain(_ make: (String) -> DomainPattern) -> FakeIPFilterEntry {
            do throws(RuleProblem) {
                return .rule(
                    FakeIPFilterRule(condition: .pattern(make(try Self.domainPayload(type, payload))), realIP: realIP))
            } catch {
                if case .invalid(let message) = error { context.error(node.mark, path, message) }
                return .invalid
            }
        }
        switch type {
        case "MATCH":
            return .rule(FakeIPFilterRule(condition: .match, realIP: realIP))
        case "DOMAIN":
            return domain { .exact($0) }
        case "DOMAIN-SUFFIX":
            return domain { .suffix($0) }
        case "DOMAIN-KEYWORD":
            guard !payload.isEmpty else {
                context.error(node.mark, path, "DOMAIN-KEYWORD needs a payload")
                return .invalid
            }
            return .rule(FakeIPFilterRule(condition: .keyword(payload.lowercased()), realIP: realIP))
        case "GEOSITE":
            return skipped("GEOSITE is not supported by sluice (no geosite data)")
        case "DOMAIN-REGEX", "DOMAIN-WILDCARD":
            return skipped("\(type) is not supported in fake-ip-filter by sluice")
        case "RULE-SET":
            guard providers.names.contains(payload) || providers.leftOut.contains(payload) else {
                context.error(node.mark, path, "no rule provider named \"\(payload)\"; define it under rule-providers")
                return .invalid
            }
            return skipped("sluice's DNS server does not match rule providers yet")
        default:
            context.error(
                node.mark, path,
                "rule type \(DecodingContext.quote(type)) cannot be used in fake-ip-filter; expected DOMAIN, "
                    + "DOMAIN-SUFFIX, DOMAIN-KEYWORD, DOMAIN-REGEX, DOMAIN-WILDCARD, GEOSITE, RULE-SET or MATCH")
            return .invalid
        }
    }

    /// A fake-ip-filter or nameserver-policy key: a domain pattern, or `geosite:A,B` / `rule-set:A,B` (any case)
    /// naming one or more sets, as mihomo's parseDomain. Each element is a pattern, or nil for one skipped with a
    /// warning; an error gives no elements.
    private func patterns(_ text: String, _ node: YAMLNode, _ path: String, providers: RuleProviderTable)
        -> [DomainPattern?]
    {
        let lower = text.lowercased()
        if lower.hasPrefix("geosite:") {
            let names = text.dropFirst("geosite:".count).split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingSpaces }
            guard !names.contains(where: \.isEmpty) else {
                context.error(node.mark, path, "geosite: needs one or more site names separated by commas")
                return []
            }
            for name in names {
                context.warning(
                    node.mark, path,
                    "geosite is not supported by sluice (no geosite data); geosite:\(name) skipped")
            }
            return names.map { _ in nil }
        }
        if lower.hasPrefix("rule-set:") {
            let names = text.dropFirst("rule-set:".count).split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingSpaces }
            guard !names.contains(where: \.isEmpty) else {
                context.error(node.mark, path, "rule-set: needs the names of one or more rule providers")
                return []
            }
            var result: [DomainPattern?] = []
            for name in names {
                if providers.leftOut.contains(name) {
                    context.warning(node.mark, path, "rule provider \"\(name)\" was left out; this entry is skipped")
                    result.append(nil)
                } else if providers.names.contains(name) {
                    result.append(.ruleSet(name))
                } else {
                    context.error(node.mark, path, "no rule provider named \"\(name)\"; define it under rule-providers")
                    return []
                }
            }
            return result
        }
        // Plain patterns may also be several, separated by commas (mihomo splits nameserver-policy keys so).
        var result: [DomainPattern?] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let pattern = domainPattern(part.trimmingSpaces, node, path, allowRuleSet: false) else { return [] }
            result.append(pattern)
        }
        return result
    }

    private func upstreamList(_ node: YAMLNode, _ path: String) -> [DNSUpstream] {
        let entries = context.list(node, path, allowSingle: true) { item, itemPath -> DNSUpstream?? in
            upstream(item, itemPath)
        }
        return entries?.compactMap { $0 } ?? []
    }

    /// Parses one upstream. Unsupported transports parse but are left out with a warning (`.some(nil)`).
    func upstream(_ node: YAMLNode, _ path: String) -> DNSUpstream?? {
        let expected = "udp://IP[:PORT], tcp://IP[:PORT] or IP[:PORT]"
        guard var text = context.scalarText(node, path, expected: expected) else { return nil }
        if let hash = text.firstIndex(of: "#") {
            context.warning(node.mark, path, "the options after '#' are not supported by sluice; ignored")
            text = String(text[..<hash])
        }
        var transport = DNSUpstream.Transport.udp
        var rest = Substring(text)
        if let schemeEnd = text.firstIndex(of: ":"), text[schemeEnd...].hasPrefix("://") {
            let scheme = text[..<schemeEnd].lowercased()
            rest = text[text.index(schemeEnd, offsetBy: 3)...]
            switch scheme {
            case "udp": transport = .udp
            case "tcp": transport = .tcp
            case "tls", "https", "quic", "h3", "dhcp", "system", "rcode", "sdns":
                context.warning(
                    node.mark, path, "\(scheme):// upstreams are not supported yet; this upstream is ignored")
                return .some(nil)
            default:
                context.error(node.mark, path, "unknown upstream scheme \"\(scheme)://\"; expected \(expected)")
                return nil
            }
        } else if text == "system" || text == "dhcp" {
            context.warning(node.mark, path, "\"\(text)\" upstreams are not supported yet; this upstream is ignored")
            return .some(nil)
        }
        guard let endpoint = SocketEndpoint.parse(rest, defaultPort: 53), case .address = endpoint.host else {
            context.error(node.mark, path, "expected \(expected), got \(DecodingContext.got(node))")
            return nil
        }
        return .some(DNSUpstream(transport: transport, endpoint: endpoint))
    }

    private func nameserverPolicy(_ node: YAMLNode, _ path: String, providers: RuleProviderTable) -> [NameserverPolicy]
    {
        guard case .mapping(let pairs) = node.content else {
            context.error(node.mark, path, "expected a mapping of domain patterns to nameservers, got \(node.kindName)")
            return []
        }
        var policies: [NameserverPolicy] = []
        for pair in pairs {
            let key = pair.key.scalar?.value ?? ""
            let itemPath = path.key(key)
            let upstreams = upstreamList(pair.value, itemPath)
            // mihomo allows several patterns in one key, separated by commas: `geosite:a,b`, `rule-set:a,b`,
            // `+.a.com,+.b.com` (parseNameServerPolicy).
            let patterns = self.patterns(key, pair.key, itemPath, providers: providers).compactMap { $0 }
            if patterns.isEmpty { continue }
            if upstreams.isEmpty {
                context.warning(pair.value.mark, itemPath, "no usable upstream; this policy is ignored")
                continue
            }
            for pattern in patterns {
                policies.append(NameserverPolicy(pattern: pattern, upstreams: upstreams))
            }
        }
        return policies
    }
}

extension Substring {
    /// The text without leading and trailing spaces and tabs. (Index arithmetic, not `reversed()`: every rule
    /// line comes through here, and a 100,000-rule config spent most of its load time in the generic version.)
    var trimmingSpaces: String {
        var start = startIndex
        var end = endIndex
        while start < end, self[start] == " " || self[start] == "\t" { start = index(after: start) }
        while end > start {
            let before = index(before: end)
            guard self[before] == " " || self[before] == "\t" else { break }
            end = before
        }
        return String(self[start..<end])
    }
}
