import SluiceTestSupport
import Testing
import WorkerRuntime

/// One line per interval for a limit hit at line rate, each with the count since the previous line.
@Suite("limit warning")
struct LimitWarningTests {
    @Test("10,000 hits in a burst make one line; the next line after the interval counts the ones in between")
    func throttled() {
        let captured = CapturedLines()
        let warning = LimitWarning(logger: captured.logger, intervalSeconds: 5)
        let second: UInt64 = 1_000_000_000
        for i in 0..<10_000 { warning.hit(now: 100 * second + UInt64(i)) { "refused \($0)" } }
        #expect(captured.lines.withLock { $0 } == ["warning: refused 1"])
        warning.hit(now: 104 * second) { "refused \($0)" }
        #expect(captured.lines.withLock { $0.count } == 1, "within 5 s of the last line")
        warning.hit(now: 105 * second) { "refused \($0)" }
        #expect(captured.lines.withLock { $0 } == ["warning: refused 1", "warning: refused 10001"])
    }
}
