import SluiceNet

extension ConfigurationDecoder {
    /// Decodes `sniffer:` with mihomo's keys and defaults. The newer `sniff:` mapping wins;
    /// without it the older `sniffing: [tls, http]` with `port-whitelist` is read.
    func decodeSniffer(_ node: YAMLNode, _ path: String) -> SnifferConfiguration {
        var sniffer = SnifferConfiguration()
        guard let reader = context.mapping(node, path) else { return sniffer }
        reader.bool("enable", into: &sniffer.enable)
        reader.bool("override-destination", into: &sniffer.overrideDestination)
        reader.bool("force-dns-mapping", into: &sniffer.forceDNSMapping)
        reader.bool("parse-pure-ip", into: &sniffer.parsePureIP)
        for (key, target) in [("force-domain", \SnifferConfiguration.forceDomain), ("skip-domain", \.skipDomain)] {
            guard let list = reader.value(key) else { continue }
            let patterns = context.list(list, path.key(key), allowSingle: true) { item, itemPath -> DomainPattern?? in
                snifferDomain(item, itemPath)
            }
            sniffer[keyPath: target] = patterns?.compactMap { $0 } ?? []
        }
        for (key, target) in [
            ("skip-src-address", \SnifferConfiguration.skipSourceAddress),
            ("skip-dst-address", \.skipDestinationAddress),
        ] {
            guard let list = reader.value(key) else { continue }
            let prefixes = context.list(list, path.key(key), allowSingle: true) { item, itemPath -> IPPrefix?? in
                if let text = item.scalar?.value,
                    text.lowercased().hasPrefix("rule-set:") || text.lowercased().hasPrefix("geoip:")
                {
                    context.warning(
                        item.mark, itemPath,
                        "\(DecodingContext.quote(text)): rule sets and geoip are not supported in sniffer lists yet; skipped"
                    )
                    return .some(nil)
                }
                // A bare address is its own /32 or /128, as in mihomo.
                if let text = item.scalar?.value, let address = IPAddress(text) {
                    return .some(IPPrefix(host: address))
                }
                return context.prefix(item, itemPath).map { .some($0) }
            }
            sniffer[keyPath: target] = prefixes?.compactMap { $0 } ?? []
        }

        if let sniff = reader.value("sniff") {
            sniffer.protocols = sniffProtocols(sniff, path.key("sniff"), overrideDefault: sniffer.overrideDestination)
            reader.ignore(["sniffing", "port-whitelist"], because: "ignored: the sniff mapping takes precedence")
        } else if let names = reader.value("sniffing") {
            // The older form: one port list for every protocol.
            var ports: [PortRange]?
            if let list = reader.value("port-whitelist") { ports = portList(list, path.key("port-whitelist")) }
            let items = context.list(names, path.key("sniffing"), allowSingle: true) {
                item, itemPath -> SniffedProtocol.Kind?? in
                guard let text = context.string(item, itemPath) else { return nil }
                return protocolKind(text, item, itemPath)
            }
            for kind in (items ?? []).compactMap({ $0 }) where !sniffer.protocols.contains(where: { $0.kind == kind }) {
                let chosen = ports.flatMap { $0.isEmpty ? nil : $0 } ?? SniffedProtocol.defaultPorts(kind)
                sniffer.protocols.append(
                    SniffedProtocol(kind: kind, ports: chosen, overrideDestination: sniffer.overrideDestination))
            }
        } else {
            reader.ignore(["port-whitelist"], because: "ignored without sniffing")
        }
        reader.finish()
        sniffer.protocols.sort { $0.kind == .tls && $1.kind != .tls }
        if sniffer.enable, sniffer.protocols.isEmpty {
            context.warning(
                reader.mark, path, "sniffer is enabled but sniffs nothing; add sniff: {TLS: ..., HTTP: ...}")
        }
        return sniffer
    }

