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
        reader.decode("listen", intoOptional: &dns.listen) { context.endpoint($0, $1, allowingHostNames: false) }
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
        if let patterns = reader.decode(
            "fake-ip-filter",
            { node, path in
                context.list(node, path) { item, itemPath in filterPattern(item, itemPath, providers: providers) }
            })
        {
            dns.fakeIPFilter = patterns.compactMap { $0 }
        }
        reader.decode("fake-ip-filter-mode", into: &dns.fakeIPFilterMode) {
            context.choice($0, $1, [DNSConfiguration.FakeIPFilterMode.blacklist, .whitelist])
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

    /// A fake-ip-filter or nameserver-policy pattern. Returns `.some(nil)` for a pattern that is skipped with a
    /// warning (so that the list decoder does not treat it as an error).
    private func filterPattern(_ node: YAMLNode, _ path: String, providers: RuleProviderTable) -> DomainPattern?? {
        guard let text = context.string(node, path) else { return nil }
        return pattern(text, node, path, providers: providers)
    }

    private func pattern(_ text: String, _ node: YAMLNode, _ path: String, providers: RuleProviderTable)
        -> DomainPattern??
    {
        if text.hasPrefix("geosite:") {
            context.warning(
                node.mark, path, "geosite patterns are not supported by sluice; \(DecodingContext.quote(text)) skipped")
            return .some(nil)
        }
        guard let pattern = domainPattern(text, node, path, allowRuleSet: true) else { return nil }
        if case .ruleSet(let name) = pattern {
            if providers.leftOut.contains(name) {
                context.warning(node.mark, path, "rule provider \"\(name)\" was left out; this entry is skipped")
                return .some(nil)
            }
            guard providers.names.contains(name) else {
                context.error(node.mark, path, "no rule provider named \"\(name)\"; define it under rule-providers")
                return nil
            }
        }
        return .some(pattern)
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
            // mihomo allows several patterns in one key, separated by commas.
            for part in key.split(separator: ",", omittingEmptySubsequences: false) {
                let text = part.trimmingSpaces
                guard case .some(.some(let pattern)) = self.pattern(text, pair.key, itemPath, providers: providers)
                else { continue }
                if upstreams.isEmpty {
                    context.warning(pair.value.mark, itemPath, "no usable upstream; this policy is ignored")
                    break
                }
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
