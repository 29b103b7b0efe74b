import IPC
import SluiceSystem

/// Why a worker got no `/dev/net/tun` descriptor from sluiced.
package struct TunDescriptorError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable {
        case refused, unsupported, noAnswer, missingDescriptor, unexpectedReply
    }

    private let code: Code
    /// The whole sentence, with what to do next.
    package let description: String

    private init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }

    /// sluiced answered with an error; its message says why (it names /dev/net/tun and the fix).
    package static func refused(_ report: ErrorReport) -> Self {
        .init(.refused, report.message)
    }

    /// sluiced does not know `tunDescriptorRequest` (it is older than this worker).
    package static let unsupported = Self(
        .unsupported,
        "sluiced does not hand out /dev/net/tun descriptors (tunDescriptorRequest): it is older than this worker; install matching sluice binaries"
    )

    package static func noAnswer(timeoutMilliseconds: Int32) -> Self {
        .init(
            .noAnswer,
            "sluiced did not answer tunDescriptorRequest within \(timeoutMilliseconds) ms; it may be overloaded or stopping (see its log: journalctl -t sluiced)"
        )
    }

    package static let missingDescriptor = Self(
        .missingDescriptor,
        "sluiced's tunDescriptor reply came without its descriptor; install matching sluice binaries")

    package static func unexpectedReply(_ type: MessageType) -> Self {
        .init(.unexpectedReply, "sluiced answered tunDescriptorRequest with \(type); install matching sluice binaries")
    }
}

extension SupervisorLink {
    /// Asks sluiced for `/dev/net/tun` opened O_RDWR|O_CLOEXEC and not yet attached to a device: the device node is
    /// often mode 0600 root, which CAP_NET_ADMIN does not bypass, so a worker running as the service user cannot
    /// open it itself. The worker attaches the descriptor with TUNSETIFF (that needs CAP_NET_ADMIN for a new or
    /// persistent device, which it holds). Waits at most `timeoutMilliseconds`; the lifecycle loop answers
    /// heartbeats meanwhile.
    /// - Note: the caller owns the returned descriptor.
    package func openTunDevice(timeoutMilliseconds: Int32 = 2000) throws(TunDescriptorError) -> OwnedDescriptor {
        guard let reply = exchange(.tunDescriptorRequest, timeoutMilliseconds: timeoutMilliseconds) else {
            throw .noAnswer(timeoutMilliseconds: timeoutMilliseconds)
        }
        switch reply.message {
        case .tunDescriptor:
            guard reply.descriptors.count == 1 else { throw .missingDescriptor }
            return reply.descriptors[0]
        case .error(let report) where report.code == .unknownMessageType:
            throw .unsupported
        case .error(let report):
            throw .refused(report)
        default:
            throw .unexpectedReply(reply.message.type)
        }
    }
}
