import Foundation
import SluiceNet

/// Turns the YAML tree into a `SluiceConfiguration`, section by section, reporting into a `DecodingContext`.
///
/// Sections that others refer to are decoded first (rule providers, then proxies, then groups, then rules and
/// DNS), so that references can be checked against what actually loaded.
struct ConfigurationDecoder {
    let context: DecodingContext
    /// The proxy protocols: the outbound registry in sluiced.
    let catalog: any ProxyCatalog
    /// The configuration file's directory: relative rule provider paths start here.
    var baseDirectory = "."

    /// Top-level mihomo keys sluice recognises but does not implement; each gets a warning, never an error,
    /// so that a mihomo config loads unchanged.
    static let ignoredTopLevelKeys: [String] = [
        "redir-port", "tproxy-port",
        "external-controller-tls", "external-controller-pipe",
        "external-ui-name", "external-ui-url", "external-doh-server",
        "geodata-mode", "geodata-loader", "geosite-matcher", "geo-auto-update", "geo-update-interval",
        "geox-url", "global-client-fingerprint", "global-ua", "etag-support",
        "find-process-mode", "unified-delay", "tcp-concurrent",
        "interface-name", "experimental", "proxy-providers", "tunnels", "ntp",
        "clash-for-android", "iptables", "ebpf", "log-file", "tls", "inbound-tfo", "inbound-mptcp", "ss-config",
        "vmess-config", "tuic-server",
    ]

    func decode(_ root: YAMLNode, into configuration: inout SluiceConfiguration) {
        guard case .mapping = root.content else {
            context.error(root.mark, "", "the configuration must be a mapping of keys to values, got \(root.kindName)")
            return
        }
        guard let top = context.mapping(root, "") else { return }

        top.decode("log-level", into: &configuration.logLevel) {
            context.choice($0, $1, SluiceConfiguration.LogLevel.allCases)
        }
        top.decode("mode", into: &configuration.mode) {
            // mihomo accepts any case here ("Rule" in old Clash configs).
            guard let text = context.scalarText($0, $1, expected: "rule, global or direct") else { return nil }
            guard let mode = SluiceConfiguration.Mode(rawValue: text.lowercased()) else {
                context.error($0.mark, $1, "expected one of rule, global, direct; got \(DecodingContext.got($0))")
                return nil
            }
            return mode
        }
        top.bool("ipv6", into: &configuration.ipv6)
        top.int("keep-alive-idle", 1...86400, into: &configuration.keepAlive.idle)
        top.int("keep-alive-interval", 1...86400, into: &configuration.keepAlive.interval)
        top.bool("disable-keep-alive", into: &configuration.keepAlive.disabled)

        // Dependencies first: providers, then proxies and groups, then everything that refers to them.
        let providers =
            top.value("rule-providers").map { decodeRuleProviders($0, "rule-providers") }
            ?? RuleProviderTable()
        configuration.ruleProviders = providers.loaded
        var names = NameTable()
        if let node = top.value("proxies") {
            configuration.proxies = decodeProxies(node, "proxies", names: &names)
        }
        if let node = top.value("proxy-groups") {
            configuration.proxyGroups = decodeGroups(
                node, "proxy-groups", proxies: configuration.proxies,
                names: &names)
        }
        // Sets of sub-rules before the rules that name them; every SUB-RULE then carries the set it names.
        let subRules =
            top.value("sub-rules").map { decodeSubRules($0, "sub-rules", names: names, providers: providers) }
            ?? SubRuleTable()
        if let node = top.value("rules") {
            let rules = decodeRules(node, "rules", names: names, providers: providers, subRules: subRules.scope)
            configuration.rules = expandSubRules(rules, table: subRules)
        }

        var tunRoutingMarkSet = false
        if let node = top.value("tun") {
            tunRoutingMarkSet = decodeTun(node, "tun", into: &configuration.tun)
        }
        if let node = top.value("routing-mark"), let mark = context.uint32(node, "routing-mark") {
            // mihomo has routing-mark at the top level; sluice keeps it with the TUN settings it belongs to.
            if tunRoutingMarkSet {
                if mark != configuration.tun.routingMark {
                    context.warning(
                        node.mark, "routing-mark",
                        "tun.routing-mark is also set; using tun.routing-mark (\(configuration.tun.routingMark))")
                }
            } else {
                configuration.tun.routingMark = mark
            }
        }
        if let node = top.value("dns") {
            decodeDNS(node, "dns", providers: providers, into: &configuration.dns)
        }
        if let node = top.value("sniffer") {
            configuration.sniffer = decodeSniffer(node, "sniffer")
        }
        if let node = top.value("hosts") {
            configuration.hosts = decodeHosts(node, "hosts")
        }
        if let node = top.value("profile"), let reader = context.mapping(node, "profile") {
            reader.bool("store-selected", into: &configuration.profile.storeSelected)
            reader.bool("store-fake-ip", into: &configuration.profile.storeFakeIP)
            reader.finish()
        }
        if let node = top.value("wireguard") {
            configuration.wireguard = decodeWireGuard(node, "wireguard")
        }
        if let node = top.value("keepalive"), let reader = context.mapping(node, "keepalive") {
            reader.decode("backend", into: &configuration.keepalive.backend) {
                context.choice($0, $1, KeepaliveConfiguration.Backend.allCases)
            }
            reader.bool("inhibit-sleep", into: &configuration.keepalive.inhibitSleep)
            reader.duration("interval", minimum: .milliseconds(100), into: &configuration.keepalive.interval)
            reader.duration("handshake-timeout", minimum: .seconds(1), into: &configuration.keepalive.handshakeTimeout)
            reader.duration("rx-timeout", minimum: .seconds(1), into: &configuration.keepalive.rxTimeout)
            reader.finish()
        }
        if let node = top.value("supervisor") {
            decodeSupervisor(node, "supervisor", into: &configuration.supervisor)
        }
        if let node = top.value("limits"), let reader = context.mapping(node, "limits") {
            reader.int(
                "max-connections", LimitsConfiguration.maxConnectionsRange, into: &configuration.limits.maxConnections)
            reader.int("udp-max-flows", LimitsConfiguration.udpMaxFlowsRange, into: &configuration.limits.udpMaxFlows)
            reader.int(
                "dns-max-in-flight", LimitsConfiguration.dnsMaxInFlightRange, into: &configuration.limits.dnsMaxInFlight
            )
            reader.finish()
        }
        decodeController(top, into: &configuration.controller)
        configuration.inbound = decodeInbound(top, groupNames: names)
        top.ignore(Self.ignoredTopLevelKeys)
        top.finish()

        crossCheck(configuration, top: top)
    }

