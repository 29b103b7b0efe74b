import Logging
import SluiceSystem

/// At most `perWindow` log lines per window for a kind of event that a hostile or broken
/// peer can produce at line rate; the rest are counted and summed up in one line.
package final class LogBudget: Sendable {
    private let state = Locked<(windowStart: UInt64, used: Int, suppressed: Int)>((0, 0, 0))
    private let perWindow: Int
    private let window: UInt64
    private let logger: Logger
    private let what: String

    package init(perWindow: Int, windowSeconds: UInt64, logger: Logger, what: String) {
        self.perWindow = perWindow
        self.window = windowSeconds * 1_000_000_000
        self.logger = logger
        self.what = what
    }

    /// Whether one more line may be logged now.
    package func admit() -> Bool {
        let now = MonotonicClock.now
        let (admitted, suppressed) = state.withLock { s -> (Bool, Int) in
            var carried = 0
            if now - s.windowStart >= window {
                carried = s.suppressed
                s = (now, 0, 0)
            }
            if s.used < perWindow {
                s.used += 1
                return (true, carried)
            }
            s.suppressed += 1
            return (false, carried)
        }
        if suppressed > 0 {
            logger.notice("\(suppressed) more \(what) were not logged in the last \(window / 1_000_000_000) s")
        }
        return admitted
    }
}
