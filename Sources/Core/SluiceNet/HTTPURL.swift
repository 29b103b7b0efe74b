/// An `http://` or `https://` URL taken apart as far as a client that opens one request needs: scheme, host, port
/// and the request target. Proxy-group health checks and delay tests parse their `url` with it (one parser, rather
/// than splitting strings where each URL is used).
///
/// The authority is parsed like any endpoint (``SocketEndpoint/parse(_:allowingHostNames:defaultPort:)``): a
/// bracketed IPv6 literal, an IPv4 literal or a valid host name, with an optional port (80 or 443 by default).
/// User information, and fragments, are not supported: such a URL is not parsed.
public struct HTTPURL: Hashable, Sendable {
    /// `https`: the request would need TLS.
    public var secure: Bool
    /// The host and port to reach.
    public var endpoint: SocketEndpoint
    /// What follows the authority, at least `/` (the request target of a GET).
    public var path: String

    /// The host as the request's `Host:` header names it.
    public var host: String { endpoint.host.description }
    public var port: UInt16 { endpoint.port }

    public init(secure: Bool, endpoint: SocketEndpoint, path: String = "/") {
        self.secure = secure
        self.endpoint = endpoint
        self.path = path
    }

    /// Parses `http://HOST[:PORT][/PATH]` or `https://...`; nil for anything else.
    public init?(_ text: some StringProtocol) {
        let text = Substring(text)
        let secure: Bool
        var rest: Substring
        if text.hasPrefix("http://") {
            secure = false
            rest = text.dropFirst(7)
        } else if text.hasPrefix("https://") {
            secure = true
            rest = text.dropFirst(8)
        } else {
            return nil
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        rest = rest[..<slash]
        guard !rest.contains("@"), !path.contains("#"),
            let endpoint = SocketEndpoint.parse(rest, allowingHostNames: true, defaultPort: secure ? 443 : 80)
        else { return nil }
        self.init(secure: secure, endpoint: endpoint, path: path)
    }
}
