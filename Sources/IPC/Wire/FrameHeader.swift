/// The fixed 20-byte header in front of every IPC frame (layout in docs/ipc.md).
///
/// ```
///  0      4   5   6       8               12              16  17      20
///  +------+---+---+-------+---------------+---------------+---+-------+
///  |magic |ver|flg| type  |  request id   |payload length |fds|reserved|
///  +------+---+---+-------+---------------+---------------+---+-------+
/// ```
/// All integers big-endian. The layout is frozen for magic `SLCE`: a future incompatible
/// header gets a new magic, so any receiver can always read the version and length.
public struct FrameHeader: Sendable, Equatable {
    /// "SLCE".
    public static let magic: UInt32 = 0x534C_4345
    public static let size = 20
    /// The protocol version this build speaks natively.
    public static let currentVersion: UInt8 = 3
    /// The oldest protocol version this build still speaks.
    public static let minimumVersion: UInt8 = 1
    /// The most descriptors one frame may carry (same bound as SCM_RIGHTS buffers).
    public static let maxDescriptors = 16
    /// Default payload bound: large enough for a 100k-rule config, small enough that a
    /// corrupt length cannot exhaust memory.
    public static let defaultMaxPayload = 16 * 1024 * 1024

    /// Header flag bits.
    public struct Flags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// This frame answers the request with the same request id.
        public static let reply = Flags(rawValue: 1 << 0)
        /// The bits this version defines; others are sent as 0 and ignored on receipt.
        public static let known: Flags = [.reply]
    }

    public var version: UInt8
    public var flags: Flags
    public var type: MessageType
    /// 0 for a notification that expects no reply; otherwise chosen by the requester and
    /// echoed in the reply.
    public var requestID: UInt32
    public var payloadLength: UInt32
    public var descriptorCount: UInt8

    public init(
        version: UInt8 = FrameHeader.currentVersion, flags: Flags = [], type: MessageType, requestID: UInt32 = 0,
        payloadLength: UInt32, descriptorCount: UInt8 = 0
    ) {
        self.version = version
        self.flags = flags
        self.type = type
        self.requestID = requestID
        self.payloadLength = payloadLength
        self.descriptorCount = descriptorCount
    }

    public var isReply: Bool { flags.contains(.reply) }

    /// The 20 header bytes.
    public func encoded() -> [UInt8] {
        var w = WireWriter(capacity: FrameHeader.size)
        w.u32(FrameHeader.magic)
        w.u8(version)
        w.u8(flags.rawValue & Flags.known.rawValue)
        w.u16(type.rawValue)
        w.u32(requestID)
        w.u32(payloadLength)
        w.u8(descriptorCount)
        w.raw([0, 0, 0])
        return w.bytes
    }

    /// Parses and validates a header from exactly ``size`` bytes.
    /// - Throws: ``IPCError`` `.badMagic`, `.unsupportedVersion`, `.oversizedFrame`,
    ///   `.tooManyDescriptors` (all fatal: framing can no longer be trusted).
    public static func decode(_ bytes: [UInt8], maxPayload: Int = defaultMaxPayload) throws(IPCError) -> FrameHeader {
        var r = WireReader(bytes, context: "header")
        let magic = try r.u32("magic")
        guard magic == FrameHeader.magic else {
            let hex = bytes.prefix(4).map { String($0, radix: 16) }.joined(separator: " ")
            throw IPCError(.badMagic, "expected 53 4c 43 45 (\"SLCE\"), got \(hex)")
        }
        let version = try r.u8("version")
        guard version >= minimumVersion, version <= currentVersion else {
            throw IPCError(
                .unsupportedVersion, "frame version \(version); this build speaks \(minimumVersion)...\(currentVersion)"
            )
        }
        let flags = Flags(rawValue: try r.u8("flags")).intersection(.known)
        let type = MessageType(rawValue: try r.u16("type"))
        let requestID = try r.u32("requestID")
        let length = try r.u32("payloadLength")
        guard Int(length) <= maxPayload else {
            throw IPCError(.oversizedFrame, "\(type) payload of \(length) bytes exceeds the limit of \(maxPayload)")
        }
        let fds = try r.u8("descriptorCount")
        guard Int(fds) <= maxDescriptors else {
            throw IPCError(.tooManyDescriptors, "\(type) announces \(fds) descriptors; at most \(maxDescriptors)")
        }
        return FrameHeader(
            version: version, flags: flags, type: type, requestID: requestID, payloadLength: length,
            descriptorCount: fds)
    }
}

/// One whole frame: header and the raw payload bytes (not yet interpreted).
public struct Frame: Sendable, Equatable {
    public var header: FrameHeader
    public var payload: [UInt8]

    public init(header: FrameHeader, payload: [UInt8]) {
        self.header = header
        self.payload = payload
    }

    /// Builds the frame for `message`.
    public init(
        _ message: Message, requestID: UInt32 = 0, isReply: Bool = false, descriptorCount: Int = 0,
        version: UInt8 = FrameHeader.currentVersion
    ) {
        let payload = message.encodedPayload()
        self.header = FrameHeader(
            version: version, flags: isReply ? .reply : [], type: message.type, requestID: requestID,
            payloadLength: UInt32(payload.count), descriptorCount: UInt8(descriptorCount))
        self.payload = payload
    }

    /// Header followed by payload: what goes on the wire.
    public func encoded() -> [UInt8] { header.encoded() + payload }

    /// Interprets the payload according to the header's type.
    public func message() throws(IPCError) -> Message { try Message.decode(type: header.type, payload: payload) }
}
