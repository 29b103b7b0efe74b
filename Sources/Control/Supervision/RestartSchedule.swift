/// When to restart a failed worker, and when to give up (OTP / systemd style).
///
/// Delays grow exponentially from `minimumDelay` to `maximumDelay` with "equal jitter"
/// (a uniform pick in [d/2, d]) so that workers that failed together do not restart in
/// lock-step. A worker that stayed up for `stableAfter` starts again from the minimum.
///
/// Giving up: more than `maxRestarts` failures within `window`, or more than
/// `maxRestarts` failures in a row without a stable period between them. The second
/// condition matters because exponential backoff spreads a crash loop out: with the
/// defaults (100 ms … 30 s, 10 in 60 s) eleven immediate crashes take about 80 s, so
/// the window alone would never trip and a broken worker would be retried forever.
package struct RestartSchedule: Sendable {
    package var minimumDelay: Duration
    package var maximumDelay: Duration
    package var maxRestarts: Int
    package var window: Duration
    package var stableAfter: Duration

    /// Failure times (monotonic ns) inside the window.
    private var recentFailures: [UInt64] = []
    /// Failures since the worker last stayed up for `stableAfter`.
    package private(set) var consecutiveFailures = 0

    /// What to do about a failure.
    package enum Decision: Sendable, Equatable {
        case restart(afterNanoseconds: UInt64)
        case giveUp(reason: String)
    }

    package init(
        minimumDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(30), maxRestarts: Int = 10,
        window: Duration = .seconds(60), stableAfter: Duration = .seconds(30)
    ) {
        self.minimumDelay = minimumDelay
        self.maximumDelay = maximumDelay
        self.maxRestarts = maxRestarts
        self.window = window
        self.stableAfter = stableAfter
    }

    /// Records a failure at `now` of a worker that had been up for `uptime`, and decides.
    package mutating func recordFailure(
        at now: UInt64, uptime: Duration, using rng: inout some RandomNumberGenerator
    ) -> Decision {
        if uptime >= stableAfter { consecutiveFailures = 0 }
        consecutiveFailures += 1
        let windowNanos = window.nanoseconds
        recentFailures.removeAll { now >= $0 && now - $0 > windowNanos }
        recentFailures.append(now)
        if recentFailures.count > maxRestarts {
            return .giveUp(
                reason: "\(recentFailures.count) failures within \(window.humanReadable) (limit \(maxRestarts))")
        }
        if consecutiveFailures > maxRestarts {
            return .giveUp(
                reason:
                    "\(consecutiveFailures) failures in a row without staying up for \(stableAfter.humanReadable) (limit \(maxRestarts))"
            )
        }
        let minimum = max(1, minimumDelay.nanoseconds)
        let maximum = max(minimum, maximumDelay.nanoseconds)
        let exponent = min(consecutiveFailures - 1, 62)
        let (scaled, overflow) = minimum.multipliedReportingOverflow(by: UInt64(1) << UInt64(exponent))
        let base = overflow ? maximum : min(scaled, maximum)
        let delay = base / 2 + UInt64.random(in: 0...(base - base / 2), using: &rng)
        return .restart(afterNanoseconds: max(delay, minimum / 2))
    }
}
