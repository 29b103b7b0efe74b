#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, on what, and the errno it returned.
///
/// Every syscall wrapper in sluice throws this (see ``Posix``), so a log line always names
/// the call that failed instead of a bare `-1`.
package struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call that failed, e.g. `sendmsg` or `open /dev/net/tun`.
    package var call: String
    /// The errno value.
    package var errno: Int32

    package init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// `strerror` text for ``errno``.
    package var reason: String { String(cString: strerror(errno)) }

    package var description: String { "\(call): \(reason) (errno \(errno))" }
}

/// Turns the C conventions of `CSluice` and libc into thrown ``SystemError``s.
package enum Posix {
    /// For CSluice calls that return `-errno` on failure.
    @discardableResult
    @inline(__always)
    package static func check<T: SignedInteger>(_ call: @autoclosure () -> String, _ result: T) throws(SystemError) -> T
    {
        if result < 0 { throw SystemError(call(), errno: Int32(truncatingIfNeeded: 0 - result)) }
        return result
    }

    /// For libc calls that return -1 and set errno. Retries on EINTR.
    @discardableResult
    @inline(__always)
    package static func call<T: BinaryInteger>(_ name: @autoclosure () -> String, _ body: () -> T) throws(SystemError)
        -> T
    {
        while true {
            let result = body()
            if result >= 0 { return result }
            let err = Glibc.errno
            if err == EINTR { continue }
            throw SystemError(name(), errno: err)
        }
    }
}
