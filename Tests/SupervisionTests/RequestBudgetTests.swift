import Testing

@testable import Supervision

/// The bound on `tunDescriptorRequest`s a worker may make of sluiced.
@Suite("RequestBudget")
struct RequestBudgetTests {
    /// How many of `count` requests at `now` the budget grants.
    private func granted(_ count: Int, _ budget: inout RequestBudget, at now: UInt64) -> Int {
        var granted = 0
        for _ in 0..<count where budget.take(at: now) { granted += 1 }
        return granted
    }

    @Test("a burst, then the rate; unused time refills up to the burst and no further")
    func bucket() {
        var budget = RequestBudget(burst: 32, perSecond: 8)
        let start: UInt64 = 1_000_000_000
        #expect(granted(32, &budget, at: start) == 32)
        #expect(granted(1, &budget, at: start) == 0, "the 33rd at once is refused")
        #expect(granted(1, &budget, at: start + 100_000_000) == 0, "0.1 s refills 0.8 of a request")
        #expect(granted(1, &budget, at: start + 130_000_000) == 1)
        #expect(granted(1, &budget, at: start + 130_000_000) == 0)
        // An hour idle refills to the burst, not beyond.
        let later = start + 3_600_000_000_000
        #expect(granted(33, &budget, at: later) == 32)
    }

    @Test("a clock that does not move forward never refills")
    func clockBackwards() {
        var budget = RequestBudget(burst: 1, perSecond: 8)
        #expect(granted(1, &budget, at: 5_000_000_000) == 1)
        #expect(granted(1, &budget, at: 4_000_000_000) == 0)
        #expect(granted(1, &budget, at: 5_000_000_000) == 0)
    }
}
