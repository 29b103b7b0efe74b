import SluiceNet

extension ConfigurationDecoder {
    /// mihomo `tun:` keys that sluice accepts and ignores with a warning.
    static let ignoredTunKeys: [String] = [
        "gso-max-size", "endpoint-independent-nat", "include-uid", "include-uid-range", "exclude-uid",
        "exclude-uid-range", "include-android-user", "include-package", "exclude-package",
        "auto-redirect-input-mark", "auto-redirect-output-mark", "loopback-address", "route-address-set",
        "route-exclude-address-set", "recvmsgx", "sendmsgx", "udp-timeout-ms", "disable-icmp-forwarding",
    ]

    /// Decodes `tun:`; returns whether `tun.routing-mark` was given (it wins over the top-level key).
    func decodeTun(_ node: YAMLNode, _ path: String, into tun: inout TunConfiguration) -> Bool {
        guard let reader = context.mapping(node, path) else { return false }
        reader.bool("enable", into: &tun.enable)
        if let stackNode = reader.value("stack"),
            let text = context.scalarText(stackNode, path.key("stack"), expected: "system")
        {
            switch text.lowercased() {
            case "system":
                break
            case "gvisor", "mixed":
                // mihomo's user-space stacks; sluice has one stack, so the config runs on it. The routing is
                // the same; only where TCP is terminated differs.
                context.warning(
                    stackNode.mark, path.key("stack"),
                    "\(DecodingContext.quote(text)) is not implemented by sluice; running its \"system\" stack")
            default:
                context.error(
                    stackNode.mark, path.key("stack"),
                    "expected system, gvisor or mixed (sluice runs \"system\" for all three), got "
                        + DecodingContext.quote(text))
            }
        }
        let deviceNode = reader.value("device")
        if let deviceNode, let name = context.interfaceName(deviceNode, path.key("device")) {
            tun.device = name
        }
        if let urlNode = reader.value("device-url") {
            decodeDeviceURL(urlNode, path.key("device-url"), conflictsWith: deviceNode, into: &tun)
        }
        if let fdNode = reader.value("file-descriptor"),
            let fd = context.int(fdNode, path.key("file-descriptor"), 0...65535),
            fd > 0
        {
            // mihomo's Android-style inherited descriptor; same meaning as device-url: fd://N.
            if tun.inheritedFileDescriptor != nil && tun.inheritedFileDescriptor != Int32(fd) {
                context.error(fdNode.mark, path.key("file-descriptor"), "conflicts with device-url; set only one")
            }
            tun.inheritedFileDescriptor = Int32(fd)
        }
        reader.int("mtu", 576...65535, into: &tun.mtu)
        reader.decode("inet4-address", into: &tun.inet4Address) { node, path in
            familyPrefixes(node, path, ipv4: true)
        }
        reader.decode("inet6-address", into: &tun.inet6Address) { node, path in
            familyPrefixes(node, path, ipv4: false)
        }
        reader.bool("auto-route", into: &tun.autoRoute)
        reader.bool("auto-detect-interface", into: &tun.autoDetectInterface)
        reader.bool("strict-route", into: &tun.strictRoute)
        reader.bool("gso", into: &tun.gso)
        if let hijack = reader.decode("dns-hijack", { context.list($0, $1, allowSingle: true, dnsHijack) }) {
            tun.dnsHijack = hijack
        }
        if let listenNode = reader.value("dns-listen"),
            let endpoint = context.endpoint(listenNode, path.key("dns-listen"), allowingHostNames: false),
            case .address(let address) = endpoint.host
        {
            // Older Clash form: one address the TUN answers DNS on; the same as one more hijack entry.
            let entry = DNSHijack(
                transport: .both, address: Self.isUnspecified(address) ? nil : address,
                port: endpoint.port)
            if !tun.dnsHijack.contains(entry) { tun.dnsHijack.append(entry) }
        }
        // mihomo's older per-family route keys are merged into the unified lists.
        for key in ["route-address", "inet4-route-address", "inet6-route-address"] {
            if let prefixes = reader.decode(key, { context.list($0, $1, allowSingle: true, context.prefix) }) {
                tun.routeAddress += prefixes
            }
        }
        for key in ["route-exclude-address", "inet4-route-exclude-address", "inet6-route-exclude-address"] {
            if let prefixes = reader.decode(key, { context.list($0, $1, allowSingle: true, context.prefix) }) {
                tun.routeExcludeAddress += prefixes
            }
        }
        reader.int("udp-timeout", 1...86400, into: &tun.udpTimeout)
        reader.int("iproute2-table-index", 1...Int(Int32.max), into: &tun.iproute2TableIndex)
        reader.int("iproute2-rule-index", 1...Int(Int32.max), into: &tun.iproute2RuleIndex)
        var routingMarkSet = false
        if let mark = reader.decode("routing-mark", context.uint32) {
            tun.routingMark = mark
            routingMarkSet = true
        }
        for key in ["include-interface", "exclude-interface"] {
            if let names = reader.decode(key, { context.list($0, $1, allowSingle: true, context.interfaceName) }) {
                if key == "include-interface" { tun.includeInterface = names } else { tun.excludeInterface = names }
            }
        }
        if !tun.includeInterface.isEmpty && !tun.excludeInterface.isEmpty, let pair = reader.pair("exclude-interface") {
            context.error(
                pair.key.mark, path.key("exclude-interface"),
                "include-interface and exclude-interface cannot both be set")
        }
        reader.ignore(["auto-redirect"], because: "not supported by sluice (it routes with policy rules); ignored")
        reader.ignore(Self.ignoredTunKeys)
        reader.finish()
        return routingMarkSet
    }

