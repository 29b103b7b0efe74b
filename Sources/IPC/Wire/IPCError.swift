/// Everything that can go wrong while decoding or carrying IPC frames.
///
/// A struct with an open set of codes (service-lifecycle style) so that new failure kinds
/// can be added without breaking `switch`es in other targets. ``isFatal`` tells the
/// receiver whether the byte stream can still be trusted (see docs/ipc.md, "Receiver rules").
public struct IPCError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: UInt16 {
            case malformedPayload = 1
            case unknownMessageType = 2
            case unsupportedVersion = 3
            case oversizedFrame = 4
            case badMagic = 5
            case truncated = 6
            case descriptorMismatch = 7
            case tooManyDescriptors = 8
            case handshakeFailed = 9
            case peerClosed = 10
            case transport = 11
            case rejected = 12
            case internalFailure = 13
        }
        private let kind: Kind

        /// The frame decoded, but its payload does not match its message type.
        public static let malformedPayload = Code(kind: .malformedPayload)
        /// The message type is not one this receiver knows.
        public static let unknownMessageType = Code(kind: .unknownMessageType)
        /// The frame's protocol version is outside what this receiver speaks.
        public static let unsupportedVersion = Code(kind: .unsupportedVersion)
        /// The header announces a payload above the receiver's limit.
        public static let oversizedFrame = Code(kind: .oversizedFrame)
        /// The first four bytes are not the sluice magic: not our protocol, or lost framing.
        public static let badMagic = Code(kind: .badMagic)
        /// The bytes ended inside a header, a payload or a field.
        public static let truncated = Code(kind: .truncated)
        /// A frame announced descriptors that did not arrive (or vice versa).
        public static let descriptorMismatch = Code(kind: .descriptorMismatch)
        /// A frame announced more descriptors than the protocol allows.
        public static let tooManyDescriptors = Code(kind: .tooManyDescriptors)
        /// Hello/version negotiation did not produce a common version.
        public static let handshakeFailed = Code(kind: .handshakeFailed)
        /// The peer closed the channel.
        public static let peerClosed = Code(kind: .peerClosed)
        /// A system call on the channel failed.
        public static let transport = Code(kind: .transport)
        /// The peer understood the request and refused it (e.g. an invalid config).
        public static let rejected = Code(kind: .rejected)
        /// The peer failed while handling a valid request.
        public static let internalFailure = Code(kind: .internalFailure)

        /// The code as carried in an ``ErrorReport`` on the wire.
        public var wireValue: UInt16 { kind.rawValue }

        /// Maps a wire value back; unknown values become ``internalFailure`` so that a newer
        /// peer's codes still read as errors.
        public init(wireValue: UInt16) { self.kind = Kind(rawValue: wireValue) ?? .internalFailure }
        private init(kind: Kind) { self.kind = kind }

        public var description: String {
            switch kind {
            case .malformedPayload: "malformed payload"
            case .unknownMessageType: "unknown message type"
            case .unsupportedVersion: "unsupported protocol version"
            case .oversizedFrame: "oversized frame"
            case .badMagic: "bad magic"
            case .truncated: "truncated"
            case .descriptorMismatch: "descriptor mismatch"
            case .tooManyDescriptors: "too many descriptors"
            case .handshakeFailed: "handshake failed"
            case .peerClosed: "peer closed the channel"
            case .transport: "transport failure"
            case .rejected: "rejected"
            case .internalFailure: "internal failure"
            }
        }
    }

    public var code: Code
    /// Where and what, e.g. `hello.software: string length 900 exceeds the 40 bytes left`.
    public var detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// True when the byte stream can no longer be trusted and the channel must be closed:
    /// framing is lost (bad magic, oversized, unsupported header version, descriptor
    /// accounting off). A malformed payload or an unknown type inside a well-formed frame is
    /// not fatal: the receiver answers with an error and reads on.
    public var isFatal: Bool {
        switch code {
        case .malformedPayload, .unknownMessageType, .rejected, .internalFailure: false
        default: true
        }
    }

    public var description: String { "\(code): \(detail)" }
}
