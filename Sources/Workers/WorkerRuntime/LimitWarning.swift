import Logging
import SluiceSystem

/// A warning for a resource limit that a flood can hit thousands of times a second: at most one line per
/// `interval`, and each line says how many times the limit was hit since the previous one, so the log stays
/// readable and still tells how bad it was.
///
/// Safe to call from any thread; the common case (within the interval) is one lock and one add.
package final class LimitWarning: Sendable {
    private let state = Locked<(lastLine: UInt64?, count: Int)>((nil, 0))
    private let interval: UInt64
    private let logger: Logger
    private let level: Logger.Level

    package init(logger: Logger, level: Logger.Level = .warning, intervalSeconds: UInt64 = 5) {
        self.logger = logger
        self.level = level
        self.interval = intervalSeconds * 1_000_000_000
    }

    /// Counts one hit; logs `message(hits)` when no line went out within the interval, where `hits` counts this
    /// one and those not logged since the previous line.
    package func hit(now: UInt64 = MonotonicClock.now, _ message: (Int) -> String) {
        let hits = state.withLock { s -> Int? in
            s.count += 1
            if let last = s.lastLine, MonotonicClock.elapsed(from: last, to: now) < interval { return nil }
            defer { s = (now, 0) }
            return s.count
        }
        if let hits { logger.log(level: level, "\(message(hits))") }
    }
}
