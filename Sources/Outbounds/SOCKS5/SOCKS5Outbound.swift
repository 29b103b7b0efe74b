import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// A `socks5` proxy: CONNECT for TCP (then spliced like DIRECT), UDP ASSOCIATE for UDP
/// when `udp: true`. Names of fake destinations go to the proxy as names. With
/// `tls: true` the SOCKS5 handshake runs inside TLS to the proxy and TCP relays through
/// the session; UDP is refused then (the association's control connection would need a
/// TLS session watched for the rest of its life: not done yet).
package struct SOCKS5Outbound: Outbound {
    package let name: String
    package let config: SOCKS5Settings
    package let dial: DialSettings
    package let resolver: NameResolver
    /// Set for `tls: true`.
    package let tls: ProxyTLS?

    package init(name: String, config: SOCKS5Settings, dial: DialSettings, resolver: NameResolver) {
        self.name = name
        self.config = config
        self.dial = dial
        self.resolver = resolver
        self.tls = config.tls ? ProxyTLS(server: config.server, sni: nil, skipCertVerify: config.skipCertVerify) : nil
    }

    package var server: ProxyServer { ProxyServer(endpoint: config.server) }
    package var sendsNames: Bool { true }

    package func planTCP(to target: FlowTarget) throws(OutboundError) -> TCPPlan {
        let connect = SOCKS5Handshake(
            command: .connect, target: target.proxyTarget, username: config.username, password: config.password)
        if let tls { return try tls.plan(hop: server.hop, inner: connect) }
        return TCPPlan(hop: server.hop, .socket(handshake: connect))
    }

    package func connectTCP(to hop: InetEndpoint) throws(SystemError) -> OwnedDescriptor {
        try dial.connectTCP(to: hop)
    }

    package var udpUnsupportedReason: String? {
        if !config.udp { return "udp is off for this socks5 proxy (set udp: true)" }
        return tls == nil ? nil : "UDP through a socks5 proxy with tls: true is not supported yet"
    }

    package func openUDP(family: CInt) throws -> any UDPSession {
        SOCKS5UDPSession(outbound: self)
    }
}
