import CSystemd
import Logging
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// `keepalive.inhibit-sleep`: a systemd-logind sleep inhibitor (`block` mode, what `systemd-inhibit --what=sleep`
/// takes) held while WireGuard links are up, so that the machine stays reachable through them, as the side-router
/// guide keeps its host awake. logind hands out the inhibitor as a pipe end; it holds as long as that descriptor is
/// open, so releasing is closing it (and a crashed sluiced releases it by dying).
///
/// sluiced takes it rather than the keepalive worker: logind lets root take a `block` inhibitor without asking
/// polkit, which many servers do not run, and the worker needs no access to the system bus at all.
///
/// The bus call runs on a thread of its own: a bus that accepts the connection and then says nothing would
/// otherwise stall sluiced's loop (heartbeats, the watchdog) for sd-bus's 25 s.
final class SleepInhibitor {
    /// What the taking thread hands back.
    private enum Outcome: Sendable {
        case taken(OwnedDescriptor)
        case failed(String)
    }

    /// Where the taking thread leaves its outcome.
    private final class Mailbox: Sendable {
        let value = Locked<Outcome?>(nil)
    }

    private var held: OwnedDescriptor?
    private let outcome = Mailbox()
    private var taking: OSThread?
    /// After a failure (no system bus, no logind, refused), the next attempt waits this long.
    static let retryInterval: UInt64 = 300 * 1_000_000_000
    private var retryAt: UInt64 = 0
    private var lastFailure: String?

    var isHeld: Bool { held != nil }

    /// Takes or releases the inhibitor so that it is held while `wanted`; logs every change, and a failure once
    /// per distinct reason. Called again with the same answer it picks up what the taking thread got.
    func update(wanted: Bool, why: String, now: UInt64, logger: Logger) {
        if let taking, taking.hasExited {
            taking.join()
            self.taking = nil
            switch outcome.value.withLock({ value in
                defer { value = nil }
                return value
            }) {
            case .taken(let descriptor):
                held = descriptor
                lastFailure = nil
                logger.notice("keepalive.inhibit-sleep: holding a logind sleep inhibitor (\(why))")
            case .failed(let reason):
                retryAt = now + Self.retryInterval
                if lastFailure != reason {
                    lastFailure = reason
                    logger.warning(
                        "keepalive.inhibit-sleep: \(reason); the machine may sleep while links are up (trying again every 5 minutes)"
                    )
                }
            case nil:
                break
            }
        }
        if !wanted {
            if held != nil {
                held = nil
                logger.info("keepalive.inhibit-sleep: released the logind sleep inhibitor")
            }
            retryAt = 0
            lastFailure = nil
            return
        }
        guard held == nil, taking == nil, now >= retryAt else { return }
        do {
            taking = try OSThread.start(name: "inhibit-sleep") { [outcome] in
                let result: Outcome
                do {
                    result = .taken(try Self.take(who: "sluice", why: why))
                } catch {
                    result = .failed("\(error)")
                }
                outcome.value.withLock { $0 = result }
            }
        } catch {
            retryAt = now + Self.retryInterval
            logger.warning("keepalive.inhibit-sleep: cannot start a thread to ask logind: \(error)")
        }
    }

    /// Releases the inhibitor (sluiced is exiting). A call still under way is not waited for: the process exit
    /// closes whatever it gets.
    func release() { held = nil }

    /// `org.freedesktop.login1.Manager.Inhibit("sleep", who, why, "block")` on the system bus; the returned
    /// descriptor is the inhibitor.
    static func take(who: String, why: String) throws(SystemError) -> OwnedDescriptor {
        var bus: OpaquePointer?
        var r = sd_bus_open_system(&bus)
        guard r >= 0, let bus else {
            throw SystemError("no system D-Bus to reach logind (sd_bus_open_system)", errno: -r)
        }
        defer { sd_bus_flush_close_unref(bus) }
        var call: OpaquePointer?
        r = sd_bus_message_new_method_call(
            bus, &call, "org.freedesktop.login1", "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "Inhibit"
        )
        guard r >= 0, let call else { throw SystemError("building the logind Inhibit call", errno: -r) }
        defer { sd_bus_message_unref(call) }
        for argument in ["sleep", who, why, "block"] {
            r = argument.withCString { sd_bus_message_append_basic(call, CChar(UInt8(ascii: "s")), $0) }
            guard r >= 0 else { throw SystemError("building the logind Inhibit call", errno: -r) }
        }
        var error = sd_bus_error()
        defer { sd_bus_error_free(&error) }
        var reply: OpaquePointer?
        r = sd_bus_call(bus, call, 2_000_000, &error, &reply)
        guard r >= 0, let reply else {
            let name = error.name.map { String(cString: $0) } ?? "error"
            let message = error.message.map { String(cString: $0) } ?? ""
            let hint =
                name.hasSuffix("ServiceUnknown") || name.hasSuffix("NameHasNoOwner")
                ? " (systemd-logind is not running)" : ""
            throw SystemError("logind Inhibit failed: \(name): \(message)\(hint)", errno: -r)
        }
        defer { sd_bus_message_unref(reply) }
        var fd: Int32 = -1
        r = sd_bus_message_read_basic(reply, CChar(UInt8(ascii: "h")), &fd)
        guard r > 0, fd >= 0 else {
            throw SystemError("logind Inhibit answered without a descriptor", errno: r < 0 ? -r : EPROTO)
        }
        // The reply owns its descriptor: keep a copy of our own.
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard copy >= 0 else { throw SystemError("dup of the inhibitor descriptor", errno: errno) }
        return OwnedDescriptor(takingOwnershipOfDescriptor: copy)
    }
}
