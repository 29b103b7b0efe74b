import IPC
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Everything the supervisor knows about one worker across its restarts.
final class WorkerSlot {
    enum State: Equatable {
        /// Not enabled by the configuration.
        case off
        /// Spawned; waiting for helloAccept, configResult and ready.
        case starting
        case ready
        /// Failed; restarts at the given monotonic time.
        case backoff(until: UInt64)
        /// Asked to stop; waiting for it to exit.
        case stopping
        /// Ended on purpose and not coming back.
        case stopped

        var name: String {
            switch self {
            case .off: "off"
            case .starting: "starting"
            case .ready: "ready"
            case .backoff: "restarting"
            case .stopping: "stopping"
            case .stopped: "stopped"
            }
        }
    }

    /// Why the supervisor sent a request, so the reply can be routed.
    enum Purpose {
        case hello
        case config(generation: UInt64)
        case heartbeat
        case stats
        /// The worker's proxy-group state, kept for `sluiced status`.
        case groups
        /// The keepalive worker's WireGuard link state, kept for `sluiced status`.
        case links
        /// A control client's request passed on; the answer goes back to it.
        case forward(client: ObjectIdentifier, requestID: UInt32)
        /// The external controller's question; `reply` takes the answer (or an error if the worker goes away).
        case api(reply: @Sendable (Message) -> Void)
    }

    struct LastExit {
        var exit: ProcessSpawner.Exit
        var reason: String
        var at: UInt64
    }

    let kind: WorkerKind
    var enabled = false
    var state: State = .off
    var pid: pid_t = 0
    var channel: FrameChannel?
    /// Read end of the stderr pipe when journald is not reachable.
    var logPipe: OwnedDescriptor?
    var logBuffer: [UInt8] = []
    var spawnedAt: UInt64 = 0
    var readyAt: UInt64 = 0
    var handshaken = false
    var restarts = 0
    var lastExit: LastExit?
    /// Set when the supervisor itself kills the worker, to explain the exit.
    var killReason: String?
    /// Restart right after the next exit without counting a failure (config needs it).
    var restartAfterExit = false
    var schedule: RestartSchedule
    var heartbeatSequence: UInt64 = 0
    /// Heartbeats sent and not yet answered: sequence → sent at.
    var outstandingHeartbeats: [UInt64: UInt64] = [:]
    var heartbeatLatency: UInt64?
    var stats: [String: Int64] = [:]
    var detail = ""
    /// What the worker last reported as broken (``StatsReport/problems``); cleared when it exits.
    var problems: [String] = []
    var appliedGeneration: UInt64 = 0
    var requests: [UInt32: Purpose] = [:]
    /// The last proxy-group state the tun worker reported.
    var groups: [GroupState] = []
    var links: [WireGuardLinkState] = []
    /// `tunDescriptorRequest`s: one per wireguard-go start, so a burst covers every link coming up at once; kept
    /// across restarts, so that a worker that crashes in a loop does not get a fresh burst each time.
    var tunDescriptorBudget = RequestBudget(burst: 32, perSecond: 8)

    init(kind: WorkerKind, schedule: RestartSchedule) {
        self.kind = kind
        self.schedule = schedule
    }

    /// A running process (starting, ready or stopping).
    var isRunning: Bool { pid > 0 }

    var oldestOutstandingHeartbeat: UInt64? { outstandingHeartbeats.values.min() }

    func resetSession() {
        channel?.close()
        channel = nil
        handshaken = false
        outstandingHeartbeats = [:]
        for case .api(let reply) in requests.values {
            reply(
                .error(
                    ErrorReport(
                        code: .peerClosed,
                        message: "the \(kind.rawValue) worker stopped before answering; try again once it is back")))
        }
        requests = [:]
        heartbeatLatency = nil
        killReason = nil
        stats = [:]
        problems = []
        groups = []
        links = []
    }
}
