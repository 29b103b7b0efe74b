import Foundation
import IPC
import NIOCore

/// Produces the lines of a streaming endpoint on a channel's event loop until stopped. The same driver feeds
/// a chunked HTTP response (one JSON document per line) and a WebSocket (one text frame per document).
///
/// `/traffic`, `/memory` and `/connections` send one sample at once and then one every period (a second, or
/// `?interval=`), whatever runs behind them, as mihomo does: clients probe a stream by reading its first line.
/// Each sample asks sluiced (and through it a worker) for fresh numbers and waits for the answer at most
/// ``answerWait``; an answer that is an error (no tun worker in this configuration, one restarting) gives the
/// empty sample (zero rates, no connections), and a late one gives the last sample known. At most one question
/// is out at a time: while one is, the next periods send the fallback without asking again.
final class StreamDriver {
    /// How long a sample waits for its answer (at most half the period) before the fallback is sent.
    static let answerWait = TimeAmount.milliseconds(500)

    private let kind: StreamKind
    private let core: ControllerCore
    private let loop: any EventLoop
    private let emit: (String) -> Void
    private var task: RepeatedTask?
    private var follower: Int?
    /// The tun worker's totals at the last answer (rates are the growth since).
    private var previous: (up: UInt64, down: UInt64)?
    /// The workers' pids at the last answer, for a memory sample while sluiced's thread is busy.
    private var workerPIDs: [Int32] = []
    /// The last connections document, sent again while a new one is late.
    private var lastConnections: String?
    /// A question to sluiced is out (its answer may still come after the sample gave up on it).
    private var asking = false
    /// Counts periods; `waiting` is the one whose sample is not sent yet.
    private var period = 0
    private var waiting: Int?

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
        case .traffic, .memory, .connections:
            task = loop.scheduleRepeatedTask(initialDelay: .zero, delay: periodLength) { _ in bound.value.tick() }
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
        waiting = nil
    }

    private var periodLength: TimeAmount {
        if case .connections(let interval) = kind { return .milliseconds(Int64(max(100, interval))) }
        return .seconds(1)
    }

    private func tick() {
        guard task != nil else { return }
        period += 1
        // The previous period's question is still out: no second one, the fallback now.
        guard !asking else {
            emit(fallback())
            return
        }
        let this = period
        waiting = this
        asking = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        let deadline = loop.scheduleTask(in: min(Self.answerWait, .nanoseconds(periodLength.nanoseconds / 2))) {
            bound.value.send(period: this, nil)
        }
        fetch().whenComplete { result in
            deadline.cancel()
            let driver = bound.value
            driver.asking = false
            driver.send(period: this, driver.sample(from: try? result.get()))
        }
    }

    /// Sends `period`'s sample once: `text`, or the fallback when it is nil (the answer is late).
    private func send(period: Int, _ text: String?) {
        guard waiting == period else { return }
        waiting = nil
        emit(text ?? fallback())
    }

    /// What sluiced answers for one sample of this kind.
    private enum Answer {
        case worker(Message)
        case state(ControllerState)
        case document([UInt8])
    }

    private func fetch() -> EventLoopFuture<Answer> {
        switch kind {
        case .traffic: core.ask(.tun, .statsRequest, on: loop).map { .worker($0) }
        case .memory: core.state(on: loop).map { .state($0) }
        case .connections: core.connections(on: loop).map { .document($0) }
        case .logs: loop.makeSucceededFuture(.document([]))
        }
    }

    /// The line for an answer (nil: a failure, use the fallback). Remembers what the fallback needs, also for
    /// an answer that comes too late to be sent.
    private func sample(from answer: Answer?) -> String? {
        switch answer {
        case .worker(.statsReport(let report)):
            let stats = Dictionary(report.entries.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
            let up = UInt64(max(0, stats["traffic.bytes.up"] ?? stats["tcp.bytes.up"] ?? 0))
            let down = UInt64(max(0, stats["traffic.bytes.down"] ?? stats["tcp.bytes.down"] ?? 0))
            // A restarted worker counts from zero again: its total is the growth.
            let before = previous ?? (up, down)
            let rate = (
                up: up >= before.up ? up - before.up : up, down: down >= before.down ? down - before.down : down
            )
            previous = (up, down)
            return Self.text(TrafficSample(up: rate.up, down: rate.down, upTotal: up, downTotal: down))
        case .worker:
            // An error: no tun worker in this configuration, or it is restarting. Nothing moved through it.
            return nil
        case .state(let state):
            workerPIDs = state.workers.compactMap(\.pid)
            return Self.text(MemorySample(inuse: MemoryUse.total(state), oslimit: 0))
        case .document(let document):
            let text = String(decoding: document, as: UTF8.self)
            lastConnections = text
            return text
        case nil:
            return nil
        }
    }

    /// The sample sent when the answer is an error or late: zero rates with the last totals, the memory of the
    /// processes known, the last connections document (or none).
    private func fallback() -> String {
        switch kind {
        case .traffic:
            return Self.text(TrafficSample(up: 0, down: 0, upTotal: previous?.up ?? 0, downTotal: previous?.down ?? 0))
        case .memory:
            return Self.text(MemorySample(inuse: MemoryUse.total(pids: workerPIDs), oslimit: 0))
        case .connections:
            return lastConnections
                ?? Self.text(
                    ControllerCore.ConnectionsPage(
                        snapshot: ConnectionsSnapshot(uploadTotal: 0, downloadTotal: 0, connections: []),
                        memory: MemoryUse.total(pids: workerPIDs)))
        case .logs:
            return ""
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
