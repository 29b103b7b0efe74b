import SluiceNet

/// The names that proxies and groups define, and which of them were left out, for checking references.
struct NameTable {
    /// Where each name (loaded or left out) was first defined, for duplicate errors.
    var defined: [String: SourceMark] = [:]
    var proxies: Set<String> = []
    var groups: Set<String> = []
    /// Names of proxies and groups that were left out with a warning; references to them are skipped.
    var leftOut: Set<String> = []
    /// Why each left-out name went, in a few words (`vless not supported`), for the groups that list it.
    var leftOutReasons: [String: String] = [:]
    /// The proxies left out, in file order, with their type names (as `exclude-type` spells them), for the groups
    /// whose `include-all` would have taken them.
    var leftOutProxies: [(name: String, types: Set<String>)] = []

    /// Records a left-out name and why.
    mutating func leaveOut(_ name: String, because reason: String) {
        leftOut.insert(name)
        leftOutReasons[name] = reason
    }

    /// What a name used as a group member or rule target refers to.
    enum Resolution {
        case builtIn
        case proxy
        case group
        case leftOut
        case unknown
    }

    func resolve(_ name: String) -> Resolution {
        if Proxy.reservedNames.contains(name) { return .builtIn }
        if proxies.contains(name) { return .proxy }
        if groups.contains(name) { return .group }
        if leftOut.contains(name) { return .leftOut }
        return .unknown
    }
}

extension ConfigurationDecoder {
    /// Proxy keys that mihomo knows and sluice ignores with a warning.
    static let ignoredProxyKeys: [String] = [
        "tfo", "mptcp", "dialer-proxy", "smux", "udp-over-tcp", "udp-over-tcp-version", "client-fingerprint",
        "fingerprint", "ip-version",
    ]

    /// Proxy types mihomo has and sluice does not; they are left out with a warning rather than failing. A protocol
    /// that joins the outbound registry leaves this list.
    static let knownUnsupportedProxyTypes: Set<String> = [
        "vmess", "vless", "trojan", "hysteria", "hysteria2", "tuic", "wireguard", "ssr", "snell", "ssh", "mieru",
        "anytls", "dns", "sudoku", "masque",
    ]

    /// Reads `name` and checks it is present, not reserved and unique. Returns nil (with an error) otherwise.
    func definedName(_ reader: MappingReader, _ path: String, names: inout NameTable, what: String) -> String? {
        guard let nameNode = reader.value("name") else {
            context.error(reader.mark, path, "missing required key \"name\"")
            return nil
        }
        guard let name = context.string(nameNode, path.key("name")) else { return nil }
        if Proxy.reservedNames.contains(name) {
            context.error(
                nameNode.mark, path.key("name"),
                "\"\(name)\" is a built-in name (DIRECT, REJECT, REJECT-DROP, PASS); choose another \(what) name")
            return nil
        }
        if let first = names.defined[name] {
            context.error(
                nameNode.mark, path.key("name"),
                "the name \"\(name)\" is already used at \(first.line):\(first.column); proxy and group names must be unique"
            )
            return nil
        }
        names.defined[name] = nameNode.mark
        return name
    }

    func decodeProxies(_ node: YAMLNode, _ path: String, names: inout NameTable) -> [Proxy] {
        guard let items = context.items(node, path) else { return [] }
        var proxies: [Proxy] = []
        for (index, item) in items.enumerated() {
            let itemPath = path.index(index)
            guard let reader = context.mapping(item, itemPath) else { continue }
            let name = definedName(reader, itemPath, names: &names, what: "proxy")
            guard let typeNode = reader.value("type") else {
                context.error(reader.mark, itemPath, "missing required key \"type\"")
                continue
            }
            guard let type = context.string(typeNode, itemPath.key("type")), let name else { continue }
            switch decodeProxy(type.lowercased(), typeNode, reader, itemPath, name: name) {
            case .loaded(let summary):
                proxies.append(
                    Proxy(
                        name: name, type: type.lowercased(), typeName: summary.typeName, udp: summary.udp,
                        shown: summary.shown, settings: reader.node))
                names.proxies.insert(name)
            case .leftOut(let reason):
                names.leaveOut(name, because: reason)
                names.leftOutProxies.append((name, Self.typeNames(type.lowercased())))
            case .failed:
                break
            }
        }
        return proxies
    }

    /// A proxy type as mihomo's adapter names it and as `type:` spells it, lowercased (for `exclude-type`).
    static func typeNames(_ type: String) -> Set<String> {
        switch type {
        case "ss": ["ss", "shadowsocks"]
        case "ssr": ["ssr", "shadowsocksr"]
        default: [type]
        }
    }

    /// Decodes one proxy: `reject` here (a config-level built-in), every other type by the catalog.
    private func decodeProxy(
        _ type: String, _ typeNode: YAMLNode, _ reader: MappingReader, _ path: String, name: String
    ) -> ProxyDecoding {
        let outcome: ProxyDecoding
        if type == Proxy.rejectType {
            outcome = .loaded(ProxySummary(typeName: "Reject", udp: true))
        } else if let decoded = catalog.decodeProxy(
            ProxyDecoder(name: name, type: type, typeNode: typeNode, reader: reader, path: path))
        {
            outcome = decoded
        } else {
            let leftOut = "proxy \"\(name)\" left out"
            if Self.knownUnsupportedProxyTypes.contains(type) {
                context.warning(typeNode.mark, path, "type \"\(type)\" is not supported by sluice; \(leftOut)")
                return .leftOut("\(type) not supported")
            }
            context.warning(typeNode.mark, path, "unknown proxy type \"\(type)\"; \(leftOut)")
            return .leftOut("unknown type \(DecodingContext.quote(type))")
        }
        if case .leftOut = outcome { return outcome }
        reader.ignore(Self.ignoredProxyKeys)
        reader.finish()
        return outcome
    }
}
