/// When a peer's endpoint name should be resolved again (pure: samples in, decisions out; no clock, no I/O).
///
/// The keeper feeds it one sample per peer every `keepalive.interval`. It answers with a reason to re-resolve when
/// - the last handshake is older than `handshakeTimeout` (WireGuard rekeys every 120 s, so 135 s by default means
///   a rekey went unanswered), or there never was one and the link has been up that long; or
/// - the tx counter grew while the rx counter stayed flat for `rxTimeout` (15 s by default): we send, nothing comes
///   back.
/// After a decision it stays quiet for `rxTimeout`, so a dead peer is re-resolved at that pace, not every interval.
package struct PeerLiveness: Sendable, Equatable {
    package struct Thresholds: Sendable, Equatable {
        /// Nanoseconds.
        package var handshakeTimeout: UInt64
        /// Nanoseconds.
        package var rxTimeout: UInt64

        package init(handshakeTimeout: UInt64 = 135_000_000_000, rxTimeout: UInt64 = 15_000_000_000) {
            self.handshakeTimeout = handshakeTimeout
            self.rxTimeout = rxTimeout
        }
    }

    /// One reading of the peer.
    package struct Sample: Sendable, Equatable {
        /// Monotonic nanoseconds.
        package var now: UInt64
        /// Age of the last handshake in seconds; nil when there has been none.
        package var handshakeAge: Int64?
        package var rxBytes: UInt64
        package var txBytes: UInt64

        package init(now: UInt64, handshakeAge: Int64?, rxBytes: UInt64, txBytes: UInt64) {
            self.now = now
            self.handshakeAge = handshakeAge
            self.rxBytes = rxBytes
            self.txBytes = txBytes
        }
    }

    package enum Reason: Sendable, Equatable, CustomStringConvertible {
        case staleHandshake(ageSeconds: Int64)
        case noHandshake(upSeconds: Int64)
        case rxFlat(seconds: Int64, txGrowth: UInt64)

        package var description: String {
            switch self {
            case .staleHandshake(let age): "last handshake \(age) s ago"
            case .noHandshake(let up): "no handshake in \(up) s"
            case .rxFlat(let seconds, let growth): "sent \(growth) bytes, received nothing for \(seconds) s"
            }
        }
    }

    package var thresholds: Thresholds
    /// When the link was (re)configured: the start of the "never had a handshake" clock.
    package private(set) var upSince: UInt64
    private var lastRx: UInt64?
    private var rxChangedAt: UInt64
    private var txAtRxChange: UInt64 = 0
    private var quietUntil: UInt64 = 0

    package init(upSince: UInt64, thresholds: Thresholds = .init()) {
        self.upSince = upSince
        self.thresholds = thresholds
        rxChangedAt = upSince
    }

    /// Takes one sample; returns why the endpoint should be re-resolved now, or nil.
    package mutating func observe(_ sample: Sample) -> Reason? {
        let now = sample.now
        if lastRx != sample.rxBytes {
            // rx moved (or this is the first sample, or the counters restarted with a new device): the flat-rx
            // window starts again here.
            lastRx = sample.rxBytes
            rxChangedAt = now
            txAtRxChange = sample.txBytes
        }
        if sample.txBytes < txAtRxChange { txAtRxChange = sample.txBytes }
        guard now >= quietUntil else { return nil }
        var reason: Reason?
        if let age = sample.handshakeAge {
            if UInt64(max(0, age)) * 1_000_000_000 > thresholds.handshakeTimeout {
                reason = .staleHandshake(ageSeconds: age)
            }
        } else if elapsed(upSince, now) >= thresholds.handshakeTimeout {
            reason = .noHandshake(upSeconds: Int64(elapsed(upSince, now) / 1_000_000_000))
        }
        if reason == nil, sample.txBytes > txAtRxChange, elapsed(rxChangedAt, now) >= thresholds.rxTimeout {
            reason = .rxFlat(
                seconds: Int64(elapsed(rxChangedAt, now) / 1_000_000_000), txGrowth: sample.txBytes - txAtRxChange)
        }
        if reason != nil {
            quietUntil = now + thresholds.rxTimeout
            // The flat-rx window restarts: another decision needs another full window of silence.
            rxChangedAt = now
            txAtRxChange = sample.txBytes
        }
        return reason
    }

    private func elapsed(_ from: UInt64, _ to: UInt64) -> UInt64 { to >= from ? to - from : 0 }
}
