import SluiceConfig
import SluiceNet

/// A `type: ss` Shadowsocks AEAD proxy.
package struct ShadowsocksSettings: ProxySettings, Equatable {
    /// The AEAD ciphers sluice implements.
    package enum Cipher: String, Sendable, Equatable, CaseIterable {
        case aes128GCM = "aes-128-gcm"
        case aes256GCM = "aes-256-gcm"
        case chacha20IETFPoly1305 = "chacha20-ietf-poly1305"
    }

    package var server: SocketEndpoint
    package var cipher: Cipher
    package var password: String
    package var udp = false
    package var dial = DialOptions()

    package init(server: SocketEndpoint, cipher: Cipher, password: String) {
        self.server = server
        self.cipher = cipher
        self.password = password
    }

    /// The interface only: the API has shown no mark for proxies other than direct.
    package var shown: DialOptions { DialOptions(interfaceName: dial.interfaceName) }

    /// Ciphers mihomo v1.19.32 accepts (checked with `mihomo -t`) and sluice does not implement; a proxy using
    /// one is left out with a warning. Other unknown names are errors, as in mihomo.
    static let unsupportedCiphers: Set<String> = [
        "aes-192-gcm", "xchacha20-ietf-poly1305", "chacha8-ietf-poly1305", "xchacha8-ietf-poly1305",
        "aes-128-ctr", "aes-192-ctr", "aes-256-ctr", "aes-128-cfb", "aes-192-cfb", "aes-256-cfb", "rc4-md5",
        "chacha20-ietf", "chacha20", "xchacha20", "none", "aes-128-ccm", "aes-256-ccm", "aes-128-gcm-siv",
        "aes-256-gcm-siv", "rabbit128-poly1305", "aegis-128l", "aegis-256", "aez-384", "deoxys-ii-256-128",
    ]

    package static func decode(_ proxy: ProxyDecoder) -> SettingsDecoding<Self> {
        let reader = proxy.reader
        let context = reader.context
        let path = proxy.path
        let leftOut = proxy.leftOut
        if let plugin = reader.pair("plugin"), !plugin.value.isNull {
            reader.accept("plugin-opts")
            context.warning(
                plugin.key.mark, path.key("plugin"),
                "Shadowsocks plugins are not supported by sluice; \(leftOut)")
            return .leftOut("Shadowsocks plugin not supported")
        }
        let server = proxy.serverEndpoint()
        var cipher: Cipher?
        if let cipherNode = reader.value("cipher") {
            let cipherPath = path.key("cipher")
            if let text = context.string(cipherNode, cipherPath) {
                let lower = text.lowercased()
                if let known = Cipher(rawValue: lower) {
                    cipher = known
                } else if lower.hasPrefix("2022-blake3-") {
                    context.warning(cipherNode.mark, cipherPath, "\(lower) is not supported yet; \(leftOut)")
                    return .leftOut("cipher \(lower) not supported yet")
                } else if unsupportedCiphers.contains(lower) {
                    // Valid for mihomo, so the config must load: leave this proxy out, as an unsupported type.
                    context.warning(
                        cipherNode.mark, cipherPath,
                        "cipher \(lower) is not supported by sluice (it has aes-128-gcm, aes-256-gcm and "
                            + "chacha20-ietf-poly1305); \(leftOut)")
                    return .leftOut("cipher \(lower) not supported")
                } else {
                    context.error(
                        cipherNode.mark, cipherPath,
                        "expected one of aes-128-gcm, aes-256-gcm, chacha20-ietf-poly1305; got "
                            + DecodingContext.got(cipherNode))
                }
            }
        } else {
            context.error(reader.mark, path, "missing required key \"cipher\"")
        }
        var password: String?
        proxy.password(into: &password)
        if password == nil && !reader.has("password") {
            context.error(reader.mark, path, "missing required key \"password\"")
        }
        guard let server, let cipher, let password else { return .failed }
        var ss = ShadowsocksSettings(server: server, cipher: cipher, password: password)
        reader.bool("udp", into: &ss.udp)
        ss.dial = proxy.dialOptions()
        return .loaded(ss)
    }
}

extension ShadowsocksOutbound: RegisteredOutbound {
    package static let typeNames = ["ss"]
    package static let apiTypeName = "Shadowsocks"

    package static func make(name: String, settings: ShadowsocksSettings, context: OutboundContext) -> Self {
        ShadowsocksOutbound(name: name, config: settings, dial: context.dial(settings.dial), resolver: context.resolver)
    }
}
