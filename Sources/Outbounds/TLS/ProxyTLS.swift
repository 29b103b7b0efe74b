import SluiceNet
import SluiceSystem
import SluiceTLS

#if canImport(Glibc)
import Glibc
#endif

/// The TLS layer of a `tls: true` proxy (an HTTPS proxy, SOCKS5 over TLS): TLS to the
/// proxy server first, the proxy's own handshake inside it, then every relayed byte
/// through the session (a stream of layers, so these connections relay in userspace, not spliced).
package struct ProxyTLS: Sendable {
    /// Sent as SNI (unless an address) and checked against the certificate: `sni`, else
    /// the server's name or address.
    package let serverName: String
    /// Made once per configuration; an error (no CA store) fails each connection with it.
    private let context: Result<TLSClientContext, TLSError>

    package init(server: SocketEndpoint, sni: String?, skipCertVerify: Bool) {
        switch server.host {
        case .name(let name): serverName = sni ?? name
        case .address(let address): serverName = sni ?? address.description
        }
        context = Result { () throws(TLSError) in
            try TLSClientContext(verification: skipCertVerify ? .none : .system)
        }
    }

    /// A plan that runs `inner` inside a new TLS session and relays through it: a TLS layer with the handshake
    /// layer on top (dropped once established).
    package func plan(hop: TCPHop, inner: some ProxyHandshake) throws(OutboundError) -> TCPPlan {
        let session: TLSClientSession
        do {
            session = try TLSClientSession(context: context.get(), serverName: serverName)
        } catch {
            throw .tlsSetup(server: serverName, "\(error)")
        }
        return TCPPlan(hop: hop, .stream([TLSLayer(session), ProxyHandshakeLayer(inner)]))
    }
}
