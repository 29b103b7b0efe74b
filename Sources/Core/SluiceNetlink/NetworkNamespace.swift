import CSluice
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Running code inside a named network namespace (`ip netns add NAME`, bound at `/run/netns/NAME`), for tests
/// and tools.
///
/// A network namespace is a per-thread attribute on Linux, so ``run(in:_:)`` starts a fresh OS thread, moves
/// that thread alone into the namespace with `setns(2)`, runs the body there and joins it. The rest of the
/// process is unaffected. Sockets opened by the body stay in the namespace for their whole life, even when used
/// from other threads later. Work the body hands to other threads (tasks, dispatch queues) does not run in the
/// namespace. Needs CAP_SYS_ADMIN.
package enum NetworkNamespace {
    /// Runs `body` on a temporary thread inside the namespace `name` and returns its result or rethrows its error.
    /// - Throws: ``SystemError`` when the namespace cannot be opened or entered.
    package static func run<T: Sendable>(in name: String, _ body: @Sendable () throws -> T) throws -> T {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else {
            throw SystemError("setns netns \"\(name)\": not a namespace name", errno: EINVAL)
        }
        let path = "/run/netns/\(name)"
        let fd = try Posix.call("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
        let namespace = OwnedDescriptor(takingOwnershipOfDescriptor: fd)
        return try withoutActuallyEscaping(body) { body in
            let slot = ResultSlot<T>()
            let thread = try OSThread.start(name: "netns \(name)") {
                let rc = csluice_setns_net(namespace.rawValue)
                if rc != 0 {
                    slot.result = .failure(SystemError("setns \(path)", errno: -rc))
                    return
                }
                slot.result = Result { try body() }
            }
            thread.join()
            namespace.close()
            guard let result = slot.result else {
                throw SystemError("netns \(name): worker thread ended without a result", errno: EINTR)
            }
            return try result.get()
        }
    }
}

/// Where the namespace thread leaves its result. Only one thread touches it at a time: the worker until it exits,
/// then the caller after pthread_join, which orders the accesses.
private final class ResultSlot<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
