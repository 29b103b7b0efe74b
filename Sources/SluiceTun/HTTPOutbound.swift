import SluiceConfig
import SluiceNet
import SluiceProxy
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// An `http` proxy: HTTP CONNECT (with basic authentication and the configured extra
/// headers), then spliced like DIRECT. TCP only; `tls: true` is refused when the
/// configuration loads.
struct HTTPOutbound: Outbound {
    let name: String
    let config: HTTPProxy
    let dial: DialSettings

    var sendsNames: Bool { true }

    func planTCP(to target: FlowTarget) throws(SystemError) -> TCPPlan {
        TCPPlan(
            hop: ProxyServer(endpoint: config.server).hop,
            handshake: HTTPConnectHandshake(
                target: target.proxyTarget, username: config.username, password: config.password,
                headers: config.headers.map { ($0.name, $0.value) }))
    }

    func connectTCP(to hop: InetEndpoint) throws(SystemError) -> OwnedDescriptor { try dial.connectTCP(to: hop) }

    var udpUnsupportedReason: String? { "HTTP proxies carry TCP only" }

    func openUDP(family: CInt) throws(SystemError) -> any UDPSession {
        throw SystemError("UDP through an HTTP proxy", errno: EOPNOTSUPP)
    }
}
