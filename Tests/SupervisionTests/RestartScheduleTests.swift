import SluiceTestSupport
import Supervision
import Testing

/// Backoff, jitter, reset after a stable period, and both give-up conditions.
@Suite("RestartSchedule")
struct RestartScheduleTests {
    private func delay(_ decision: RestartSchedule.Decision) -> UInt64? {
        if case .restart(let ns) = decision { return ns }
        return nil
    }

    @Test("delays double from the minimum to the maximum, with jitter in [d/2, d]")
    func exponentialWithJitter() throws {
        var schedule = RestartSchedule(
            minimumDelay: .milliseconds(100), maximumDelay: .seconds(2), maxRestarts: 100, window: .seconds(1),
            stableAfter: .seconds(30))
        var rng = SplitMix64(seed: 7)
        var now: UInt64 = 1_000_000_000_000
        let expected: [UInt64] = [100, 200, 400, 800, 1600, 2000, 2000].map { $0 * 1_000_000 }
        for base in expected {
            let d = try #require(delay(schedule.recordFailure(at: now, uptime: .zero, using: &rng)))
            #expect(d >= base / 2 && d <= base, "delay \(d) for base \(base)")
            now += 10_000_000_000  // outside the window: only the backoff is under test
        }
    }

    @Test("a worker that stayed up for the stable period starts again from the minimum")
    func resetsAfterStable() throws {
        var schedule = RestartSchedule(
            minimumDelay: .milliseconds(100), maximumDelay: .seconds(30), stableAfter: .seconds(30))
        var rng = SplitMix64(seed: 1)
        var now: UInt64 = 0
        for _ in 0..<5 {
            now += 100_000_000_000
            _ = schedule.recordFailure(at: now, uptime: .seconds(1), using: &rng)
        }
        #expect(schedule.consecutiveFailures == 5)
        now += 100_000_000_000
        let d = try #require(delay(schedule.recordFailure(at: now, uptime: .seconds(31), using: &rng)))
        #expect(d <= 100_000_000)
        #expect(schedule.consecutiveFailures == 1)
    }

    @Test("more than maxRestarts within the window gives up")
    func intensityWindow() {
        var schedule = RestartSchedule(
            minimumDelay: .milliseconds(1), maximumDelay: .milliseconds(1), maxRestarts: 10, window: .seconds(60))
        var rng = SplitMix64(seed: 2)
        for i in 0..<10 {
            #expect(delay(schedule.recordFailure(at: UInt64(i) * 1_000_000_000, uptime: .zero, using: &rng)) != nil)
        }
        #expect(
            schedule.recordFailure(at: 10_000_000_000, uptime: .zero, using: &rng)
                == .giveUp(reason: "11 failures within 1m (limit 10)"))
    }

    @Test("failures spread beyond the window by backoff still give up when none was stable")
    func consecutiveWithoutStable() {
        var schedule = RestartSchedule(maxRestarts: 10, window: .seconds(60), stableAfter: .seconds(30))
        var rng = SplitMix64(seed: 3)
        var now: UInt64 = 0
        var decisions: [RestartSchedule.Decision] = []
        for _ in 0..<11 {
            decisions.append(schedule.recordFailure(at: now, uptime: .seconds(1), using: &rng))
            now += 20_000_000_000  // 20 s apart: never more than 3 inside a 60 s window
        }
        #expect(decisions.prefix(10).allSatisfy { delay($0) != nil })
        #expect(decisions.last == .giveUp(reason: "11 failures in a row without staying up for 30s (limit 10)"))
    }
}