    /// `external-controller`, `external-controller-unix`, `secret`, `external-ui`, `external-controller-cors`.
    private func decodeController(_ top: MappingReader, into controller: inout ControllerConfiguration) {
        top.decode("external-controller", intoOptional: &controller.listen) { node, path in
            guard let text = context.scalarText(node, path, expected: "IP:PORT (e.g. 127.0.0.1:9090)") else {
                return nil
            }
            if text.isEmpty { return nil }
            // mihomo's ":9090" listens on every address.
            let spelled = text.hasPrefix(":") ? "0.0.0.0" + text : text
            guard let endpoint = SocketEndpoint.parse(spelled, allowingHostNames: false), endpoint.port != 0 else {
                context.error(
                    node.mark, path, "expected IP:PORT (e.g. 127.0.0.1:9090 or :9090), got \(DecodingContext.got(node))"
                )
                return nil
            }
            return endpoint
        }
        top.decode("external-controller-unix", intoOptional: &controller.unixSocket) { node, path in
            guard let text = context.string(node, path, allowEmpty: true) else { return nil }
            return text.isEmpty ? nil : ConfigLoader.resolve(text, from: baseDirectory)
        }
        top.decode("secret", into: &controller.secret) { context.string($0, $1, allowEmpty: true) }
        top.decode("external-ui", intoOptional: &controller.externalUI) { node, path in
            guard let text = context.string(node, path, allowEmpty: true) else { return nil }
            if text.isEmpty { return nil }
            let resolved = ConfigLoader.resolve(text, from: baseDirectory)
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory) || !isDirectory.boolValue {
                context.warning(
                    node.mark, path,
                    "\(resolved) is not a directory; /ui/ answers 404 until a dashboard build is unpacked there")
            }
            return resolved
        }
        if let node = top.value("external-controller-cors"),
            let reader = context.mapping(node, "external-controller-cors")
        {
            reader.decode("allow-origins", into: &controller.allowOrigins) { node, path in
                context.list(node, path, allowSingle: true) { context.string($0, $1) }
            }
            reader.bool("allow-private-network", into: &controller.allowPrivateNetwork)
            reader.finish()
        }
        if let listen = controller.listen, controller.secret.isEmpty, case .address(let ip) = listen.host,
            !ip.isLoopback,
            let pair = top.pair("external-controller")
        {
            context.warning(
                pair.value.mark, "external-controller",
                "the API listens on \(listen) without a secret: anyone who can reach it controls sluice; set `secret`")
        }
    }

    /// Checks that need more than one section.
    private func crossCheck(_ configuration: SluiceConfiguration, top: MappingReader) {
        let dns = configuration.dns
        let tun = configuration.tun
        // The local proxy ports' names (socks5h, HTTP) are resolved through the dns worker too.
        if dns.enable, dns.listen == nil, !(tun.enable && !tun.dnsHijack.isEmpty),
            configuration.inbound.listeners.isEmpty,
            let pair = top.pair("dns")
        {
            context.warning(
                pair.key.mark, "dns",
                "dns is enabled but nothing will reach it; set dns.listen or enable tun with tun.dns-hijack")
        }
        if dns.enhancedMode == .fakeIP, let pair = top.pair("dns") {
            for address in tun.inet4Address where address.overlaps(dns.fakeIPRange) {
                context.error(
                    pair.key.mark, "dns.fake-ip-range",
                    "\(dns.fakeIPRange) overlaps tun.inet4-address \(address); choose ranges that do not overlap")
            }
        }
    }

    // MARK: hosts

    func decodeHosts(_ node: YAMLNode, _ path: String) -> [HostEntry] {
        guard case .mapping(let pairs) = node.content else {
            context.error(node.mark, path, "expected a mapping of host names to addresses, got \(node.kindName)")
            return []
        }
        var entries: [HostEntry] = []
        for pair in pairs {
            let name = pair.key.scalar?.value ?? ""
            let itemPath = path.key(name)
            guard domainPattern(name, pair.key, itemPath, allowRuleSet: false) != nil else { continue }
            let value = pair.value
            switch value.content {
            case .scalar(let scalar) where !scalar.isNull:
                if let address = IPAddress(scalar.value) {
                    entries.append(HostEntry(name: name, value: .addresses([address])))
                } else if SocketEndpoint.isValidHostName(scalar.value) {
                    entries.append(HostEntry(name: name, value: .alias(scalar.value.lowercased())))
                } else {
                    context.error(
                        value.mark, itemPath,
                        "expected an IP address, a list of addresses or a host name, got \(DecodingContext.got(value))")
                }
            case .sequence:
                if let addresses = context.list(value, itemPath, context.address), !addresses.isEmpty {
                    entries.append(HostEntry(name: name, value: .addresses(addresses)))
                }
            default:
                context.error(
                    value.mark, itemPath,
                    "expected an IP address, a list of addresses or a host name, got \(DecodingContext.got(value))")
            }
        }
        return entries
    }

    // MARK: Domain patterns

    /// Validates a mihomo domain pattern: `example.com`, `*.lan`, `+.example.com`, `.example.com`, and (where
    /// allowed) `rule-set:NAME`, whose provider existence the caller checks.
    func domainPattern(_ text: String, _ node: YAMLNode, _ path: String, allowRuleSet: Bool) -> DomainPattern? {
        domainPattern(text, node.mark, path, allowRuleSet: allowRuleSet)
    }

    func domainPattern(_ text: String, _ mark: SourceMark, _ path: String, allowRuleSet: Bool) -> DomainPattern? {
        if allowRuleSet, text.hasPrefix("rule-set:") {
            let name = String(text.dropFirst("rule-set:".count))
            if name.isEmpty {
                context.error(mark, path, "rule-set: needs the name of a rule provider")
                return nil
            }
            return .ruleSet(name)
        }
        guard let pattern = Self.parseDomainPattern(text) else {
            let forms =
                allowRuleSet
                ? "example.com, *.lan, +.example.com, .example.com or rule-set:NAME"
                : "example.com, *.lan, +.example.com or .example.com"
            context.error(mark, path, "expected a domain pattern such as \(forms), got \(DecodingContext.quote(text))")
            return nil
        }
        return pattern
    }

    /// A domain pattern (not `rule-set:`), lowercased; nil when it is not one.
    static func parseDomainPattern(_ text: String) -> DomainPattern? {
        let lower = text.lowercased()
        var body = Substring(lower)
        var kind = 0  // 0 exact, 1 suffix (+.), 2 subdomains (.)
        if body.hasPrefix("+.") {
            kind = 1
            body = body.dropFirst(2)
        } else if body.hasPrefix(".") {
            kind = 2
            body = body.dropFirst()
        }
        var hasWildcard = false
        var valid = !body.isEmpty && body.utf8.count <= 253
        if valid {
            for label in body.split(separator: ".", omittingEmptySubsequences: false) {
                if label == "*" {
                    hasWildcard = true
                    continue
                }
                let ok =
                    !label.isEmpty && label.utf8.count <= 63
                    && label.utf8.allSatisfy { byte in
                        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte >= 0x80
                    }
                if !ok {
                    valid = false
                    break
                }
            }
        }
        guard valid else { return nil }
        switch kind {
        case 1: return hasWildcard ? .wildcard("+." + body) : .suffix(String(body))
        case 2: return hasWildcard ? .wildcard("." + body) : .subdomains(String(body))
        default: return hasWildcard ? .wildcard(String(body)) : .exact(String(body))
        }
    }
}
