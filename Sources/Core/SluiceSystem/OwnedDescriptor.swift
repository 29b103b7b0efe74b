#if canImport(Glibc)
import Glibc
#endif

/// A file descriptor with exactly one owner, closed when the owner lets go of it.
///
/// - Note: `init(takingOwnershipOfDescriptor:)` means the caller gives up the fd; after
///   ``takeDescriptorOwnership()`` this object no longer closes it. Whoever reads a call
///   site can tell who closes what.
package final class OwnedDescriptor: Sendable, CustomStringConvertible {
    private let state: Locked<CInt>

    /// Takes ownership of `fd`: it is closed by ``close()`` or on deinit.
    package init(takingOwnershipOfDescriptor fd: CInt) {
        precondition(fd >= 0, "OwnedDescriptor needs a valid descriptor")
        self.state = Locked(fd)
    }

    deinit {
        let fd = state.withLock { $0 }
        if fd >= 0 { Glibc.close(fd) }
    }

    /// The descriptor number while still owned, else -1. The caller must not close it.
    package var rawValue: CInt { state.withLock { $0 } }

    /// Whether this object still owns an open descriptor.
    package var isOpen: Bool { rawValue >= 0 }

    /// Gives the descriptor to the caller, who must close it.
    package func takeDescriptorOwnership() -> CInt {
        state.withLock { fd in
            let taken = fd
            fd = -1
            return taken
        }
    }

    /// Closes the descriptor now (idempotent).
    package func close() {
        let fd = takeDescriptorOwnership()
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Runs `body` with the raw fd; throws EBADF when already closed.
    package func withDescriptor<T>(_ body: (CInt) throws -> T) throws -> T {
        let fd = rawValue
        guard fd >= 0 else { throw SystemError("use of closed descriptor", errno: EBADF) }
        return try body(fd)
    }

    /// A duplicate with its own ownership (close-on-exec).
    package func duplicate() throws(SystemError) -> OwnedDescriptor {
        let fd = rawValue
        let copy = try Posix.call("fcntl F_DUPFD_CLOEXEC") { fcntl(fd, F_DUPFD_CLOEXEC, 0) }
        return OwnedDescriptor(takingOwnershipOfDescriptor: copy)
    }

    package var description: String { "fd \(rawValue)" }
}
