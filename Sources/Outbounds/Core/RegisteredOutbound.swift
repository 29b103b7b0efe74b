import SluiceConfig
import SluiceNet

/// An outbound protocol as the registry knows it: the `type:` names it answers to, its settings (decoded from
/// the proxy's mapping) and how an ``Outbound`` is made from them. One conformance per protocol folder, one
/// line in ``OutboundRegistry/protocols``.
package protocol RegisteredOutbound: Outbound {
    associatedtype Settings: ProxySettings
    /// The `type:` spellings it answers to, lowercased (`ss` for Shadowsocks).
    static var typeNames: [String] { get }
    /// The type name the Clash API shows (`Shadowsocks`).
    static var apiTypeName: String { get }
    /// The outbound of proxy `name`, for the tun worker.
    static func make(name: String, settings: Settings, context: OutboundContext) -> Self
}

/// A protocol's settings: decoded from a proxy's mapping when the configuration loads (reporting into the
/// loader's context, so the messages are the configuration's own) and again in the tun worker.
package protocol ProxySettings: Sendable {
    /// Reads the protocol's keys; the loader then warns about ignored and unknown keys.
    static func decode(_ proxy: ProxyDecoder) -> SettingsDecoding<Self>
    /// Whether the proxy carries UDP (the API's `udp`).
    var udp: Bool { get }
    /// What the API shows as `interface` and `routing-mark`.
    var shown: DialOptions { get }
}

/// What a protocol's decoder made of a proxy's mapping.
package enum SettingsDecoding<Settings> {
    case loaded(Settings)
    /// Left out with a warning (reported); the reason in a few words, for the groups that list it.
    case leftOut(String)
    /// An error was reported.
    case failed
}

/// What every outbound is made with: how its sockets avoid the TUN and how names are resolved.
package struct OutboundContext: Sendable {
    package let egress: EgressPolicy
    package let resolver: NameResolver

    package init(egress: EgressPolicy, resolver: NameResolver) {
        self.egress = egress
        self.resolver = resolver
    }

    /// The socket options of a proxy with these `interface-name` and `routing-mark`.
    package func dial(_ options: DialOptions) -> DialSettings { DialSettings(egress: egress, options) }
}
