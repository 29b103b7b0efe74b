import Foundation
import IPC
import SluiceSystem

/// Fans log lines (sluiced's own and the workers' `logRecord`s) out to `/logs` followers, and asks the
/// workers for lines only while someone follows, at the most verbose level anyone asked for.
final class LogHub: Sendable {
    struct Line: Sendable {
        var source: String
        var priority: UInt8
        var text: String
        var time: Date
    }

    private struct Follower: Sendable {
        var priority: UInt8
        var deliver: @Sendable (Line) -> Void
    }

    private struct State: Sendable {
        var followers: [Int: Follower] = [:]
        var nextID = 1
        var requested = LogSubscribe.off
    }

    private let state = Locked(State())
    private let mailbox: ControllerMailbox

    init(mailbox: ControllerMailbox) { self.mailbox = mailbox }

    /// mihomo's level names to syslog priorities.
    static func priority(level: String) -> UInt8? {
        switch level.lowercased() {
        case "debug": 7
        case "info": 6
        case "warning", "warn": 4
        case "error": 3
        case "silent": 0
        default: nil
        }
    }

    /// mihomo's `type` for a line of this priority.
    static func level(_ priority: UInt8) -> String {
        switch priority {
        case ...3: "error"
        case 4: "warning"
        case 5, 6: "info"
        default: "debug"
        }
    }

    func follow(priority: UInt8, deliver: @escaping @Sendable (Line) -> Void) -> Int {
        let id = state.withLock { s in
            defer { s.nextID += 1 }
            s.followers[s.nextID] = Follower(priority: priority, deliver: deliver)
            return s.nextID
        }
        resubscribe()
        return id
    }

    func unfollow(_ id: Int) {
        state.withLock { _ = $0.followers.removeValue(forKey: id) }
        resubscribe()
    }

    /// Hands a line to everyone who wants its priority (any thread).
    func publish(source: String, priority: UInt8, text: String) {
        let targets = state.withLock { s in s.followers.values.filter { priority <= $0.priority }.map(\.deliver) }
        guard !targets.isEmpty else { return }
        let line = Line(source: source, priority: priority, text: text, time: Date())
        for deliver in targets { deliver(line) }
    }

    /// The workers are asked for the most verbose level a follower wants, or to stop.
    private func resubscribe() {
        let change: UInt8? = state.withLock { s in
            let wanted = s.followers.values.map(\.priority).max() ?? LogSubscribe.off
            guard wanted != s.requested else { return nil }
            s.requested = wanted
            return wanted
        }
        guard let change else { return }
        mailbox.submit { $0.controllerFollowLogs(priority: change) }
    }

    /// The level currently asked of workers (a restarted worker is told again).
    var requested: UInt8 { state.withLock { $0.requested } }
}
