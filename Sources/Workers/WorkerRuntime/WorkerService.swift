import IPC
import SluiceConfig

/// What a worker does, as seen by the lifecycle loop in ``WorkerProcess``.
///
/// The loop owns the control channel: it answers hello, heartbeats and stats requests and
/// calls these hooks. A worker's real job runs on its own threads and reports through them.
package protocol WorkerService: AnyObject {
    /// Validates and applies a configuration. Called for the first push and for every
    /// reload. Must not block for long: the supervisor waits for the answer.
    func apply(_ configuration: SluiceConfiguration, generation: UInt64) -> (ConfigResult.Outcome, String)

    /// One short line for STATUS= once the worker is serving, e.g. `sluice0 up`.
    var readyDetail: String { get }

    /// Whether the worker's own machinery is healthy. The heartbeat is answered only when
    /// it is, so a wedged data plane looks like a hung worker and gets restarted.
    var isHealthy: Bool { get }

    /// Counters for `sluiced status` and metrics.
    func stats() -> [StatsReport.Entry]

    /// What is broken right now that the user relies on (a promise the worker cannot keep while it lasts), one
    /// line each, saying what to do; empty when all is well. Sent with every stats report, so `sluiced status`,
    /// the StatusText and the API show it within a heartbeat.
    var problems: [String] { get }

    /// A (new) channel to a peer worker; replaces any earlier one to the same role.
    /// - Note: the service takes ownership of `channel`.
    func peerConnected(_ peer: PeerChannel, channel: FrameChannel)

    /// Stop serving within `graceMilliseconds`.
    func shutdown(graceMilliseconds: UInt32)

    /// Answers a request the lifecycle loop does not handle itself (e.g. `select`,
    /// `groupStatusRequest` for the tun worker); nil: not this service's business.
    func answer(_ request: Message) -> Message?

    /// Takes a request whose answer takes time (a delay test, a DNS query) and answers it from
    /// another thread: returns true when it took `request` and will call `respond` exactly
    /// once, from any thread. The lifecycle loop asks this before ``answer(_:)``.
    func answerLater(_ request: Message, respond: @escaping @Sendable (Message) -> Void) -> Bool

    /// The way to ask sluiced for facts a worker may not look up itself; called once,
    /// before the first configuration.
    func connected(to supervisor: SupervisorLink)
}

extension WorkerService {
    package var problems: [String] { [] }
    package func answer(_ request: Message) -> Message? { nil }
    package func answerLater(_ request: Message, respond: @escaping @Sendable (Message) -> Void) -> Bool { false }
    package func connected(to supervisor: SupervisorLink) {}
}
