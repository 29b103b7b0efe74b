/// Cuts a byte stream into frames. Feed it whatever `recv` returned; take frames out.
///
/// It validates each header as soon as its 20 bytes are in, so an oversized or foreign
/// frame is refused before its payload is buffered. After a fatal error the decoder stays
/// failed: the stream has lost its framing and the channel must be closed.
public struct FrameDecoder: Sendable {
    public let maxPayload: Int
    private var buffer: [UInt8] = []
    private var start = 0
    private var pendingHeader: FrameHeader?
    private var failure: IPCError?

    public init(maxPayload: Int = FrameHeader.defaultMaxPayload) {
        self.maxPayload = maxPayload
    }

    /// Bytes received but not yet returned as part of a frame.
    public var bufferedByteCount: Int { buffer.count - start }

    /// Whether a frame has begun but not ended: header bytes, or a header whose payload is still missing.
    public var isInsideFrame: Bool { pendingHeader != nil || bufferedByteCount > 0 }

    /// Appends received bytes.
    public mutating func feed<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, or nil when more bytes are needed.
    /// - Throws: a fatal ``IPCError`` on a bad header; every later call throws it again.
    public mutating func nextFrame() throws(IPCError) -> Frame? {
        if let failure { throw failure }
        do {
            if pendingHeader == nil {
                guard bufferedByteCount >= FrameHeader.size else { return nil }
                let headerBytes = Array(buffer[start..<(start + FrameHeader.size)])
                pendingHeader = try FrameHeader.decode(headerBytes, maxPayload: maxPayload)
                start += FrameHeader.size
            }
            guard let header = pendingHeader, bufferedByteCount >= Int(header.payloadLength) else {
                compact()
                return nil
            }
            let end = start + Int(header.payloadLength)
            let payload = Array(buffer[start..<end])
            start = end
            pendingHeader = nil
            compact()
            return Frame(header: header, payload: payload)
        } catch {
            failure = error
            throw error
        }
    }

    /// Call at end of stream: bytes left over mean the peer died mid-frame.
    public func finish() throws(IPCError) {
        if let failure { throw failure }
        if let pendingHeader {
            throw IPCError(
                .truncated,
                "stream ended inside a \(pendingHeader.type) payload (\(bufferedByteCount) of \(pendingHeader.payloadLength) bytes)"
            )
        }
        if bufferedByteCount > 0 {
            throw IPCError(
                .truncated, "stream ended inside a header (\(bufferedByteCount) of \(FrameHeader.size) bytes)")
        }
    }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 65536 && start * 2 > buffer.count {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }
}
