import SluiceNet

extension ConfigurationDecoder {
    /// The local proxy ports: `port`, `socks-port`, `mixed-port` with `allow-lan` and `bind-address` (mihomo binds
    /// them to 127.0.0.1 unless `allow-lan: true`, then to `bind-address`, `*` meaning every address), the access
    /// settings `authentication`, `skip-auth-prefixes`, `lan-allowed-ips`, `lan-disallowed-ips`, and `listeners:`
    /// of type mixed, socks and http. Other listener types are named once and not served.
    func decodeInbound(_ top: MappingReader, groupNames names: NameTable) -> InboundConfiguration {

        var inbound = InboundConfiguration()
        /// Where each listener was written, for the port conflict error.
        var places: [(SourceMark, String)] = []
        var allowLAN = false
        top.bool("allow-lan", into: &allowLAN)
        var bindAddress: IPAddress = .v6(.any)
        top.decode("bind-address", into: &bindAddress) { node, path in
            guard let text = context.scalarText(node, path, expected: "an IP address or *") else { return nil }
            if text == "*" || text.isEmpty { return .v6(.any) }
            guard let address = IPAddress(text) else {
                context.error(node.mark, path, "expected an IP address or *, got \(DecodingContext.got(node))")
                return nil
            }
            return address
        }
        if let node = top.value("authentication") {
            let pairs = context.list(node, "authentication", allowSingle: true) { item, path -> (String, String)? in
                guard let text = context.string(item, path) else { return nil }
                guard let colon = text.firstIndex(of: ":"), colon != text.startIndex else {
                    context.error(item.mark, path, "expected user:password, got \(DecodingContext.got(item))")
                    return nil
                }
                return (String(text[..<colon]), String(text[text.index(after: colon)...]))
            }
            for (user, password) in pairs ?? [] { inbound.authentication[user] = password }
        }
        for (key, target) in [
            ("skip-auth-prefixes", \InboundConfiguration.skipAuthPrefixes), ("lan-allowed-ips", \.lanAllowed),
            ("lan-disallowed-ips", \.lanDisallowed),
        ] {
            guard let node = top.value(key) else { continue }
            inbound[keyPath: target] =
                context.list(node, key, allowSingle: true) { item, path -> IPPrefix? in
                    if let text = item.scalar?.value, let address = IPAddress(text) { return IPPrefix(host: address) }
                    return context.prefix(item, path)
                } ?? inbound[keyPath: target]
        }
        let host: IPAddress = allowLAN ? bindAddress : .v4(IPv4Address(127, 0, 0, 1))
        for (key, kind, name) in [
            ("mixed-port", InboundConfiguration.Kind.mixed, "DEFAULT-MIXED"), ("socks-port", .socks, "DEFAULT-SOCKS"),
            ("port", .http, "DEFAULT-HTTP"),
        ] {
            guard let node = top.value(key), let port = context.int(node, key, 0...65535), port != 0 else { continue }
            inbound.listeners.append(
                .init(name: name, kind: kind, address: host, port: UInt16(port), udp: kind != .http))
            places.append((node.mark, key))
        }
        if let node = top.value("listeners") {
            _ = context.list(node, "listeners") { item, path -> Bool? in
                guard let listener = decodeListener(item, path, names: names) else { return nil }
                inbound.listeners.append(listener)
                places.append((item.mark, path))
                return true
            }
        }
        var seen: [UInt16: String] = [:]
        for (listener, (mark, path)) in zip(inbound.listeners, places) {
            if let other = seen[listener.port] {
                context.error(
                    mark, path, "port \(listener.port) is already \(other)'s; give each local proxy port its own")
            }
            seen[listener.port] = listener.name
        }
        return inbound
    }

    /// One `listeners:` entry; nil (with a warning naming it) when sluice does not serve its type or options.
    private func decodeListener(_ node: YAMLNode, _ path: String, names: NameTable) -> InboundConfiguration.Listener? {
        guard let reader = context.mapping(node, path) else { return nil }
        var name = ""
        reader.string("name", into: &name)
        let label = name.isEmpty ? path : "\(path) (\(name))"
        var typeText = ""
        reader.string("type", into: &typeText)
        guard let kind = InboundConfiguration.Kind(rawValue: typeText.lowercased()) else {
            context.warning(
                node.mark, label,
                "listener type \(DecodingContext.quote(typeText)) is not served by sluice (it serves mixed, socks and http); this port stays closed"
            )
            return nil
        }
        var port = 0
        reader.int("port", 1...65535, into: &port)
        guard port != 0 else {
            context.error(node.mark, path.key("port"), "a listener needs a port 1...65535")
            return nil
        }
        var listen: IPAddress = .v4(IPv4Address(rawValue: 0))
        reader.decode("listen", into: &listen) { node, path in
            guard let text = context.scalarText(node, path, expected: "an IP address") else { return nil }
            if text.isEmpty || text == "*" { return .v6(.any) }
            guard let address = IPAddress(text) else {
                context.error(node.mark, path, "expected an IP address, got \(DecodingContext.got(node))")
                return nil
            }
            return address
        }
        var udp = true
        reader.bool("udp", into: &udp)
        var users: [String: String]?
        if let list = reader.value("users") {
            var table: [String: String] = [:]
            _ = context.list(list, path.key("users")) { item, itemPath -> Bool? in
                guard let user = context.mapping(item, itemPath) else { return nil }
                var username = ""
                var password = ""
                user.string("username", into: &username)
                user.string("password", into: &password)
                user.finish()
                table[username] = password
                return true
            }
            users = table
        }
        var proxy: String?
        reader.string("proxy", into: &proxy)
        if let target = proxy {
            switch names.resolve(target) {
            case .builtIn, .proxy, .group: break
            case .leftOut:
                context.warning(
                    node.mark, path.key("proxy"),
                    "\(DecodingContext.quote(target)) was left out; this listener's connections are rejected (sluice fails closed)"
                )
                proxy = BuiltinTarget.reject.rawValue
            case .unknown:
                context.error(node.mark, path.key("proxy"), "\(DecodingContext.quote(target)) names no proxy or group")
                return nil
            }
        }
        // What sluice cannot honour closes the port rather than serving it differently.
        for key in ["rule", "certificate", "private-key", "reality-config", "ech-key", "client-auth-type"]
        where reader.has(key) {
            context.warning(
                node.mark, label.key(key),
                "not supported by sluice; this listener is not served (its port stays closed) rather than served without it"
            )
            reader.accept(key)
            reader.finish()
            return nil
        }
        reader.finish()
        return .init(
            name: name.isEmpty ? "\(kind.rawValue.uppercased())-IN-\(port)" : name, kind: kind,
            address: listen, port: UInt16(port), udp: udp && kind != .http, users: users, proxy: proxy)
    }
}
