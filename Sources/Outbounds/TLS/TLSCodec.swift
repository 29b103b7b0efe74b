import SluiceTLS
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Relays through a TLS session once the tunnel handshake is done: client bytes sealed
/// into records, the server's records opened.
package final class TLSCodec: StreamCodec {
    private let session: TLSClientSession

    package init(_ session: TLSClientSession) { self.session = session }

    package func start(toServer: inout [UInt8], toClient: inout [UInt8]) {
        session.drainOutgoing(into: &toServer)
        toClient += session.takeEarly()
    }

    package func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(OutboundError) {
        do {
            try session.encrypt(bytes)
        } catch {
            throw .streamUndecodable("TLS", "\(error)")
        }
        // Also what reading queued for the server (a TLS 1.3 KeyUpdate answer).
        session.drainOutgoing(into: &out)
    }

    package func decode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(OutboundError) {
        do {
            try session.decrypt(bytes, into: &out)
        } catch {
            throw .streamUndecodable("TLS", "\(error)")
        }
    }

    /// A stream cut inside a record ends like one cut between records: many servers close
    /// without close_notify, and the inner protocol (HTTP, TLS to the destination) notices
    /// truncation itself.
    package var decodeIncomplete: Bool { false }
}
