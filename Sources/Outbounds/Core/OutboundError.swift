import SluiceNet

/// Why an outbound cannot carry a flow, when the cause is not a failed system call (those stay `SystemError`,
/// which names the call): an `ip-version` that excludes the destination, a TLS session that cannot be set up, UDP
/// through a proxy that carries TCP only, a proxy that refused or spoke nonsense, a stream that does not decode or was cut short.
///
/// A struct with a private code (STYLE.md rule 5), so that kinds can be added without breaking callers; the
/// message says what happened, where (proxy, server) and, where there is one, what to do.
package struct OutboundError: Error, CustomStringConvertible, Equatable {
    private enum Code: Equatable {
        case addressFamilyExcluded
        case tlsSetup
        case udpUnsupported
        case handshakeFailed
        case streamUndecodable
        case streamTruncated
    }

    private let code: Code
    package let description: String

    private init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }

    /// A `direct` proxy's `ip-version` excludes the destination's family.
    package static func addressFamilyExcluded(ipVersion: IPVersion, destination: IPAddress) -> Self {
        Self(
            .addressFamilyExcluded,
            "ip-version \(ipVersion.rawValue) excludes \(destination) (route its traffic elsewhere or change ip-version)"
        )
    }

    /// The TLS session to a `tls: true` proxy cannot be made (no CA store, bad settings).
    package static func tlsSetup(server: String, _ detail: String) -> Self {
        Self(.tlsSetup, "TLS to \(server): \(detail)")
    }

    /// UDP through an outbound that carries TCP only.
    package static func udpUnsupported(_ reason: String) -> Self { Self(.udpUnsupported, reason) }

    /// The proxy refused the connection or answered something the protocol does not allow.
    package static func handshakeFailed(_ reason: String) -> Self { Self(.handshakeFailed, reason) }

    /// Bytes of a relayed stream do not decode (a failed AEAD tag, a broken TLS record): the connection is reset.
    package static func streamUndecodable(_ layer: String, _ detail: String) -> Self {
        Self(.streamUndecodable, "\(layer): \(detail)")
    }

    /// The server's stream ended inside a sealed unit (a Shadowsocks chunk): not a clean end, the connection is reset.
    package static let streamTruncated = Self(.streamTruncated, "the server's stream was cut inside a chunk")

    /// Whether two errors are of the same kind (whatever their messages).
    package func isSameKind(as other: OutboundError) -> Bool { code == other.code }
}
