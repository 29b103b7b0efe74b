import IPC
import Logging
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a process's log lines are written to its stderr.
package enum LogLineFormat: Sendable {
    /// `<6>message key=value`: for a journald stream (sd_journal_stream_fd with
    /// level_prefix, or systemd's own stdout stream), which turns `<N>` into PRIORITY=N.
    case journalPrefix
    /// `2026-11-21T21:10:00.123Z sluice-tun info: message key=value`: for a terminal.
    case human
    /// `<6>message` as well, but read by the supervisor from a pipe and re-emitted with
    /// the worker's name in front (the fallback when journald is not reachable).
    case supervisorPipe

    /// Picks the format for this process from its environment: `SLUICE_LOG_FORMAT`
    /// (set by sluiced for workers), else journald when stderr is systemd's journal stream
    /// (`JOURNAL_STREAM` matches stderr's device and inode), else human.
    package static func detect() -> LogLineFormat {
        if let forced = getenv("SLUICE_LOG_FORMAT").map({ String(cString: $0) }) {
            switch forced {
            case "journal": return .journalPrefix
            case "pipe": return .supervisorPipe
            default: return .human
            }
        }
        if let stream = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) {
            var st = stat()
            if fstat(2, &st) == 0, stream == "\(st.st_dev):\(st.st_ino)" { return .journalPrefix }
        }
        return .human
    }
}

/// A swift-log handler that writes one line per record to stderr, atomically (one write).
///
/// Every line carries the process identity (in the human format) or goes to a stream that
/// already carries it (journald's SYSLOG_IDENTIFIER, the supervisor's pipe prefix).
package struct LineLogHandler: LogHandler {
    /// The process-wide level: a config reload changes it for every logger at once.
    private static let sharedLevel = Atomic<UInt8>(2)
    private static let levels: [Logger.Level] = Logger.Level.allCases

    package var metadata: Logger.Metadata = [:]
    package let identifier: String
    package let format: LogLineFormat

    /// The level is process-wide and set by ``SluiceLogging``; making a logger does not
    /// change it (it used to, which reset a configured `log-level: warning` to info as soon
    /// as any component made its own logger).
    package init(identifier: String, format: LogLineFormat) {
        self.identifier = identifier
        self.format = format
    }

    /// Reads and writes the process-wide level.
    package var logLevel: Logger.Level {
        get { Self.levels[Int(Self.sharedLevel.load(ordering: .relaxed))] }
        set { Self.setProcessLevel(newValue) }
    }

    package static func setProcessLevel(_ level: Logger.Level) {
        sharedLevel.store(UInt8(levels.firstIndex(of: level) ?? 2), ordering: .relaxed)
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// syslog priority for a swift-log level.
    package static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    package func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        var text = "\(event.message)"
        if !merged.isEmpty {
            text += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        // One record is one line: embedded newlines would split it in journald.
        text = text.replacingNewlines()
        let line: String
        switch format {
        case .journalPrefix, .supervisorPipe:
            line = "<\(Self.priority(event.level))>\(text)\n"
        case .human:
            line = "\(Self.timestamp()) \(identifier) \(event.level): \(text)\n"
        }
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        LogTap.offer(priority: UInt8(Self.priority(event.level)), text: text)
    }

    /// UTC ISO 8601 with milliseconds, for human-format lines.
    package static func timestamp() -> String { WallClock.rfc3339(WallClock.now()) }
}

extension String {
    func replacingNewlines() -> String {
        guard contains(where: { $0 == "\n" || $0 == "\r" }) else { return self }
        return String(map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}

/// Where log lines go besides stderr while someone follows them (the external controller's `/logs`):
/// a worker sends them to sluiced as `logRecord`s, sluiced hands its own to its subscribers. The sink
/// must not log (it would call itself).
package enum LogTap {
    private struct State: Sendable {
        var priority: UInt8 = LogSubscribe.off
        var sink: (@Sendable (UInt8, String) -> Void)?
    }

    private static let state = Locked(State())
    /// Read without the lock on every line: nothing is taken while nobody follows.
    private static let threshold = Atomic<UInt8>(LogSubscribe.off)

    /// Lines at `priority` or more urgent (smaller syslog number) go to `sink`; ``LogSubscribe/off`` stops.
    package static func set(priority: UInt8, sink: @escaping @Sendable (UInt8, String) -> Void) {
        state.withLock { $0 = State(priority: priority, sink: priority == LogSubscribe.off ? nil : sink) }
        threshold.store(priority, ordering: .relaxed)
    }

    static func offer(priority: UInt8, text: String) {
        let limit = threshold.load(ordering: .relaxed)
        guard limit != LogSubscribe.off, priority <= limit else { return }
        guard let sink = state.withLock({ $0.priority >= priority ? $0.sink : nil }) else { return }
        sink(priority, text)
    }
}

/// Process-wide logging set-up: once, before the first logger is made.
package enum SluiceLogging {
    private static let bootstrapped = Locked(false)

    /// Changes the level of every logger in this process (config reload).
    package static func setLevel(_ level: Logger.Level) { LineLogHandler.setProcessLevel(level) }

    /// Installs ``LineLogHandler`` for this process. `level` can be changed later per
    /// logger (a reload sets it on the loggers the process keeps).
    package static func bootstrap(identifier: String, level: Logger.Level = .info) {
        let already = bootstrapped.withLock { done in
            defer { done = true }
            return done
        }
        guard !already else { return }
        let format = LogLineFormat.detect()
        LineLogHandler.setProcessLevel(level)
        LoggingSystem.bootstrap { _ in LineLogHandler(identifier: identifier, format: format) }
    }

    /// Maps the config's `log-level` (mihomo spelling) to a swift-log level.
    package static func level(named name: String) -> Logger.Level {
        switch name.lowercased() {
        case "debug": .debug
        case "info": .info
        case "warning", "warn": .warning
        case "error": .error
        case "silent": .critical
        default: .info
        }
    }
}
