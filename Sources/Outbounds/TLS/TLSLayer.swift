import SluiceTLS

/// TLS to the server as a stream layer: the handshake (certificate checked against ``ProxyTLS/serverName`` unless
/// `skip-cert-verify`), then every byte sealed into records and the server's records opened. Stacked under a proxy
/// handshake for `tls: true` proxies (an HTTPS proxy, SOCKS5 over TLS).
package final class TLSLayer: StreamLayer {
    package let session: TLSClientSession

    package init(_ session: TLSClientSession) { self.session = session }

    package func start() -> StreamLayerStep { receive(UnsafeRawBufferPointer(start: nil, count: 0)) }

    package func receive(_ bytes: UnsafeRawBufferPointer) -> StreamLayerStep {
        do throws(TLSError) {
            try session.handshake(bytes)
            var out: [UInt8] = []
            session.drainOutgoing(into: &out)
            guard session.isEstablished else { return .send(out) }
            // Records that came with the server's last handshake flight (a proxy does not speak first, but TLS 1.3
            // session tickets arrive here).
            var plaintext: [UInt8] = []
            try session.decrypt(UnsafeRawBufferPointer(start: nil, count: 0), into: &plaintext)
            session.drainOutgoing(into: &out)
            return .established(send: out, leftover: plaintext)
        } catch {
            return .failed("TLS: \(error)")
        }
    }

    package var isTransparent: Bool { false }

    package func seal(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(OutboundError) {
        do {
            try session.encrypt(bytes)
        } catch {
            throw .streamUndecodable("TLS", "\(error)")
        }
        // Also what reading queued for the server (a TLS 1.3 KeyUpdate answer).
        session.drainOutgoing(into: &out)
    }

    package func open(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(OutboundError) {
        do {
            try session.decrypt(bytes, into: &out)
        } catch {
            throw .streamUndecodable("TLS", "\(error)")
        }
    }

    /// A stream cut inside a record ends like one cut between records: many servers close without close_notify, and
    /// the inner protocol (HTTP, TLS to the destination) notices truncation itself.
    package var openIncomplete: Bool { false }
}
