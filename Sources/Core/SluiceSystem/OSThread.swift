import CSluice
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A named, joinable OS thread: for loops that own a descriptor (a TUN reader, an epoll
/// relay) and for work that must stay on one thread (setns, which moves only the caller).
package final class OSThread: @unchecked Sendable {
    private var handle = pthread_t()
    private let body: () -> Void
    private let name: String
    private let exited = Atomic<Bool>(false)

    private init(name: String, body: @escaping () -> Void) {
        self.name = name
        self.body = body
    }

    /// Starts `body` on a new thread named `name` (the first 15 bytes show in ps/top).
    /// - Throws: ``SystemError`` when pthread_create fails.
    package static func start(name: String, _ body: @escaping () -> Void) throws(SystemError) -> OSThread {
        let thread = OSThread(name: name, body: body)
        let context = Unmanaged.passRetained(thread).toOpaque()
        let status = pthread_create(
            &thread.handle, nil,
            { raw in
                guard let raw else { return nil }
                let t = Unmanaged<OSThread>.fromOpaque(raw).takeRetainedValue()
                _ = csluice_set_process_name(String(t.name.prefix(15)))
                t.body()
                t.exited.store(true, ordering: .releasing)
                return nil
            }, context)
        guard status == 0 else {
            Unmanaged<OSThread>.fromOpaque(context).release()
            throw SystemError("pthread_create \(name)", errno: status)
        }
        return thread
    }

    /// Starts `body` on a detached thread that nobody joins (a short-lived session: one
    /// TCP DNS exchange, one client connection); its resources go when it returns.
    package static func detached(name: String, _ body: @escaping () -> Void) throws(SystemError) {
        let thread = try start(name: name, body)
        pthread_detach(thread.handle)
    }

    /// Whether the body has returned.
    package var hasExited: Bool { exited.load(ordering: .acquiring) }

    /// Waits for the body to return.
    package func join() { pthread_join(handle, nil) }
}

/// CLOCK_MONOTONIC in nanoseconds: timeouts, heartbeat round trips, idle timers.
package enum MonotonicClock {
    package static var now: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Nanoseconds from `start` to `end`, 0 when `end` is earlier. Timestamps taken at
    /// different moments of one loop pass can be out of order; unsigned subtraction would trap.
    @inline(__always)
    package static func elapsed(from start: UInt64, to end: UInt64) -> UInt64 { end > start ? end - start : 0 }
}
