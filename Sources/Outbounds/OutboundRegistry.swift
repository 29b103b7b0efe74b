import Logging
import SluiceConfig

/// The outbound protocols sluice implements, one line each (mihomo's `adapter/parser.go`, sing-box's
/// `include/registry.go`). Adding a protocol: its folder under `Sources/Outbounds/`, a line here, and its name out
/// of `ConfigurationDecoder.knownUnsupportedProxyTypes` (docs/architecture.md, "Adding an outbound protocol").
public enum OutboundRegistry {
    package static let protocols: [any RegisteredOutbound.Type] = [
        DirectOutbound.self,
        SOCKS5Outbound.self,
        HTTPOutbound.self,
        ShadowsocksOutbound.self,
    ]

    /// The catalog the configuration loader asks per proxy (sluiced's check, run and reload).
    public static let catalog: any ProxyCatalog = OutboundCatalog()

    /// Outbounds by name: DIRECT and every proxy of the configuration whose protocol is registered (`reject`
    /// proxies are the dispatcher's: they resolve to REJECT). A proxy that no longer decodes (the loader checked
    /// it, so only a worker older than sluiced) is left out with an error: rules naming it reject.
    package static func outbounds(
        for configuration: SluiceConfiguration, context: OutboundContext, logger: Logger
    ) -> [String: any Outbound] {
        var outbounds: [String: any Outbound] = [
            BuiltinTarget.direct.rawValue: DirectOutbound(
                name: BuiltinTarget.direct.rawValue, dial: DialSettings(egress: context.egress))
        ]
        for proxy in configuration.proxies where !proxy.isReject {
            guard let registered = protocols.first(where: { $0.typeNames.contains(proxy.type) }),
                let decoder = ProxyDecoder(proxy)
            else {
                logger.error("proxy \"\(proxy.name)\": no outbound of type \(proxy.type); its traffic is rejected")
                continue
            }
            guard let outbound = make(registered, name: proxy.name, decoder: decoder, context: context) else {
                logger.error("proxy \"\(proxy.name)\": its settings do not decode; its traffic is rejected")
                continue
            }
            outbounds[proxy.name] = outbound
        }
        return outbounds
    }

    private static func make<P: RegisteredOutbound>(
        _: P.Type, name: String, decoder: ProxyDecoder, context: OutboundContext
    ) -> (any Outbound)? {
        guard case .loaded(let settings) = P.Settings.decode(decoder) else { return nil }
        return P.make(name: name, settings: settings, context: context)
    }
}

/// The registry as the configuration loader sees it.
private struct OutboundCatalog: ProxyCatalog {
    func decodeProxy(_ decoder: ProxyDecoder) -> ProxyDecoding? {
        guard let registered = OutboundRegistry.protocols.first(where: { $0.typeNames.contains(decoder.type) }) else {
            return nil
        }
        return Self.decode(registered, decoder)
    }

    private static func decode<P: RegisteredOutbound>(_: P.Type, _ decoder: ProxyDecoder) -> ProxyDecoding {
        switch P.Settings.decode(decoder) {
        case .loaded(let settings):
            .loaded(ProxySummary(typeName: P.apiTypeName, udp: settings.udp, shown: settings.shown))
        case .leftOut(let reason):
            .leftOut(reason)
        case .failed:
            .failed
        }
    }
}
