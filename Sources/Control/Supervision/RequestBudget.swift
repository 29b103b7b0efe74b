/// A token bucket for requests a worker may make of sluiced that cost it a system call each (a `/dev/net/tun`
/// descriptor): up to `burst` at once, then `perSecond`. A worker asking in a loop gets refusals, not sluiced's time.
struct RequestBudget: Sendable {
    let burst: Double
    let perSecond: Double
    private var tokens: Double
    private var updatedAt: UInt64?

    init(burst: Int, perSecond: Int) {
        self.burst = Double(burst)
        self.perSecond = Double(perSecond)
        tokens = Double(burst)
    }

    /// Takes one request at monotonic time `now` (ns); false when the budget is spent.
    mutating func take(at now: UInt64) -> Bool {
        if let updatedAt, now > updatedAt {
            tokens = min(burst, tokens + Double(now - updatedAt) / 1e9 * perSecond)
        }
        updatedAt = max(updatedAt ?? now, now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
