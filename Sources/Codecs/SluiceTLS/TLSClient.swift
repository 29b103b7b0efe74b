import COpenSSL
import SluiceNet

/// How a TLS client checks the server's certificate.
public enum TLSVerification: Sendable, Equatable {
    /// Against the system CA store (OpenSSL's default paths: /etc/ssl/certs on Debian)
    /// and the server name.
    case system
    /// Against the CA certificates in one PEM file (tests, a private CA), and the server name.
    case caFile(String)
    /// Not at all (`skip-cert-verify: true`): still encrypted, but whoever sits in the path
    /// can pose as the server.
    case none
}

/// A TLS failure: a handshake alert, a certificate that did not verify, a broken record.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) { self.description = description }

    /// What OpenSSL's error queue holds (emptying it), after `what`.
    static func fromQueue(_ what: String) -> TLSError {
        var reasons: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            reasons.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return TLSError(reasons.isEmpty ? what : "\(what): \(reasons.joined(separator: "; "))")
    }
}

/// What a proxy's TLS connections share: one OpenSSL `SSL_CTX` (TLS 1.2 or newer, the CA
/// store loaded once). Thread-safe: connections are made from it on any thread.
public final class TLSClientContext: @unchecked Sendable {
    let context: OpaquePointer
    public let verification: TLSVerification

    public init(verification: TLSVerification) throws(TLSError) {
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TLSError.fromQueue("SSL_CTX_new") }
        self.context = context
        self.verification = verification
        _ = SSL_CTX_ctrl(context, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil)
        switch verification {
        case .system:
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                throw TLSError.fromQueue("cannot load the system CA store")
            }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        case .caFile(let path):
            guard SSL_CTX_load_verify_locations(context, path, nil) == 1 else {
                throw TLSError.fromQueue("cannot load the CA file \(path)")
            }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        case .none:
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        }
    }

    deinit { SSL_CTX_free(context) }
}

/// One TLS client connection as a pure byte-in, byte-out state machine: OpenSSL reads
/// from and writes to two memory BIOs, never a socket, so the relay's epoll thread drives
/// it with non-blocking reads and writes like any other handshake, and tests drive it
/// with arrays.
///
/// Everything OpenSSL wants to send (handshake records, sealed application data, alerts)
/// queues in the outgoing BIO until ``drainOutgoing(into:)`` takes it, in order.
///
/// - Note: Not thread-safe; one thread uses a session at a time (it is handed from the
///   planning thread to the relay thread, then used there only).
public final class TLSClientSession: @unchecked Sendable {
    private let ssl: OpaquePointer
    /// Bytes from the server, for OpenSSL to read (owned by `ssl`).
    private let incoming: OpaquePointer
    /// Bytes OpenSSL wrote, for the server (owned by `ssl`).
    private let outgoing: OpaquePointer
    /// The handshake finished: application data flows.
    public private(set) var isEstablished = false

    /// - Parameter serverName: sent as SNI (when it is a name, not an address) and checked
    ///   against the certificate unless the context skips verification.
    public init(context: TLSClientContext, serverName: String) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.context) else { throw TLSError.fromQueue("SSL_new") }
        guard let incoming = BIO_new(BIO_s_mem()), let outgoing = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError.fromQueue("BIO_new")
        }
        SSL_set_bio(ssl, incoming, outgoing)
        self.ssl = ssl
        self.incoming = incoming
        self.outgoing = outgoing
        SSL_set_connect_state(ssl)
        let isAddress = IPAddress(serverName) != nil
        if !isAddress && !serverName.isEmpty {
            // SSL_set_tlsext_host_name is a macro over SSL_ctrl; OpenSSL copies the name.
            _ = serverName.withCString {
                SSL_ctrl(
                    ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name),
                    UnsafeMutableRawPointer(mutating: $0))
            }
        }
        if context.verification != .none {
            let ok =
                isAddress
                ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) == 1
                : SSL_set1_host(ssl, serverName) == 1
            guard ok else { throw TLSError.fromQueue("cannot check the certificate for \(serverName)") }
        }
    }

    deinit { SSL_free(ssl) }

    /// Feeds the server's handshake bytes and advances the handshake; what to send queues
    /// in the outgoing BIO. Sets ``isEstablished`` when done; throws when the handshake
    /// failed (a certificate that did not verify says why).
    public func handshake(_ received: UnsafeRawBufferPointer) throws(TLSError) {
        try feed(received)
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            isEstablished = true
            return
        }
        let code = SSL_get_error(ssl, result)
        if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE { return }
        let verify = SSL_get_verify_result(ssl)
        if verify != X509_V_OK {
            ERR_clear_error()
            throw TLSError("certificate verify failed: \(String(cString: X509_verify_cert_error_string(verify)))")
        }
        throw TLSError.fromQueue("handshake failed")
    }

    /// Seals `plaintext` into records, queued in the outgoing BIO.
    public func encrypt(_ plaintext: UnsafeRawBufferPointer) throws(TLSError) {
        guard let base = plaintext.baseAddress, !plaintext.isEmpty else { return }
        ERR_clear_error()
        var offset = 0
        while offset < plaintext.count {
            // A memory BIO takes everything: SSL_write writes all or fails.
            let n = SSL_write(ssl, base + offset, Int32(min(plaintext.count - offset, 1 << 30)))
            guard n > 0 else { throw TLSError.fromQueue("SSL_write") }
            offset += Int(n)
        }
    }

    public func encrypt(_ plaintext: [UInt8]) throws(TLSError) {
        let result = plaintext.withUnsafeBytes { raw in Result { () throws(TLSError) in try encrypt(raw) } }
        try result.get()
    }

    /// Feeds the server's records and appends the plaintext of every complete one to `out`
    /// (a partial record waits for the rest). A close_notify ends the plaintext quietly.
    public func decrypt(_ ciphertext: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(TLSError) {
        try feed(ciphertext)
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            ERR_clear_error()
            let n = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 {
                out.append(contentsOf: chunk[0..<Int(n)])
                continue
            }
            let code = SSL_get_error(ssl, n)
            if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE || code == SSL_ERROR_ZERO_RETURN { return }
            throw TLSError.fromQueue("bad record from the server")
        }
    }

    /// Moves what OpenSSL queued for the server to the end of `out`.
    public func drainOutgoing(into out: inout [UInt8]) {
        let pending = BIO_ctrl_pending(outgoing)
        guard pending > 0 else { return }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: pending))
        let n = out.withUnsafeMutableBytes { BIO_read(outgoing, $0.baseAddress! + start, Int32(pending)) }
        out.removeLast(pending - Int(max(n, 0)))
    }

    private func feed(_ bytes: UnsafeRawBufferPointer) throws(TLSError) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        // A memory BIO grows to take everything.
        guard BIO_write(incoming, base, Int32(bytes.count)) == Int32(bytes.count) else {
            throw TLSError.fromQueue("BIO_write")
        }
    }
}
