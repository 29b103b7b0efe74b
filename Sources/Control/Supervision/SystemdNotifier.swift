import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// sd_notify through libsystemd: READY, STATUS, WATCHDOG, RELOADING, STOPPING.
///
/// Without NOTIFY_SOCKET (not started by systemd) every call is a no-op, as libsystemd
/// itself does; tests point NOTIFY_SOCKET at a datagram socket they own.
package struct SystemdNotifier: Sendable {
    /// The watchdog period systemd asked for (WATCHDOG_USEC), if any; ping at half of it.
    package let watchdogInterval: Duration?

    package init() {
        var usec: UInt64 = 0
        // sd_watchdog_enabled checks WATCHDOG_PID against our pid, so a variable inherited
        // by mistake from a parent does not make us ping.
        if sd_watchdog_enabled(0, &usec) > 0, usec > 0 {
            watchdogInterval = .microseconds(Int64(usec))
        } else {
            watchdogInterval = nil
        }
    }

    /// Whether a notification socket is configured at all.
    package var isActive: Bool { getenv("NOTIFY_SOCKET") != nil }

    /// Sends newline-separated `KEY=value` assignments in one datagram.
    @discardableResult
    package func notify(_ assignments: [String]) -> Bool {
        let text = assignments.map { $0.replacingNewlinesInValue() }.joined(separator: "\n")
        return sd_notify(0, text) > 0
    }

    package func ready(status: String) { notify(["READY=1", "STATUS=\(status)"]) }
    package func status(_ status: String) { notify(["STATUS=\(status)"]) }
    package func watchdog() { notify(["WATCHDOG=1"]) }
    package func stopping(status: String) { notify(["STOPPING=1", "STATUS=\(status)"]) }

    /// RELOADING=1 with MONOTONIC_USEC, as systemd 253+ expects for Type=notify-reload and
    /// older versions ignore.
    package func reloading() {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let usec = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
        notify(["RELOADING=1", "MONOTONIC_USEC=\(usec)"])
    }
}

extension String {
    /// A value must not contain a newline: it would start a new assignment.
    fileprivate func replacingNewlinesInValue() -> String {
        String(map { $0 == "\n" ? " " : $0 })
    }
}
