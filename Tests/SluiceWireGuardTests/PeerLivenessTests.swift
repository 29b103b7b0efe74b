import Testing

@testable import SluiceWireGuard

/// The re-resolution policy with a fake clock: samples every `step` seconds.
@Suite("peer liveness: when to re-resolve an endpoint name")
struct PeerLivenessTests {
    static let s: UInt64 = 1_000_000_000

    /// Feeds samples every `step` seconds from `start`; returns the times (seconds) at which a reason came out.
    static func run(
        _ liveness: inout PeerLiveness, from start: UInt64, to end: UInt64, step: UInt64 = 5,
        sample: (UInt64) -> (age: Int64?, rx: UInt64, tx: UInt64)
    ) -> [(UInt64, PeerLiveness.Reason)] {
        var out: [(UInt64, PeerLiveness.Reason)] = []
        var t = start
        while t <= end {
            let v = sample(t)
            if let r = liveness.observe(.init(now: t * s, handshakeAge: v.age, rxBytes: v.rx, txBytes: v.tx)) {
                out.append((t, r))
            }
            t += step
        }
        return out
    }

    @Test("a healthy peer (fresh handshakes, rx and tx both moving) is never re-resolved")
    func healthy() {
        var l = PeerLiveness(upSince: 0)
        let hits = Self.run(&l, from: 0, to: 600) { t in (Int64(t % 120), 100 * t, 120 * t) }
        #expect(hits.isEmpty)
    }

    @Test("tx growing while rx is flat: re-resolve after 15 s of silence, then at most every 15 s")
    func rxFlat() {
        var l = PeerLiveness(upSince: 0)
        // rx stops at t=30; tx keeps growing; handshakes stay young enough not to matter.
        let hits = Self.run(&l, from: 0, to: 80) { t in (5, min(t, 30) * 100, t * 100) }
        #expect(hits.map(\.0) == [45, 60, 75])
        if case .rxFlat(let seconds, let growth) = hits.first?.1 {
            #expect(seconds == 15)
            #expect(growth == 1500)
        } else {
            Issue.record("expected rxFlat, got \(String(describing: hits.first?.1))")
        }
    }

    @Test("both flat (an idle link) is not a reason; rx moving again resets the window")
    func idleAndRecovery() {
        var idle = PeerLiveness(upSince: 0)
        #expect(Self.run(&idle, from: 0, to: 100) { _ in (10, 500, 700) }.isEmpty)
        var l = PeerLiveness(upSince: 0)
        // rx flat from 0 to 10, comes back at 10 (before 15 s), flat again from 20.
        let hits = Self.run(&l, from: 0, to: 40) { t in (5, t < 10 ? 0 : min(t, 20) * 10, t * 10) }
        #expect(hits.map(\.0) == [35])
    }

    @Test("handshake older than 135 s: re-resolve, then every 15 s while it stays stale")
    func staleHandshake() {
        var l = PeerLiveness(upSince: 0)
        // Last handshake at t=0; counters do not move (no flat-rx reason).
        let hits = Self.run(&l, from: 0, to: 170) { t in (Int64(t), 0, 0) }
        #expect(hits.map(\.0) == [140, 155, 170])
        #expect(hits.first?.1 == .staleHandshake(ageSeconds: 140))
    }

    @Test("no handshake ever: re-resolve once the link has been up 135 s")
    func never() {
        var l = PeerLiveness(upSince: 100 * Self.s)
        let hits = Self.run(&l, from: 100, to: 250) { _ in (nil, 0, 0) }
        #expect(hits.first?.0 == 235)
        #expect(hits.first?.1 == .noHandshake(upSeconds: 135))
    }

    @Test("shorter thresholds from the configuration apply")
    func configured() {
        var l = PeerLiveness(upSince: 0, thresholds: .init(handshakeTimeout: 10 * Self.s, rxTimeout: 3 * Self.s))
        let hits = Self.run(&l, from: 0, to: 12, step: 1) { t in (Int64(t) + 2, 0, t) }
        // The first sample (t=0) opens the flat-rx window: tx grew by t=3 → flat-rx, again at t=6; at t=9 the
        // handshake is 11 s old (> 10 s), which comes first.
        #expect(hits.map(\.0) == [3, 6, 9, 12])
        #expect(hits[0].1 == .rxFlat(seconds: 3, txGrowth: 3))
        #expect(hits[2].1 == .staleHandshake(ageSeconds: 11))
    }

    @Test("counters that restart (a new device) do not count as growth")
    func restart() {
        var l = PeerLiveness(upSince: 0)
        // Big counters until t=20, then the device restarts and both count from zero, moving together.
        let hits = Self.run(&l, from: 0, to: 60) { t in t < 20 ? (5, 10_000 + t, 20_000 + t) : (5, t * 10, t * 10) }
        #expect(hits.isEmpty)
    }
}
