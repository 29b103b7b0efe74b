import SluiceTLS
import SluiceNet
import SluiceProxy
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// The TLS layer of a `tls: true` proxy (an HTTPS proxy, SOCKS5 over TLS): TLS to the
/// proxy server first, the proxy's own handshake inside it, then every relayed byte
/// through the session (a codec, so these connections relay in userspace, not spliced).
struct ProxyTLS: Sendable {
    /// Sent as SNI (unless an address) and checked against the certificate: `sni`, else
    /// the server's name or address.
    let serverName: String
    /// Made once per configuration; an error (no CA store) fails each connection with it.
    private let context: Result<TLSClientContext, TLSError>

    init(server: SocketEndpoint, sni: String?, skipCertVerify: Bool) {
        switch server.host {
        case .name(let name): serverName = sni ?? name
        case .address(let address): serverName = sni ?? address.description
        }
        context = Result { () throws(TLSError) in
            try TLSClientContext(verification: skipCertVerify ? .none : .system)
        }
    }

    /// A plan that runs `inner` inside a new TLS session and relays through it.
    func plan(hop: TCPHop, inner: some ProxyHandshake) throws(SystemError) -> TCPPlan {
        let session: TLSClientSession
        do {
            session = try TLSClientSession(context: context.get(), serverName: serverName)
        } catch {
            throw SystemError("TLS: \(error)", errno: EPROTO)
        }
        return TCPPlan(hop: hop, handshake: TLSTunnelHandshake(session: session, inner: inner), codec: TLSCodec(session))
    }
}

/// Relays through a TLS session once the tunnel handshake is done: client bytes sealed
/// into records, the server's records opened.
final class TLSCodec: StreamCodec {
    private let session: TLSClientSession

    init(_ session: TLSClientSession) { self.session = session }

    func start(toServer: inout [UInt8], toClient: inout [UInt8]) {
        session.drainOutgoing(into: &toServer)
        toClient += session.takeEarly()
    }

    func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(StreamCodecError) {
        do {
            try session.encrypt(bytes)
        } catch {
            throw StreamCodecError(description: "TLS: \(error)")
        }
        // Also what reading queued for the server (a TLS 1.3 KeyUpdate answer).
        session.drainOutgoing(into: &out)
    }

    func decode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(StreamCodecError) {
        do {
            try session.decrypt(bytes, into: &out)
        } catch {
            throw StreamCodecError(description: "TLS: \(error)")
        }
    }

    /// A stream cut inside a record ends like one cut between records: many servers close
    /// without close_notify, and the inner protocol (HTTP, TLS to the destination) notices
    /// truncation itself.
    var decodeIncomplete: Bool { false }
}
