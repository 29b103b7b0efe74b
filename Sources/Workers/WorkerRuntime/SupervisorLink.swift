import CSluice
import IPC
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A worker's requests to sluiced on the control channel (facts only sluiced may look up,
/// such as which process owns a socket, and descriptors only sluiced may open). The lifecycle
/// loop reads the channel and hands replies here; callers on any thread wait for theirs,
/// bounded, so the loop keeps answering heartbeats meanwhile.
package final class SupervisorLink: Sendable {
    /// A reply and the descriptors its frame carried.
    /// - Note: the receiver owns `descriptors`; any it does not take are closed when the reply is dropped.
    package struct Reply: Sendable {
        package var message: Message
        package var descriptors: [OwnedDescriptor]
    }

    private let channel: FrameChannel
    private let waiters = Locked<[UInt32: OwnedDescriptor]>([:])
    private let replies = Locked<[UInt32: Reply]>([:])
    /// Request ids from the top half, apart from any the supervisor uses.
    private let nextID = Atomic<UInt32>(0x8000_0000)

    init(channel: FrameChannel) { self.channel = channel }

    /// Sends `message` and waits at most `timeoutMilliseconds` for the reply (nil: none in
    /// time, or the channel failed). Descriptors that came with the reply are closed.
    package func request(_ message: Message, timeoutMilliseconds: Int32) -> Message? {
        exchange(message, timeoutMilliseconds: timeoutMilliseconds)?.message
    }

    /// Sends `message` and waits at most `timeoutMilliseconds` for the reply and the descriptors its frame carried
    /// (nil: none in time, or the channel failed). A reply that arrives after the wait gave up is dropped, and its
    /// descriptors with it.
    package func exchange(_ message: Message, timeoutMilliseconds: Int32) -> Reply? {
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
        return replies.withLock { $0.removeValue(forKey: id) }
    }

    /// A reply arrived (lifecycle loop), with the descriptors of its frame. Returns false when nobody asked for it
    /// (any more); the descriptors are then closed.
    @discardableResult
    func deliver(_ message: Message, requestID: UInt32, descriptors: [OwnedDescriptor] = []) -> Bool {
        // Under the waiters' lock, so that a waiter that gives up at the same moment (and removes itself first)
        // never leaves a reply behind that nobody takes.
        waiters.withLock { waiting in
            guard let event = waiting[requestID] else {
                for descriptor in descriptors { descriptor.close() }
                return false
            }
            replies.withLock { $0[requestID] = Reply(message: message, descriptors: descriptors) }
            var one: UInt64 = 1
            _ = write(event.rawValue, &one, 8)
            return true
        }
    }
}
