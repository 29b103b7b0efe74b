import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// An `http` proxy: HTTP CONNECT (with basic authentication and the configured extra
/// headers), then spliced like DIRECT. With `tls: true` (an HTTPS proxy) the CONNECT runs
/// inside TLS to the proxy and the relay goes through the session. TCP only.
package struct HTTPOutbound: Outbound {
    package let name: String
    package let config: HTTPSettings
    package let dial: DialSettings
    /// Set for `tls: true`.
    package let tls: ProxyTLS?

    package init(name: String, config: HTTPSettings, dial: DialSettings) {
        self.name = name
        self.config = config
        self.dial = dial
        self.tls =
            config.tls ? ProxyTLS(server: config.server, sni: config.sni, skipCertVerify: config.skipCertVerify) : nil
    }

    package var sendsNames: Bool { true }

    package func planTCP(to target: FlowTarget) throws(OutboundError) -> TCPPlan {
        let hop = ProxyServer(endpoint: config.server).hop
        let connect = HTTPConnectHandshake(
            target: target.proxyTarget, username: config.username, password: config.password,
            headers: config.headers.map { ($0.name, $0.value) })
        if let tls { return try tls.plan(hop: hop, inner: connect) }
        return TCPPlan(hop: hop, .socket(handshake: connect))
    }

    package func connectTCP(to hop: InetEndpoint) throws(SystemError) -> OwnedDescriptor {
        try dial.connectTCP(to: hop)
    }

    package var udpUnsupportedReason: String? { "HTTP proxies carry TCP only" }

    package func openUDP(family: CInt) throws -> any UDPSession {
        throw OutboundError.udpUnsupported("proxy \"\(name)\": HTTP proxies carry TCP only")
    }
}
