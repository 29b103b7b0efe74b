import Logging
import SluiceSystem

/// Log lines captured in memory ("LEVEL: message"), for tests that check what a component logs.
package final class CapturedLines: Sendable {
    package let lines = Locked<[String]>([])

    package init() {}

    package var logger: Logger {
        Logger(label: "test") { _ in CapturingHandler(sink: self) }
    }

    struct CapturingHandler: LogHandler {
        let sink: CapturedLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { sink.lines.withLock { $0.append("\(event.level): \(event.message)") } }
    }
}
