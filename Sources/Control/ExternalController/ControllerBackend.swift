import CSluice
import IPC
import SluiceConfig
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// What the external controller needs from sluiced. Every method runs on the supervisor's thread (the
/// controller gets there through ``ControllerMailbox``), so the supervisor needs no locks for it.
package protocol ControllerBackend: AnyObject {
    /// The supervisor's view: configuration, workers, the groups as the tun worker last reported them.
    func controllerState() -> ControllerState
    /// Sends `request` to a worker and calls `reply` once with its answer, or with an `error` message when the
    /// worker is not running or does not answer.
    func controllerAsk(_ worker: ControllerWorker, _ request: Message, reply: @escaping @Sendable (Message) -> Void)
    /// `PATCH /configs`: a runtime change of mode or log level, pushed to the workers (a reload from the file
    /// undoes it, as in mihomo).
    func controllerPatch(mode: SluiceConfiguration.Mode?, logLevel: SluiceConfiguration.LogLevel?)
    /// `PUT /configs`: reload from `path` (nil: the current file) or from `payload` (YAML text). Returns the
    /// reason when the new configuration is refused (nothing changes then).
    func controllerReload(path: String?, payload: String?) -> String?
    /// Asks every worker to send its log lines at `priority` or more urgent (``LogSubscribe/off``: stop).
    func controllerFollowLogs(priority: UInt8)
    /// `PUT /providers/rules/:name`: an `http` provider is downloaded now, a `file` one read again (a reload of
    /// the configuration), an inline one has nothing to update. `done` is called once, on the supervisor's
    /// thread, when the update is over.
    func controllerUpdateRuleProvider(_ name: String, done: @escaping @Sendable (ProviderUpdate) -> Void)
    /// `POST /restart`: asks every running worker to stop and starts it again with the running configuration
    /// (not counted as a failure); sluiced itself stays.
    func controllerRestartWorkers()
}

/// How a rule provider's update through the API ended.
package enum ProviderUpdate: Sendable, Equatable {
    case updated
    case notFound
    /// The download or the reload failed: what happened and what to do (the previous list stays in use).
    case failed(String)
}

/// The workers the controller asks things of.
package enum ControllerWorker: String, Sendable {
    case tun, dns
}

/// A snapshot of what sluiced knows, taken on its thread.
package struct ControllerState: Sendable {
    package struct Worker: Sendable {
        package var name: String
        package var state: String
        package var pid: Int32?
        package var restarts: Int
        package var heartbeatLatencyMilliseconds: Double?
        package var stats: [String: Int64]

        package init(
            name: String, state: String, pid: Int32?, restarts: Int, heartbeatLatencyMilliseconds: Double?,
            stats: [String: Int64]
        ) {
            self.name = name
            self.state = state
            self.pid = pid
            self.restarts = restarts
            self.heartbeatLatencyMilliseconds = heartbeatLatencyMilliseconds
            self.stats = stats
        }
    }

    package var configuration: SluiceConfiguration
    package var configPath: String
    package var generation: UInt64
    package var version: String
    package var workers: [Worker]
    /// The proxy groups as the tun worker last reported them (selection and health).
    package var groups: [GroupState]

    package init(
        configuration: SluiceConfiguration, configPath: String, generation: UInt64, version: String, workers: [Worker],
        groups: [GroupState]
    ) {
        self.configuration = configuration
        self.configPath = configPath
        self.generation = generation
        self.version = version
        self.workers = workers
        self.groups = groups
    }

    package func worker(_ name: String) -> Worker? { workers.first { $0.name == name } }
}

/// Jobs from the controller's threads for the supervisor's thread. The supervisor polls ``descriptor`` and
/// calls ``run(with:)`` when it is readable.
package final class ControllerMailbox: Sendable {
    package typealias Job = @Sendable (any ControllerBackend) -> Void

    private let jobs = Locked<[Job]>([])
    private let event: OwnedDescriptor

    package init() throws(SystemError) {
        let fd = csluice_eventfd()
        guard fd >= 0 else { throw SystemError("eventfd", errno: -fd) }
        event = OwnedDescriptor(takingOwnershipOfDescriptor: fd)
    }

    /// Readable while jobs wait.
    package var descriptor: CInt { event.rawValue }

    package func submit(_ job: @escaping Job) {
        jobs.withLock { $0.append(job) }
        var one: UInt64 = 1
        _ = write(event.rawValue, &one, 8)
    }

    /// Runs every waiting job (supervisor thread).
    package func run(with backend: any ControllerBackend) {
        var count: UInt64 = 0
        _ = read(event.rawValue, &count, 8)
        let pending = jobs.withLock { queue in
            defer { queue.removeAll() }
            return queue
        }
        for job in pending { job(backend) }
    }
}
