import SluiceConfig
import SluiceNet

/// A `type: http` proxy (HTTP CONNECT).
package struct HTTPSettings: ProxySettings, Equatable {
    /// One extra request header, kept in file order.
    package struct Header: Sendable, Equatable {
        package var name: String
        package var value: String

        package init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    package var server: SocketEndpoint
    package var username: String?
    package var password: String?
    package var tls = false
    package var sni: String?
    package var skipCertVerify = false
    package var headers: [Header] = []
    package var dial = DialOptions()

    package init(server: SocketEndpoint) {
        self.server = server
    }

    /// HTTP proxies carry TCP only.
    package var udp: Bool { false }
    /// The interface only: the API has shown no mark for proxies other than direct.
    package var shown: DialOptions { DialOptions(interfaceName: dial.interfaceName) }

    package static func decode(_ proxy: ProxyDecoder) -> SettingsDecoding<Self> {
        let reader = proxy.reader
        let context = reader.context
        let path = proxy.path
        guard let server = proxy.serverEndpoint() else { return .failed }
        var http = HTTPSettings(server: server)
        reader.string("username", into: &http.username)
        proxy.password(into: &http.password)
        reader.bool("tls", into: &http.tls)
        reader.string("sni", into: &http.sni)
        reader.bool("skip-cert-verify", into: &http.skipCertVerify)
        if let headersNode = reader.value("headers"),
            let headers = context.mapping(headersNode, path.key("headers"))
        {
            for pair in headers.pairs {
                let header = pair.key.scalar?.value ?? ""
                if let value = context.string(pair.value, path.key("headers").key(header), allowEmpty: true) {
                    http.headers.append(Header(name: header, value: value))
                }
            }
        }
        http.dial = proxy.dialOptions()
        return .loaded(http)
    }
}

extension HTTPOutbound: RegisteredOutbound {
    package static let typeNames = ["http"]
    package static let apiTypeName = "Http"

    package static func make(name: String, settings: HTTPSettings, context: OutboundContext) -> Self {
        HTTPOutbound(name: name, config: settings, dial: context.dial(settings.dial))
    }
}
