import CSluice
import IPC
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A worker's requests to sluiced on the control channel (facts only sluiced may look up,
/// such as which process owns a socket). The lifecycle loop reads the channel and hands
/// replies here; callers on any thread wait for theirs, bounded.
public final class SupervisorLink: Sendable {
    private let channel: FrameChannel
    private let waiters = Locked<[UInt32: OwnedDescriptor]>([:])
    private let replies = Locked<[UInt32: Message]>([:])
    /// Request ids from the top half, apart from any the supervisor uses.
    private let nextID = Atomic<UInt32>(0x8000_0000)

    init(channel: FrameChannel) { self.channel = channel }

    /// Sends `message` and waits at most `timeoutMilliseconds` for the reply (nil: none in
    /// time, or the channel failed).
    public func request(_ message: Message, timeoutMilliseconds: Int32) -> Message? {
        let fd = csluice_eventfd()
        guard fd >= 0 else { return nil }
        let event = OwnedDescriptor(takingOwnershipOfDescriptor: fd)
        let id = nextID.add(1, ordering: .relaxed).newValue | 0x8000_0000
        waiters.withLock { $0[id] = event }
        defer {
            waiters.withLock { $0[id] = nil }
            _ = replies.withLock { $0.removeValue(forKey: id) }
        }
        guard (try? channel.send(message, requestID: id)) != nil,
            (try? Descriptors.waitReadable(event.rawValue, timeoutMilliseconds: timeoutMilliseconds)) == true
        else { return nil }
        return replies.withLock { $0[id] }
    }

    /// A reply arrived (lifecycle loop). Returns false when nobody asked for it.
    @discardableResult
    func deliver(_ message: Message, requestID: UInt32) -> Bool {
        guard let event = waiters.withLock({ $0[requestID] }) else { return false }
        replies.withLock { $0[requestID] = message }
        var one: UInt64 = 1
        _ = write(event.rawValue, &one, 8)
        return true
    }
}
