import ArgumentParser
import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceSystem

/// Options every worker executable takes. Workers are started by `sluiced`, which passes
/// the control channel as a descriptor; they are not meant to be run by hand.
package struct WorkerOptions: ParsableArguments {
    @Option(help: "Descriptor of the control channel to the supervisor (default: $SLUICE_CONTROL_FD or 3).")
    package var controlFD: Int32?

    package init() {}

    package var resolvedControlFD: Int32 {
        if let controlFD { return controlFD }
        if let env = ProcessInfo.processInfo.environment["SLUICE_CONTROL_FD"], let fd = Int32(env) { return fd }
        return 3
    }
}

/// The worker side of the supervisor protocol: handshake, config, ready, heartbeats,
/// stats, peer wiring and shutdown, on the main thread, until the supervisor goes away.
package final class WorkerProcess {
    package let role: PeerRole
    /// SYSLOG_IDENTIFIER-style name: `sluice-tun`, `sluice-dns`, `sluice-keepalive`.
    package let identifier: String
    private let logger: Logger
    private var generation: UInt64 = 0
    private let startedAt = MonotonicClock.now
    private var heartbeatsAnswered: Int64 = 0

    package init(role: PeerRole, identifier: String) {
        // Writes to a peer that has gone (splice into a reset socket, a closed channel)
        // must fail with EPIPE, not kill the worker: sluiced spawns workers with default
        // signal dispositions, so each worker sets this itself.
        signal(SIGPIPE, SIG_IGN)
        self.role = role
        self.identifier = identifier
        SluiceLogging.bootstrap(identifier: identifier)
        self.logger = Logger(label: identifier)
    }

    /// The whole life of a worker executable: logging, the lifecycle loop on the control
    /// descriptor, and the exit status (0 when the supervisor let go, non-zero otherwise).
    package static func main(
        role: PeerRole, identifier: String, options: WorkerOptions, service makeService: () -> some WorkerService
    ) throws {
        let process = WorkerProcess(role: role, identifier: identifier)
        let code = process.run(controlFD: options.resolvedControlFD, service: makeService())
        if code != 0 { throw ExitCode(code) }
    }

    /// Runs the lifecycle loop on the control descriptor. Returns the process exit code.
    package func run(controlFD: Int32, service: some WorkerService) -> Int32 {
        var st = stat()
        guard fstat(controlFD, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else {
            logger.error(
                "no control channel on descriptor \(controlFD); \(identifier) is started by sluiced (run `sluiced run -c CONFIG`), not by hand"
            )
            return 2
        }
        let channel = FrameChannel(takingOwnershipOf: OwnedDescriptor(takingOwnershipOfDescriptor: controlFD))
        do {
            try handshake(channel)
            try serve(channel, service: service)
            return 0
        } catch let error as IPCError where error.code == .peerClosed {
            logger.info("supervisor closed the control channel; exiting")
            service.shutdown(graceMilliseconds: 0)
            return 0
        } catch {
            logger.error("control channel failed: \(error); exiting so that the supervisor restarts this worker")
            service.shutdown(graceMilliseconds: 0)
            return 1
        }
    }

    private func handshake(_ channel: FrameChannel) throws {
        guard let (received, result) = try channel.receiveMessage(timeoutMilliseconds: 30_000) else {
            throw IPCError(.handshakeFailed, "no hello from the supervisor within 30 s")
        }
        guard case .success(.hello(let hello)) = result else {
            let reply = ErrorReport(code: .handshakeFailed, message: "expected hello first")
            try? channel.send(.error(reply), requestID: received.header.requestID, isReply: true)
            throw IPCError(.handshakeFailed, "first frame was \(received.header.type), not hello")
        }
        do {
            let version = try hello.negotiate()
            try channel.send(
                .helloAccept(
                    HelloAccept(
                        version: version, role: role, pid: UInt32(getpid()), software: SluiceVersion.banner(identifier))
                ),
                requestID: received.header.requestID, isReply: true)
        } catch {
            try? channel.send(.error(ErrorReport(error)), requestID: received.header.requestID, isReply: true)
            throw error
        }
    }

    private func serve(_ channel: FrameChannel, service: some WorkerService) throws {
        let link = SupervisorLink(channel: channel)
        service.connected(to: link)
        while true {
            guard let (received, result) = try channel.receiveMessage() else { continue }
            let id = received.header.requestID
            let message: Message
            switch result {
            case .success(let m): message = m
            case .failure(let error):
                logger.warning("ignored a bad frame from the supervisor: \(error)")
                continue
            }
            if received.header.isReply {
                link.deliver(message, requestID: id, descriptors: received.descriptors)
                continue
            }
            switch message {
            case .configPush(let push):
                let (outcome, detail) = applyPush(push, service: service)
                try channel.send(
                    .configResult(ConfigResult(generation: push.generation, outcome: outcome, detail: detail)),
                    requestID: id, isReply: true)
                if outcome == .applied {
                    try channel.send(.ready(Ready(generation: generation, detail: service.readyDetail)))
                }
            case .heartbeat(let beat):
                guard service.isHealthy else {
                    logger.warning("not answering heartbeat \(beat.sequence): the worker reports itself unhealthy")
                    continue
                }
                heartbeatsAnswered += 1
                try channel.send(.heartbeatAck(beat), requestID: id, isReply: true)
            case .statsRequest:
                var entries: [StatsReport.Entry] = [
                    .init(
                        "uptime.ms", Int64(MonotonicClock.elapsed(from: startedAt, to: MonotonicClock.now) / 1_000_000)),
                    .init("config.generation", Int64(generation)),
                    .init("heartbeats.answered", heartbeatsAnswered),
                ]
                entries += service.stats()
                try channel.send(
                    .statsReport(StatsReport(entries: entries, problems: service.problems)), requestID: id,
                    isReply: true)
            case .peerChannel(let peer):
                guard let fd = received.descriptors.first else {
                    logger.warning("peerChannel for \(peer.peer) came without its socket; ignored")
                    continue
                }
                logger.info("channel to peer \(peer.peer) (pid \(peer.peerPID)) connected")
                service.peerConnected(peer, channel: FrameChannel(takingOwnershipOf: fd))
            case .reload(let reload):
                logger.info("reload requested: \(reload.reason)")
                try channel.send(
                    .configResult(ConfigResult(generation: generation, outcome: .applied, detail: "")), requestID: id,
                    isReply: true)
            case .shutdown(let shutdown):
                logger.info("shutting down: \(shutdown.reason)")
                service.shutdown(graceMilliseconds: shutdown.graceMilliseconds)
                return
            case .hello:
                try channel.send(
                    .error(ErrorReport(code: .handshakeFailed, message: "hello after the handshake")), requestID: id,
                    isReply: true)
            case .logSubscribe(let subscribe):
                // Lines at or above the priority also go to sluiced, for the external controller's /logs.
                LogTap.set(priority: subscribe.priority) { priority, text in
                    try? channel.send(.logRecord(LogRecord(priority: priority, text: text)))
                }
            default:
                guard id != 0 && !received.header.isReply else { continue }
                let taken = service.answerLater(message) { answer in
                    try? channel.send(answer, requestID: id, isReply: true)
                }
                if taken { continue }
                // A request for the service itself (group selection and state...).
                let answer =
                    service.answer(message)
                    ?? .error(
                        ErrorReport(code: .unknownMessageType, message: "\(identifier) does not handle \(message.type)")
                    )
                try channel.send(answer, requestID: id, isReply: true)
            }
        }
    }

    private func applyPush(_ push: ConfigPush, service: some WorkerService) -> (ConfigResult.Outcome, String) {
        let configuration: SluiceConfiguration
        do {
            configuration = try JSONDecoder().decode(SluiceConfiguration.self, from: Data(push.document))
        } catch {
            logger.error("configuration generation \(push.generation) could not be decoded: \(error)")
            return (.rejected, "undecodable configuration: \(error)")
        }
        SluiceLogging.setLevel(SluiceLogging.level(named: configuration.logLevel.rawValue))
        let (outcome, detail) = service.apply(configuration, generation: push.generation)
        switch outcome {
        case .applied:
            generation = push.generation
            logger.info("configuration generation \(push.generation) applied")
        case .restartRequired:
            logger.info("configuration generation \(push.generation) needs a restart: \(detail)")
        case .rejected:
            logger.error("configuration generation \(push.generation) rejected: \(detail)")
        }
        return (outcome, detail)
    }
}
