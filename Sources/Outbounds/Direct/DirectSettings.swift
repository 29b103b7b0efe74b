import SluiceConfig

/// A `type: direct` proxy: connect straight to the destination, optionally through a chosen interface.
package struct DirectSettings: ProxySettings, Equatable {
    package var dial = DialOptions()
    package var ipVersion: IPVersion = .dual
    package var udp = true

    package init() {}

    package var shown: DialOptions { dial }

    package static func decode(_ proxy: ProxyDecoder) -> SettingsDecoding<Self> {
        let reader = proxy.reader
        var direct = DirectSettings()
        direct.dial = proxy.dialOptions()
        reader.decode("ip-version", into: &direct.ipVersion) {
            reader.context.choice($0, $1, [IPVersion.ipv4, .ipv6, .dual, .ipv4Prefer, .ipv6Prefer])
        }
        reader.bool("udp", into: &direct.udp)
        return .loaded(direct)
    }
}

extension DirectOutbound: RegisteredOutbound {
    package static let typeNames = ["direct"]
    package static let apiTypeName = "Direct"

    package static func make(name: String, settings: DirectSettings, context: OutboundContext) -> Self {
        DirectOutbound(name: name, dial: context.dial(settings.dial), ipVersion: settings.ipVersion, udp: settings.udp)
    }
}