    /// `sniff: {TLS: {ports: [...]}, HTTP: {ports: [...], override-destination: true}, QUIC: ...}`.
    private func sniffProtocols(_ node: YAMLNode, _ path: String, overrideDefault: Bool) -> [SniffedProtocol] {
        guard case .mapping(let pairs) = node.content else {
            context.error(
                node.mark, path, "expected a mapping of protocols (TLS, HTTP) to settings, got \(node.kindName)")
            return []
        }
        var protocols: [SniffedProtocol] = []
        for pair in pairs {
            let name = pair.key.scalar?.value ?? ""
            let itemPath = path.key(name)
            guard case .some(.some(let kind)) = protocolKind(name, pair.key, itemPath) else { continue }
            if protocols.contains(where: { $0.kind == kind }) {
                context.error(pair.key.mark, itemPath, "\(kind.rawValue) is listed twice")
                continue
            }
            var entry = SniffedProtocol(
                kind: kind, ports: SniffedProtocol.defaultPorts(kind), overrideDestination: overrideDefault)
            if !pair.value.isNull, let settings = context.mapping(pair.value, itemPath) {
                if let list = settings.value("ports"), let ports = portList(list, itemPath.key("ports")), !ports.isEmpty
                {
                    entry.ports = ports
                }
                settings.bool("override-destination", into: &entry.overrideDestination)
                settings.finish()
            }
            protocols.append(entry)
        }
        return protocols
    }

    /// TLS or HTTP in any case (mihomo upper-cases the key). QUIC is known and left out with
    /// a warning; anything else is an error, as in mihomo.
    private func protocolKind(_ text: String, _ node: YAMLNode, _ path: String) -> SniffedProtocol.Kind?? {
        let upper = text.uppercased()
        if let kind = SniffedProtocol.Kind(rawValue: upper) { return kind }
        if upper == "QUIC" {
            context.warning(node.mark, path, "QUIC sniffing is not supported by sluice; ignored")
            return .some(nil)
        }
        context.error(node.mark, path, "unknown sniffer \(DecodingContext.quote(text)); expected TLS, HTTP or QUIC")
        return nil
    }

    /// Ports as numbers or `LOW-HIGH` ranges, written as integers or strings.
    private func portList(_ node: YAMLNode, _ path: String) -> [PortRange]? {
        context.list(node, path, allowSingle: true) { item, itemPath -> PortRange? in
            let expected = "a port (1-65535) or a range such as 8080-8880"
            guard let text = context.scalarText(item, itemPath, expected: expected) else { return nil }
            let bounds = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map {
                UInt16($0.trimmingSpaces)
            }
            guard let lower = bounds.first ?? nil, let upper = bounds.last ?? nil, lower >= 1, lower <= upper else {
                context.error(item.mark, itemPath, "expected \(expected), got \(DecodingContext.got(item))")
                return nil
            }
            return PortRange(lower, upper)
        }
    }

    /// A force-domain/skip-domain entry: a domain pattern as elsewhere in the config. mihomo
    /// also takes one-label names that are not host names (its own example skips
    /// "Mijia Cloud", a name such devices put in their SNI): kept as exact names.
    /// `rule-set:` and `geosite:` entries are left out with a warning.
    private func snifferDomain(_ node: YAMLNode, _ path: String) -> DomainPattern?? {
        guard let text = context.string(node, path) else { return nil }
        let lower = text.lowercased()
        if lower.hasPrefix("rule-set:") || lower.hasPrefix("geosite:") {
            context.warning(
                node.mark, path,
                "\(DecodingContext.quote(text)): rule sets and geosite are not supported in sniffer lists yet; skipped")
            return .some(nil)
        }
        if let pattern = Self.parseDomainPattern(text) { return pattern }
        if !lower.contains("."), lower.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) {
            return .exact(lower)
        }
        return domainPattern(text, node, path, allowRuleSet: false).map { .some($0) }
    }
}
