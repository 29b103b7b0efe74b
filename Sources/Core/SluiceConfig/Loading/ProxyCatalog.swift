import SluiceNet

/// The proxy protocols a loader knows, asked once per proxy of `proxies:`.
///
/// The configuration knows no protocol settings (mihomo's design: a proxy's mapping is decoded by its adapter):
/// the outbound registry (`OutboundRegistry` in SluiceOutbounds) is the catalog sluiced passes to
/// ``ConfigLoader``, and each protocol decodes its own keys through the ``ProxyDecoder`` it is handed, reporting
/// into the loader's ``DecodingContext`` so its messages read like every other section's.
public protocol ProxyCatalog: Sendable {
    /// Decodes the proxy `decoder` reads. Nil when no protocol answers to `decoder.type` (the loader then leaves
    /// the proxy out with its "not supported" or "unknown proxy type" warning).
    func decodeProxy(_ decoder: ProxyDecoder) -> ProxyDecoding?
}

/// What became of one proxy a catalog decoded.
public enum ProxyDecoding: Sendable {
    /// It loads; what the configuration and the API keep about it.
    case loaded(ProxySummary)
    /// Left out with a warning (already reported); the reason in a few words, for the groups that list it.
    case leftOut(String)
    /// An error was reported.
    case failed
}

/// What the configuration and the API keep of a loaded proxy besides its mapping.
public struct ProxySummary: Sendable, Equatable {
    /// The API's type name (`Socks5`).
    public var typeName: String
    public var udp: Bool
    /// The API's `interface` and `routing-mark`.
    public var shown: DialOptions

    public init(typeName: String, udp: Bool, shown: DialOptions = DialOptions()) {
        self.typeName = typeName
        self.udp = udp
        self.shown = shown
    }
}

/// One proxy's mapping with the decoding helpers every protocol shares (server, dial options, password), for a
/// protocol's settings decoder.
public struct ProxyDecoder {
    /// The proxy's `name`.
    public let name: String
    /// Its `type:`, lowercased.
    public let type: String
    /// The `type:` value (warnings about the type point here).
    public let typeNode: YAMLNode
    public let reader: MappingReader
    /// The key path of the proxy (`proxies[2]`).
    public let path: String

    public init(name: String, type: String, typeNode: YAMLNode, reader: MappingReader, path: String) {
        self.name = name
        self.type = type
        self.typeNode = typeNode
        self.reader = reader
        self.path = path
    }

    /// A decoder over a loaded proxy's stored mapping, reporting into a fresh context (the tun worker decodes the
    /// settings again; the loader already reported everything). Nil when the mapping is not one.
    public init?(_ proxy: Proxy) {
        let context = DecodingContext()
        guard let reader = context.mapping(proxy.settings, "proxies") else { return nil }
        self.init(
            name: proxy.name, type: proxy.type, typeNode: reader.value("type") ?? proxy.settings, reader: reader,
            path: "proxies")
    }

    public var context: DecodingContext { reader.context }

    /// The end of every left-out warning: `proxy "NAME" left out`.
    public var leftOut: String { "proxy \"\(name)\" left out" }

    /// `password`: passwords may legitimately be empty or numeric; any scalar is its text.
    public func password(into target: inout String?) {
        reader.decode("password", into: &target) { context.string($0, $1, allowEmpty: true) }
    }

    /// `interface-name` and `routing-mark`.
    public func dialOptions() -> DialOptions {
        var options = DialOptions()
        reader.decode("interface-name", intoOptional: &options.interfaceName, context.interfaceName)
        reader.decode("routing-mark", intoOptional: &options.routingMark, context.uint32)
        return options
    }

    /// `server` (a host name or IP, IPv6 with or without brackets) and `port`, both required.
    public func serverEndpoint() -> SocketEndpoint? {
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
