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

    /// Proxy types mihomo has and sluice does not; they are left out with a warning rather than failing.
    static let knownUnsupportedProxyTypes: Set<String> = [
        "vmess", "vless", "trojan", "hysteria", "hysteria2", "tuic", "wireguard", "ssr", "snell", "ssh", "mieru",
        "anytls", "dns", "sudoku", "masque",
    ]

    /// Shadowsocks ciphers mihomo v1.19.32 accepts (checked with `mihomo -t`) and sluice does not implement;
    /// a proxy using one is left out with a warning. Other unknown names are errors, as in mihomo.
    static let unsupportedShadowsocksCiphers: Set<String> = [
        "aes-192-gcm", "xchacha20-ietf-poly1305", "chacha8-ietf-poly1305", "xchacha8-ietf-poly1305",
        "aes-128-ctr", "aes-192-ctr", "aes-256-ctr", "aes-128-cfb", "aes-192-cfb", "aes-256-cfb", "rc4-md5",
        "chacha20-ietf", "chacha20", "xchacha20", "none", "aes-128-ccm", "aes-256-ccm", "aes-128-gcm-siv",
        "aes-256-gcm-siv", "rabbit128-poly1305", "aegis-128l", "aegis-256", "aez-384", "deoxys-ii-256-128",
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
            switch decodeProxyKind(type.lowercased(), typeNode, reader, itemPath, name: name) {
            case .loaded(let kind):
                proxies.append(Proxy(name: name, kind: kind))
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

    /// What became of one proxy.
    private enum ProxyOutcome {
        case loaded(Proxy.Kind)
        /// Left out with a warning; the reason in a few words, for the groups that list it.
        case leftOut(String)
        /// An error was reported.
        case failed
    }

    /// A proxy type as mihomo's adapter names it and as `type:` spells it, lowercased (for `exclude-type`).
    static func typeNames(_ type: String) -> Set<String> {
        switch type {
        case "ss": ["ss", "shadowsocks"]
        case "ssr": ["ssr", "shadowsocksr"]
        default: [type]
        }
    }

    /// Decodes one proxy by type.
    private func decodeProxyKind(
        _ type: String, _ typeNode: YAMLNode, _ reader: MappingReader, _ path: String, name: String
    ) -> ProxyOutcome {
        let leftOut = "proxy \"\(name)\" left out"
        var kind: Proxy.Kind?
        switch type {
        case "direct":
            var direct = DirectProxy()
            direct.dial = dialOptions(reader)
            reader.decode("ip-version", into: &direct.ipVersion) {
                context.choice($0, $1, [DirectProxy.IPVersion.ipv4, .ipv6, .dual, .ipv4Prefer, .ipv6Prefer])
            }
            reader.bool("udp", into: &direct.udp)
            kind = .direct(direct)
        case "reject":
            kind = .reject
        case "socks5":
            guard let server = serverEndpoint(reader, path) else { break }
            var socks = SOCKS5Proxy(server: server)
            reader.string("username", into: &socks.username)
            decodePassword(reader, into: &socks.password)
            reader.bool("udp", into: &socks.udp)
            reader.bool("tls", into: &socks.tls)
            reader.bool("skip-cert-verify", into: &socks.skipCertVerify)
            socks.dial = dialOptions(reader)
            if socks.tls && socks.udp {
                context.warning(
                    reader.value("udp")?.mark ?? reader.mark, path.key("udp"),
                    "UDP through a socks5 proxy with tls: true is not supported yet; UDP matched to proxy \"\(name)\" is refused")
            }
            kind = .socks5(socks)
        case "http":
            guard let server = serverEndpoint(reader, path) else { break }
            var http = HTTPProxy(server: server)
            reader.string("username", into: &http.username)
            decodePassword(reader, into: &http.password)
            reader.bool("tls", into: &http.tls)
            reader.string("sni", into: &http.sni)
            reader.bool("skip-cert-verify", into: &http.skipCertVerify)
            if let headersNode = reader.value("headers"),
                let headers = context.mapping(headersNode, path.key("headers"))
            {
                for pair in headers.pairs {
                    let header = pair.key.scalar?.value ?? ""
                    if let value = context.string(pair.value, path.key("headers").key(header), allowEmpty: true) {
                        http.headers.append(HTTPProxy.Header(name: header, value: value))
                    }
                }
            }
            http.dial = dialOptions(reader)
            kind = .http(http)
        case "ss":
            if let plugin = reader.pair("plugin"), !plugin.value.isNull {
                reader.accept("plugin-opts")
                context.warning(
                    plugin.key.mark, path.key("plugin"),
                    "Shadowsocks plugins are not supported by sluice; \(leftOut)")
                return .leftOut("Shadowsocks plugin not supported")
            }
            let server = serverEndpoint(reader, path)
            var cipher: ShadowsocksProxy.Cipher?
            if let cipherNode = reader.value("cipher") {
                let cipherPath = path.key("cipher")
                if let text = context.string(cipherNode, cipherPath) {
                    let lower = text.lowercased()
                    if let known = ShadowsocksProxy.Cipher(rawValue: lower) {
                        cipher = known
                    } else if lower.hasPrefix("2022-blake3-") {
                        context.warning(cipherNode.mark, cipherPath, "\(lower) is not supported yet; \(leftOut)")
                        return .leftOut("cipher \(lower) not supported yet")
                    } else if Self.unsupportedShadowsocksCiphers.contains(lower) {
                        // Valid for mihomo, so the config must load: leave this proxy out, as an unsupported type.
                        context.warning(
                            cipherNode.mark, cipherPath,
                            "cipher \(lower) is not supported by sluice (it has aes-128-gcm, aes-256-gcm and "
                                + "chacha20-ietf-poly1305); \(leftOut)")
                        return .leftOut("cipher \(lower) not supported")
                    } else {
                        context.error(
                            cipherNode.mark, cipherPath,
                            "expected one of aes-128-gcm, aes-256-gcm, chacha20-ietf-poly1305; got "
                                + DecodingContext.got(cipherNode))
                    }
                }
            } else {
                context.error(reader.mark, path, "missing required key \"cipher\"")
            }
            var password: String?
            decodePassword(reader, into: &password)
            if password == nil && !reader.has("password") {
                context.error(reader.mark, path, "missing required key \"password\"")
            }
            guard let server, let cipher, let password else { break }
            var ss = ShadowsocksProxy(server: server, cipher: cipher, password: password)
            reader.bool("udp", into: &ss.udp)
            ss.dial = dialOptions(reader)
            kind = .shadowsocks(ss)
        default:
            if Self.knownUnsupportedProxyTypes.contains(type) {
                context.warning(typeNode.mark, path, "type \"\(type)\" is not supported by sluice; \(leftOut)")
                return .leftOut("\(type) not supported")
            }
            context.warning(typeNode.mark, path, "unknown proxy type \"\(type)\"; \(leftOut)")
            return .leftOut("unknown type \(DecodingContext.quote(type))")
        }
        reader.ignore(Self.ignoredProxyKeys)
        reader.finish()
        return kind.map { .loaded($0) } ?? .failed
    }

    private func decodePassword(_ reader: MappingReader, into target: inout String?) {
        // Passwords may legitimately be empty or numeric; any scalar is its text.
        reader.decode("password", into: &target) { context.string($0, $1, allowEmpty: true) }
    }

    private func dialOptions(_ reader: MappingReader) -> DialOptions {
        var options = DialOptions()
        reader.decode("interface-name", intoOptional: &options.interfaceName, context.interfaceName)
        reader.decode("routing-mark", intoOptional: &options.routingMark, context.uint32)
        return options
    }

    /// `server` (a host name or IP, IPv6 with or without brackets) and `port`, both required.
    private func serverEndpoint(_ reader: MappingReader, _ path: String) -> SocketEndpoint? {
        var host: SocketEndpoint.Host?
        if let serverNode = reader.value("server") {
            if let text = context.string(serverNode, path.key("server")) {
                var bare = Substring(text)
                if bare.hasPrefix("[") && bare.hasSuffix("]") { bare = bare.dropFirst().dropLast() }
                if let address = IPAddress(bare) {
                    host = .address(address)
                } else if SocketEndpoint.isValidHostName(bare) {
                    host = .name(bare.lowercased())
                } else {
                    context.error(
                        serverNode.mark, path.key("server"),
                        "expected a host name or IP address, got \(DecodingContext.got(serverNode))")
                }
            }
        } else {
            context.error(reader.mark, path, "missing required key \"server\"")
        }
        var port: UInt16?
        if let portNode = reader.value("port") {
            port = context.port(portNode, path.key("port"))
        } else {
            context.error(reader.mark, path, "missing required key \"port\"")
        }
        guard let host, let port else { return nil }
        return SocketEndpoint(host: host, port: port)
    }
}
