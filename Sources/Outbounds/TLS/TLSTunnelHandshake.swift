import SluiceTLS

/// A proxy behind TLS (`tls: true`: an HTTPS proxy, SOCKS5 over TLS): the TLS handshake
/// first, then `inner` (HTTP CONNECT, SOCKS5) through the session, its bytes sealed and
/// opened on the way.
///
/// When the inner handshake is established, the session is left to the stream that
/// follows (the relay's TLS codec): records still queued for the server go out first, and
/// plaintext that arrived behind the proxy's reply waits in the session
/// (``TLSClientSession/takeEarly()``), so `established` carries no leftover of its own.
public struct TLSTunnelHandshake<Inner: ProxyHandshake>: ProxyHandshake {
    public let session: TLSClientSession
    /// The handshake inside (what it learned, e.g. a SOCKS5 UDP relay endpoint, stays readable).
    public private(set) var inner: Inner

    public init(session: TLSClientSession, inner: Inner) {
        self.session = session
        self.inner = inner
    }

    public mutating func start() -> HandshakeStep {
        receive(UnsafeRawBufferPointer(start: nil, count: 0))
    }

    public mutating func receive(_ bytes: UnsafeRawBufferPointer) -> HandshakeStep {
        do throws(TLSError) {
            var plaintext: [UInt8] = []
            if session.isEstablished {
                try session.decrypt(bytes, into: &plaintext)
            } else {
                try session.handshake(bytes)
                guard session.isEstablished else { return send() }
                let first = try forward(inner.start())
                guard case .send = first else { return first }
                // Records that came with the server's last handshake flight (a proxy does
                // not speak first, but TLS 1.3 session tickets arrive here).
                try session.decrypt(UnsafeRawBufferPointer(start: nil, count: 0), into: &plaintext)
            }
            if plaintext.isEmpty { return send() }
            let step = try forward(plaintext.withUnsafeBytes { inner.receive($0) })
            guard case .send = step else { return step }
            return send()
        } catch {
            return .failed("TLS: \(error)")
        }
    }

    /// Seals what `inner` wants to send (it waits in the session: ``send()`` takes it), or
    /// on established parks the inner leftover in the session for the stream that follows.
    private func forward(_ step: HandshakeStep) throws(TLSError) -> HandshakeStep {
        switch step {
        case .send(let bytes):
            try session.encrypt(bytes)
            return .send([])
        case .established(let leftover):
            session.early += leftover
            return .established(leftover: [])
        case .failed:
            return step
        }
    }

    /// Everything the session queued for the server.
    private func send() -> HandshakeStep {
        var out: [UInt8] = []
        session.drainOutgoing(into: &out)
        return .send(out)
    }
}
