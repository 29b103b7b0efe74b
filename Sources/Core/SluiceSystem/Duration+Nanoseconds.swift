/// Durations as the monotonic-clock arithmetic of the supervisor and the workers uses them (whole nanoseconds).
extension Duration {
    /// Whole nanoseconds, saturating at zero for negative durations.
    package var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    package init(nanoseconds: UInt64) { self = .nanoseconds(Int64(clamping: nanoseconds)) }

    /// `250ms`, `5s`, `1.5s`, `2m`.
    package var humanReadable: String {
        let ms = nanoseconds / 1_000_000
        if ms < 1000 { return "\(ms)ms" }
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(Double(ms) / 1000)s"
    }
}
