import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A frame received with the descriptors that belong to it.
package struct ReceivedFrame: Sendable {
    package var frame: Frame
    /// Descriptors announced in the header, now owned by the receiver.
    package var descriptors: [OwnedDescriptor]

    package var header: FrameHeader { frame.header }
}

/// Frames over a connected AF_UNIX stream socket, with descriptor passing.
///
/// The transport, not the policy: it sends and receives whole frames, pairs descriptors
/// with the frame that announced them, and bounds every wait. What to do with a frame is
/// the caller's business. One thread may receive while others send; sends are serialised
/// so frames never interleave on the stream.
///
/// Descriptors ride on the first byte of their frame (one `sendmsg`). The kernel delivers
/// them no later than that byte, so the receiver queues descriptors in arrival order and
/// hands each frame the number its header announces.
package final class FrameChannel: Sendable {
    private struct ReceiveState {
        var decoder: FrameDecoder
        var descriptors: [OwnedDescriptor] = []
        var closed = false
    }

    private let socket: OwnedDescriptor
    private let sendLock = Locked(())
    private let closedLocally = Atomic<Bool>(false)
    private let receiveState: Locked<ReceiveState>
    /// How long a send may wait for buffer space before the peer is declared stuck.
    package let sendTimeoutMilliseconds: Int32

    /// - Note: takes ownership of `socket`; ``close()`` or deinit closes it.
    package init(
        takingOwnershipOf socket: OwnedDescriptor, maxPayload: Int = FrameHeader.defaultMaxPayload,
        sendTimeoutMilliseconds: Int32 = 5000
    ) {
        self.socket = socket
        self.receiveState = Locked(ReceiveState(decoder: FrameDecoder(maxPayload: maxPayload)))
        self.sendTimeoutMilliseconds = sendTimeoutMilliseconds
    }

    /// The socket's descriptor number (for poll loops); still owned by the channel; -1
    /// once ``close()`` was called.
    package var rawDescriptor: CInt { closedLocally.load(ordering: .acquiring) ? -1 : socket.rawValue }

    /// Shuts the socket down: the peer sees the end of the stream, a receive blocked on
    /// another thread wakes with `.peerClosed`, and later sends and receives fail with it.
    ///
    /// The descriptor itself is closed when the channel is released, not here: a thread
    /// still inside a receive or send on it must never find its number reused by some
    /// other socket opened in between.
    package func close() {
        guard !closedLocally.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let fd = socket.rawValue
        if fd >= 0 { shutdown(fd, CInt(SHUT_RDWR)) }
    }

    /// Whether the peer is in the middle of a frame: some of it has arrived, not all.
    package var isInsideFrame: Bool { receiveState.withLock { $0.decoder.isInsideFrame } }

    /// Credentials of the process at the other end.
    package func peerCredentials() throws(IPCError) -> PeerCredentials {
        do throws(SystemError) {
            return try UnixSocket.peerCredentials(socket.rawValue)
        } catch {
            throw IPCError(.transport, error.description)
        }
    }

    // MARK: Sending

    /// Sends one message. `descriptors` stay owned by the caller (the kernel duplicates them).
    package func send(
        _ message: Message, requestID: UInt32 = 0, isReply: Bool = false, descriptors: [CInt] = []
    ) throws(IPCError) {
        guard descriptors.count <= FrameHeader.maxDescriptors else {
            throw IPCError(.tooManyDescriptors, "\(message.type) with \(descriptors.count) descriptors")
        }
        let frame = Frame(message, requestID: requestID, isReply: isReply, descriptorCount: descriptors.count)
        try send(frame: frame, descriptors: descriptors)
    }

    /// Sends an already built frame (tests use this to send hostile headers).
    package func send(frame: Frame, descriptors: [CInt] = []) throws(IPCError) {
        let bytes = frame.encoded()
        try sendLock.withLock { _ throws(IPCError) in
            var offset = 0
            var pendingDescriptors = descriptors
            while offset < bytes.count {
                let fd = socket.rawValue
                guard fd >= 0, !closedLocally.load(ordering: .acquiring) else {
                    throw IPCError(.peerClosed, "channel closed locally")
                }
                do throws(SystemError) {
                    let start = offset
                    let descriptorsNow = pendingDescriptors
                    let n = try bytes.withUnsafeBytes { raw in
                        Result { () throws(SystemError) in
                            try UnixSocket.send(
                                fd, UnsafeRawBufferPointer(rebasing: raw[start...]), descriptors: descriptorsNow,
                                nonBlocking: true)
                        }
                    }.get()
                    offset += n
                    if n > 0 { pendingDescriptors = [] }
                } catch let error where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
                    let writable: Bool
                    do throws(SystemError) {
                        writable = try Descriptors.waitWritable(fd, timeoutMilliseconds: sendTimeoutMilliseconds)
                    } catch {
                        throw IPCError(.transport, error.description)
                    }
                    guard writable else {
                        throw IPCError(
                            .transport,
                            "peer did not read for \(sendTimeoutMilliseconds) ms; send of \(frame.header.type) timed out"
                        )
                    }
                } catch let error where error.errno == EPIPE || error.errno == ECONNRESET {
                    throw IPCError(.peerClosed, "\(error)")
                } catch {
                    throw IPCError(.transport, error.description)
                }
            }
        }
    }

    // MARK: Receiving

    /// The next frame, waiting at most `timeoutMilliseconds` (-1: forever).
    /// - Returns: nil on timeout.
    /// - Throws: `.peerClosed` at end of stream, `.truncated` if it ended mid-frame, or a
    ///   fatal decoding error. Non-fatal payload problems are not detected here: call
    ///   `frame.message()` to interpret the payload.
    package func receive(timeoutMilliseconds: Int32 = -1) throws(IPCError) -> ReceivedFrame? {
        let deadline = timeoutMilliseconds < 0 ? nil : MonotonicClock.now + UInt64(timeoutMilliseconds) * 1_000_000
        return try receiveState.withLock { state throws(IPCError) -> ReceivedFrame? in
            while true {
                if let frame = try state.decoder.nextFrame() {
                    let wanted = Int(frame.header.descriptorCount)
                    guard state.descriptors.count >= wanted else {
                        throw IPCError(
                            .descriptorMismatch,
                            "\(frame.header.type) announced \(wanted) descriptors, \(state.descriptors.count) arrived")
                    }
                    let attached = Array(state.descriptors.prefix(wanted))
                    state.descriptors.removeFirst(wanted)
                    return ReceivedFrame(frame: frame, descriptors: attached)
                }
                if state.closed { throw IPCError(.peerClosed, "end of stream") }
                let fd = socket.rawValue
                guard fd >= 0, !closedLocally.load(ordering: .acquiring) else {
                    throw IPCError(.peerClosed, "channel closed locally")
                }
                // Past the deadline we still look once without waiting: a zero timeout
                // means "whatever has arrived", not "nothing".
                var wait: Int32 = -1
                if let deadline {
                    let now = MonotonicClock.now
                    wait = now >= deadline ? 0 : Int32(min(UInt64(Int32.max), (deadline - now + 999_999) / 1_000_000))
                }
                let chunk: ReceivedChunk
                do throws(SystemError) {
                    guard try Descriptors.waitReadable(fd, timeoutMilliseconds: wait) else { return nil }
                    chunk = try UnixSocket.receive(fd, maxBytes: 65536, nonBlocking: true)
                } catch let error where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
                    continue
                } catch let error where error.errno == ECONNRESET || error.errno == EBADF {
                    throw IPCError(.peerClosed, "\(error)")
                } catch {
                    throw IPCError(.transport, error.description)
                }
                if chunk.truncated {
                    throw IPCError(.descriptorMismatch, "the kernel truncated ancillary data (MSG_CTRUNC)")
                }
                state.descriptors.append(contentsOf: chunk.descriptors)
                guard state.descriptors.count <= 2 * FrameHeader.maxDescriptors else {
                    throw IPCError(
                        .descriptorMismatch,
                        "\(state.descriptors.count) descriptors arrived with no frame claiming them")
                }
                if chunk.bytes.isEmpty {
                    state.closed = true
                    try state.decoder.finish()
                    throw IPCError(.peerClosed, "end of stream")
                }
                state.decoder.feed(chunk.bytes)
            }
        }
    }

    /// Receives the next frame and decodes its message; a non-fatal decoding error is
    /// answered to the peer with an ``ErrorReport`` and returned as `.failure`.
    package func receiveMessage(timeoutMilliseconds: Int32 = -1) throws(IPCError)
        -> (received: ReceivedFrame, message: Result<Message, IPCError>)?
    {
        guard let received = try receive(timeoutMilliseconds: timeoutMilliseconds) else { return nil }
        do {
            return (received, .success(try received.frame.message()))
        } catch {
            if error.isFatal { throw error }
            if !received.header.isReply {
                try? send(.error(ErrorReport(error)), requestID: received.header.requestID, isReply: true)
            }
            return (received, .failure(error))
        }
    }
}
