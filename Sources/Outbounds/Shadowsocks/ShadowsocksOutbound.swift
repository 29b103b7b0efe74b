import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// An `ss` proxy (Shadowsocks AEAD): TCP relayed through userspace, every byte sealed;
/// UDP when `udp: true`, each datagram sealed on its own. Names of fake destinations go
/// to the server as names.
package struct ShadowsocksOutbound: Outbound {
    package let name: String
    package let config: ShadowsocksSettings
    /// Derived once from the password (EVP_BytesToKey).
    package let key: ShadowsocksKey
    package let dial: DialSettings
    package let resolver: NameResolver

    package init(name: String, config: ShadowsocksSettings, dial: DialSettings, resolver: NameResolver) {
        self.name = name
        self.config = config
        self.key = ShadowsocksKey(method: Self.method(config.cipher), password: config.password)
        self.dial = dial
        self.resolver = resolver
    }

    package static func method(_ cipher: ShadowsocksSettings.Cipher) -> ShadowsocksMethod {
        switch cipher {
        case .aes128GCM: .aes128GCM
        case .aes256GCM: .aes256GCM
        case .chacha20IETFPoly1305: .chacha20IETFPoly1305
        }
    }

    package var server: ProxyServer { ProxyServer(endpoint: config.server) }
    package var sendsNames: Bool { true }

    package func planTCP(to target: FlowTarget) throws(OutboundError) -> TCPPlan {
        TCPPlan(hop: server.hop, .stream([ShadowsocksLayer(key: key, target: target.proxyTarget)]))
    }

    package func connectTCP(to hop: InetEndpoint) throws(SystemError) -> OwnedDescriptor {
        try dial.connectTCP(to: hop)
    }

    package var udpUnsupportedReason: String? { config.udp ? nil : "udp is off for this ss proxy (set udp: true)" }

    package func openUDP(family: CInt) throws -> any UDPSession {
        ShadowsocksUDPSession(outbound: self)
    }
}
