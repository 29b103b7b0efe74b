#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex: the one lock of the code base.
///
/// Not `Synchronization.Mutex`: on Linux that one locks with futex calls inside the Swift runtime's
/// own library, which ThreadSanitizer does not see, so every value it guards is reported as a data race
/// (a two-thread counter under `Mutex` shows it). pthread_mutex_lock is intercepted by the sanitizers,
/// costs the same uncontended (one compare-and-swap in glibc), and keeps `Scripts/sanitize.sh thread`
/// about real races. Same call shape as `Mutex`: `withLock { value in ... }`.
package final class Locked<Value: ~Copyable>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Outside the object: a stored `var` would get Swift's dynamic exclusivity checks, whose access
    /// markers ThreadSanitizer reports apart from the mutex that orders them.
    private let storage: UnsafeMutablePointer<Value>

    package init(_ initial: consuming Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        storage = .allocate(capacity: 1)
        storage.initialize(to: initial)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        storage.deinitialize(count: 1)
        storage.deallocate()
    }

    /// Runs `body` with the value, the lock held; never call `withLock` of the same lock inside it.
    @inline(__always)
    package func withLock<Result: ~Copyable, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&storage.pointee)
    }
}
