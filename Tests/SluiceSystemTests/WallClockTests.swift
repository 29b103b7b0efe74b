import SluiceSystem
import Testing

@Suite("wall clock")
struct WallClockTests {
    @Test("RFC 3339 UTC with milliseconds (log lines, connection start times)")
    func timestamps() {
        #expect(WallClock.rfc3339(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123Z")
        #expect(WallClock.rfc3339(1_700_000_000_004_000_000) == "2023-11-14T22:13:20.004Z")
        #expect(WallClock.rfc3339(0) == "1970-01-01T00:00:00.000Z")
        #expect(WallClock.now() > 1_700_000_000_000_000_000)
    }
}
