import SluiceNet

extension ConfigurationDecoder {
    /// Decodes `wireguard:`, a list of links. Paths name the link, e.g. `wireguard[0](wg0).peers[1].public-key`,
    /// so that errors in long files are easy to place.
    func decodeWireGuard(_ node: YAMLNode, _ path: String) -> [WireGuardLink] {
        guard let items = context.items(node, path) else { return [] }
        var links: [WireGuardLink] = []
        var seen: [String: SourceMark] = [:]
        // wg-quick's default-route rules (table: auto with a /0) exist once per family: one link takes it.
        var defaultRouteOwner: [Bool: String] = [:]
        for (index, item) in items.enumerated() {
            var linkPath = path.index(index)
            guard let reader = context.mapping(item, linkPath) else { continue }
            var name: String?
            if let nameNode = reader.value("name") {
                name = context.interfaceName(nameNode, linkPath.key("name"))
                if let name {
                    if let first = seen[name] {
                        context.error(
                            nameNode.mark, linkPath.key("name"),
                            "the link name \"\(name)\" is already used at \(first.line):\(first.column)")
                    }
                    seen[name] = nameNode.mark
                    linkPath += "(\(name))"
                    reader.path = linkPath
                }
            } else {
                context.error(reader.mark, linkPath, "missing required key \"name\"")
            }
            var privateKey: WireGuardLink.PrivateKey?
            let keyNode = reader.value("private-key")
            let fileNode = reader.value("private-key-file")
            switch (keyNode, fileNode) {
            case (let keyNode?, nil):
                privateKey = key(keyNode, linkPath.key("private-key")).map { .key($0) }
            case (nil, let fileNode?):
                privateKey = context.string(fileNode, linkPath.key("private-key-file")).map { .file($0) }
            case (_?, let fileNode?):
                context.error(
                    fileNode.mark, linkPath.key("private-key-file"),
                    "set either private-key or private-key-file, not both")
            case (nil, nil):
                context.error(reader.mark, linkPath, "missing required key \"private-key\" (or \"private-key-file\")")
            }
            let addresses = reader.decode("address") { context.list($0, $1, allowSingle: true, context.prefix) } ?? []
            var listenPort: UInt16?
            reader.decode("listen-port", intoOptional: &listenPort, context.port)
            var mtu: Int?
            reader.int("mtu", 576...65535, into: &mtu)
            var fwmark: UInt32?
            reader.decode("fwmark", intoOptional: &fwmark, context.uint32)
            var table = WireGuardLink.Table.auto
            reader.decode("table", into: &table, routingTable)
            var routeMetric: Int?
            reader.int("route-metric", 0...Int(UInt32.max), into: &routeMetric)
            if routeMetric != nil, table != .off, let pair = reader.pair("route-metric") {
                context.warning(pair.key.mark, linkPath.key("route-metric"), "only used with table: off; ignored")
            }
            var peers: [WireGuardPeer] = []
            if let peersNode = reader.value("peers"), let peerItems = context.items(peersNode, linkPath.key("peers")) {
                for (peerIndex, peerNode) in peerItems.enumerated() {
                    if let peer = decodePeer(peerNode, linkPath.key("peers").index(peerIndex)) { peers.append(peer) }
                }
            }
            reader.finish()
            guard let name, let privateKey else { continue }
            var link = WireGuardLink(name: name, privateKey: privateKey)
            link.addresses = addresses
            link.listenPort = listenPort
            link.mtu = mtu
            link.fwmark = fwmark
            link.table = table
            link.routeMetric = routeMetric
            link.peers = peers
            if table == .auto {
                for isIPv4 in [true, false]
                where peers.contains(where: { $0.allowedIPs.contains { $0.length == 0 && $0.address.isIPv4 == isIPv4 } }
                ) {
                    if let owner = defaultRouteOwner[isIPv4] {
                        context.error(
                            item.mark, linkPath.key("table"),
                            "\(isIPv4 ? "0.0.0.0/0" : "::/0") in allowed-ips with table: auto takes the default route, which link \(owner) already takes; give this link table: off (and route through it with a direct proxy bound to it) or a table number"
                        )
                    }
                    defaultRouteOwner[isIPv4] = name
                }
            }
            links.append(link)
        }
        return links
    }

