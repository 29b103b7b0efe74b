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
    package let config: HTTPProxy
    package let dial: DialSettings
    /// Set for `tls: true`.
    package let tls: ProxyTLS?

    package init(name: String, config: HTTPProxy, dial: DialSettings) {
        self.name = name
        self.config = config
        self.dial = dial
        self.tls = config.tls ? ProxyTLS(server: config.server, sni: config.sni, skipCertVerify: config.skipCertVerify) : nil
    }

    package var sendsNames: Bool { true }

    package func planTCP(to target: FlowTarget) throws(SystemError) -> TCPPlan {
        let hop = ProxyServer(endpoint: config.server).hop
        let connect = HTTPConnectHandshake(
            target: target.proxyTarget, username: config.username, password: config.password,
            headers: config.headers.map { ($0.name, $0.value) })
        if let tls { return try tls.plan(hop: hop, inner: connect) }
        return TCPPlan(hop: hop, handshake: connect)
    }

    package func connectTCP(to hop: InetEndpoint) throws(SystemError) -> OwnedDescriptor { try dial.connectTCP(to: hop) }

    package var udpUnsupportedReason: String? { "HTTP proxies carry TCP only" }

    package func openUDP(family: CInt) throws(SystemError) -> any UDPSession {
        throw SystemError("UDP through an HTTP proxy", errno: EOPNOTSUPP)
    }
}
