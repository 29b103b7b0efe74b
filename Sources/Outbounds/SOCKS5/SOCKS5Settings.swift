import SluiceConfig
import SluiceNet

/// A `type: socks5` proxy.
package struct SOCKS5Settings: ProxySettings, Equatable {
    package var server: SocketEndpoint
    package var username: String?
    package var password: String?
    package var udp = false
    package var tls = false
    package var skipCertVerify = false
    package var dial = DialOptions()

    package init(server: SocketEndpoint) {
        self.server = server
    }

    /// The interface only: the API has shown no mark for proxies other than direct.
    package var shown: DialOptions { DialOptions(interfaceName: dial.interfaceName) }

    package static func decode(_ proxy: ProxyDecoder) -> SettingsDecoding<Self> {
        let reader = proxy.reader
        guard let server = proxy.serverEndpoint() else { return .failed }
        var socks = SOCKS5Settings(server: server)
        reader.string("username", into: &socks.username)
        proxy.password(into: &socks.password)
        reader.bool("udp", into: &socks.udp)
        reader.bool("tls", into: &socks.tls)
        reader.bool("skip-cert-verify", into: &socks.skipCertVerify)
        socks.dial = proxy.dialOptions()
        if socks.tls && socks.udp {
            reader.context.warning(
                reader.value("udp")?.mark ?? reader.mark, proxy.path.key("udp"),
                "UDP through a socks5 proxy with tls: true is not supported yet; UDP matched to proxy \"\(proxy.name)\" is refused"
            )
        }
        return .loaded(socks)
    }
}

extension SOCKS5Outbound: RegisteredOutbound {
    package static let typeNames = ["socks5"]
    package static let apiTypeName = "Socks5"

    package static func make(name: String, settings: SOCKS5Settings, context: OutboundContext) -> Self {
        SOCKS5Outbound(name: name, config: settings, dial: context.dial(settings.dial), resolver: context.resolver)
    }
}