    private func decodePeer(_ node: YAMLNode, _ path: String) -> WireGuardPeer? {
        guard let reader = context.mapping(node, path) else { return nil }
        var publicKey: WireGuardKey?
        if let keyNode = reader.value("public-key") {
            publicKey = key(keyNode, path.key("public-key"))
        } else {
            context.error(reader.mark, path, "missing required key \"public-key\"")
        }
        var presharedKey: WireGuardKey?
        reader.decode("preshared-key", intoOptional: &presharedKey, key)
        var endpoint: SocketEndpoint?
        reader.decode("endpoint", intoOptional: &endpoint) { context.endpoint($0, $1, allowingHostNames: true) }
        let allowedIPs = reader.decode("allowed-ips") { context.list($0, $1, allowSingle: true, context.prefix) } ?? []
        var keepalive: Int?
        reader.int("persistent-keepalive", 0...65535, into: &keepalive)
        reader.finish()
        guard let publicKey else { return nil }
        var peer = WireGuardPeer(publicKey: publicKey)
        peer.presharedKey = presharedKey
        peer.endpoint = endpoint
        peer.allowedIPs = allowedIPs
        peer.persistentKeepalive = keepalive
        return peer
    }

    private func key(_ node: YAMLNode, _ path: String) -> WireGuardKey? {
        let expected = "a base64 WireGuard key (32 bytes)"
        guard let text = context.scalarText(node, path, expected: expected) else { return nil }
        guard let key = WireGuardKey(base64: text) else {
            // Never echo what might be a secret in full; the first characters are enough to find it.
            let shown = text.count > 8 ? String(text.prefix(6)) + "..." : text
            context.error(
                node.mark, path,
                "expected \(expected), got \(DecodingContext.quote(shown)) "
                    + "(\(text.utf8.count) characters; generate one with `wg genkey`)")
            return nil
        }
        return key
    }

    private func routingTable(_ node: YAMLNode, _ path: String) -> WireGuardLink.Table? {
        let expected = "off, auto or a table number 1...4294967295"
        guard let text = context.scalarText(node, path, expected: expected) else { return nil }
        switch text.lowercased() {
        case "off": return .off
        case "auto": return .auto
        default:
            guard let value = DecodingContext.parseInteger(text), value >= 1, value <= Int(UInt32.max) else {
                context.error(node.mark, path, "expected \(expected), got \(DecodingContext.got(node))")
                return nil
            }
            return .id(UInt32(value))
        }
    }

    // MARK: supervisor

    func decodeSupervisor(_ node: YAMLNode, _ path: String, into supervisor: inout SupervisorConfiguration) {
        guard let reader = context.mapping(node, path) else { return }
        reader.decode("user", into: &supervisor.user, userName)
        reader.decode("group", intoOptional: &supervisor.group, userName)
        let minimum = Duration.milliseconds(10)
        reader.duration("heartbeat-interval", minimum: minimum, into: &supervisor.heartbeatInterval)
        reader.duration("heartbeat-timeout", minimum: minimum, into: &supervisor.heartbeatTimeout)
        if supervisor.heartbeatTimeout <= supervisor.heartbeatInterval {
            let pair = reader.pair("heartbeat-timeout") ?? reader.pair("heartbeat-interval")
            context.error(
                pair?.value.mark ?? reader.mark, path.key("heartbeat-timeout"),
                "must be longer than heartbeat-interval (\(DecodingContext.render(supervisor.heartbeatInterval))), "
                    + "got \(DecodingContext.render(supervisor.heartbeatTimeout))")
        }
        if let restartNode = reader.value("restart"), let restart = context.mapping(restartNode, path.key("restart")) {
            restart.duration("min-delay", into: &supervisor.restart.minDelay)
            restart.duration("max-delay", into: &supervisor.restart.maxDelay)
            restart.int("max-restarts", 0...1_000_000, into: &supervisor.restart.maxRestarts)
            restart.duration("window", minimum: .seconds(1), into: &supervisor.restart.window)
            restart.duration("stable-after", into: &supervisor.restart.stableAfter)
            if supervisor.restart.maxDelay < supervisor.restart.minDelay {
                let mark = restart.pair("max-delay")?.value.mark ?? restart.mark
                context.error(
                    mark, path.key("restart").key("max-delay"),
                    "must not be shorter than min-delay (\(DecodingContext.render(supervisor.restart.minDelay)))")
            }
            restart.finish()
        }
        reader.duration("stop-timeout", minimum: minimum, into: &supervisor.stopTimeout)
        reader.finish()
    }

    /// A user or group name as useradd accepts it (or a numeric id).
    private func userName(_ node: YAMLNode, _ path: String) -> String? {
        guard let text = context.string(node, path) else { return nil }
        let valid =
            text.utf8.count <= 32 && text.first != "-"
            && text.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                    || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
            }
        guard valid else {
            context.error(
                node.mark, path,
                "expected a user or group name (letters, digits, '_', '-', '.'), got "
                    + DecodingContext.got(node))
            return nil
        }
        return text
    }
}