    /// `dev://NAME` names the device; `fd://N` uses an inherited descriptor. Either conflicts with `device`.
    private func decodeDeviceURL(
        _ node: YAMLNode, _ path: String, conflictsWith deviceNode: YAMLNode?, into tun: inout TunConfiguration
    ) {
        let expected = "dev://NAME or fd://N"
        guard let text = context.scalarText(node, path, expected: expected) else { return }
        if let deviceNode {
            context.error(node.mark, path, "conflicts with tun.device (line \(deviceNode.mark.line)); set only one")
            return
        }
        if text.hasPrefix("dev://") {
            let name = String(text.dropFirst("dev://".count))
            guard DecodingContext.isValidInterfaceName(name) else {
                context.error(
                    node.mark, path,
                    "expected dev://NAME with a 1-15 character interface name, got \(DecodingContext.got(node))")
                return
            }
            tun.device = name
        } else if text.hasPrefix("fd://") {
            guard let fd = DecodingContext.parseInteger(String(text.dropFirst("fd://".count))), fd >= 0,
                fd <= Int(Int32.max), text.dropFirst(5).allSatisfy(\.isNumber)
            else {
                context.error(
                    node.mark, path, "expected fd://N with a descriptor number, got \(DecodingContext.got(node))")
                return
            }
            // 0, 1 and 2 are stdio under systemd; a TUN descriptor there is certainly a mistake.
            guard fd > 2 else {
                context.error(node.mark, path, "fd://\(fd) is a standard stream, not a TUN descriptor; use 3 or higher")
                return
            }
            tun.inheritedFileDescriptor = Int32(fd)
        } else {
            context.error(node.mark, path, "expected \(expected), got \(DecodingContext.got(node))")
        }
    }

    private func familyPrefixes(_ node: YAMLNode, _ path: String, ipv4: Bool) -> [IPPrefix]? {
        context.list(node, path, allowSingle: true) { item, itemPath in
            guard let prefix = context.prefix(item, itemPath) else { return nil }
            guard prefix.address.isIPv4 == ipv4 else {
                context.error(item.mark, itemPath, "expected an \(ipv4 ? "IPv4" : "IPv6") prefix, got \(prefix)")
                return nil
            }
            return prefix
        }
    }

    static func isUnspecified(_ address: IPAddress) -> Bool {
        address == .v4(.any) || address == .v6(.any)
    }

    /// Parses `any:53`, `tcp://any:53`, `udp://1.2.3.4:53`, `0.0.0.0:53` or `[::]:53`; a missing port means 53.
    /// An unspecified address (`0.0.0.0`, `::`) means any address, as in mihomo.
    func dnsHijack(_ node: YAMLNode, _ path: String) -> DNSHijack? {
        let expected = "[udp://|tcp://]ADDRESS[:PORT] where ADDRESS is any or an IP, e.g. any:53 or tcp://8.8.8.8:53"
        guard let fullText = context.scalarText(node, path, expected: expected) else { return nil }
        var text = Substring(fullText)
        var transport = DNSHijack.Transport.both
        if text.hasPrefix("udp://") {
            transport = .udp
            text = text.dropFirst(6)
        } else if text.hasPrefix("tcp://") {
            transport = .tcp
            text = text.dropFirst(6)
        }
        if text.lowercased().hasPrefix("any") {
            let rest = text.dropFirst(3)
            if rest.isEmpty { return DNSHijack(transport: transport, address: nil, port: 53) }
            if rest.first == ":", let port = SocketEndpoint.parsePort(rest.dropFirst()), port != 0 {
                return DNSHijack(transport: transport, address: nil, port: port)
            }
        } else if let endpoint = SocketEndpoint.parse(text, defaultPort: 53), case .address(let address) = endpoint.host
        {
            return DNSHijack(
                transport: transport, address: Self.isUnspecified(address) ? nil : address,
                port: endpoint.port)
        }
        context.error(node.mark, path, "expected \(expected), got \(DecodingContext.got(node))")
        return nil
    }
}
