import Foundation
import IPC
import NIOCore

/// Produces the lines of a streaming endpoint on a channel's event loop until stopped. The same driver feeds
/// a chunked HTTP response (one JSON document per line) and a WebSocket (one text frame per document).
final class StreamDriver {
    private let kind: StreamKind
    private let core: ControllerCore
    private let loop: any EventLoop
    private let emit: (String) -> Void
    private var task: RepeatedTask?
    private var follower: Int?
    private var previous: (up: UInt64, down: UInt64)?
    private var busy = false

    /// `emit` runs on `loop`.
    init(kind: StreamKind, core: ControllerCore, loop: any EventLoop, emit: @escaping (String) -> Void) {
        self.kind = kind
        self.core = core
        self.loop = loop
        self.emit = emit
    }

    func start() {
        loop.preconditionInEventLoop()
        let bound = NIOLoopBound(self, eventLoop: loop)
        switch kind {
        case .traffic, .memory:
            task = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(1)) { _ in bound.value.tick() }
        case .connections(let interval):
            task = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(Int64(max(100, interval)))) { _ in
                bound.value.tick()
            }
        case .logs(let priority, let structured):
            let loop = self.loop
            follower = core.logs.follow(priority: priority) { line in
                let text = Self.render(line, structured: structured)
                loop.execute { bound.value.emit(text) }
            }
        }
    }

    func stop() {
        task?.cancel()
        task = nil
        if let follower { core.logs.unfollow(follower) }
        follower = nil
    }

    private func tick() {
        // A slow answer (sluiced busy, a worker restarting) skips ticks instead of piling requests up.
        guard !busy else { return }
        busy = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        switch kind {
        case .traffic:
            core.ask(.tun, .statsRequest, on: loop).whenSuccess { answer in
                let driver = bound.value
                driver.busy = false
                guard case .statsReport(let report) = answer else { return }
                let stats = Dictionary(report.entries.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
                let up = UInt64(max(0, stats["traffic.bytes.up"] ?? stats["tcp.bytes.up"] ?? 0))
                let down = UInt64(max(0, stats["traffic.bytes.down"] ?? stats["tcp.bytes.down"] ?? 0))
                // A restarted worker counts from zero again: its total is the growth.
                let before = driver.previous ?? (up, down)
                let rate = (up: up >= before.up ? up - before.up : up, down: down >= before.down ? down - before.down : down)
                driver.previous = (up, down)
                driver.emit(Self.text(TrafficSample(up: rate.up, down: rate.down, upTotal: up, downTotal: down)))
            }
        case .memory:
            core.state(on: loop).whenSuccess { state in
                let driver = bound.value
                driver.busy = false
                driver.emit(Self.text(MemorySample(inuse: MemoryUse.total(state), oslimit: 0)))
            }
        case .connections:
            core.connections(on: loop).whenSuccess { document in
                let driver = bound.value
                driver.busy = false
                driver.emit(String(decoding: document, as: UTF8.self))
            }
        case .logs:
            busy = false
        }
    }

    struct TrafficSample: Encodable {
        var up: UInt64
        var down: UInt64
        var upTotal: UInt64
        var downTotal: UInt64
    }

    struct MemorySample: Encodable {
        var inuse: UInt64
        var oslimit: UInt64
    }

    struct LogLine: Encodable {
        var type: String
        var payload: String
    }

    struct StructuredLine: Encodable {
        struct Field: Encodable {
            var key: String
            var value: String
        }

        var time: String
        var level: String
        var message: String
        var fields: [Field]
    }

    static func render(_ line: LogHub.Line, structured: Bool) -> String {
        let level = LogHub.level(line.priority)
        if structured {
            return text(
                StructuredLine(
                    time: Timestamp.rfc3339(line.time), level: level, message: line.text,
                    fields: [.init(key: "process", value: line.source)]))
        }
        return text(LogLine(type: level, payload: "[\(line.source)] \(line.text)"))
    }

    static func text<T: Encodable>(_ value: T) -> String { String(decoding: JSON.encode(value), as: UTF8.self) }
}
