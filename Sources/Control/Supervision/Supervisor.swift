import CSystemd
import ExternalController
import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceSystem
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Where the supervisor finds things and puts things.
package struct SupervisorOptions: Sendable {
    package var configPath: String
    package var runtimeDirectory: String
    package var stateDirectory: String
    /// Directory holding the worker executables (default: beside `sluiced`).
    package var workerDirectory: String
    /// Per-worker executable overrides (tests, packagers).
    package var executableOverrides: [WorkerKind: String]
    /// The proxy protocols reloads decode with (sluiced passes the outbound registry).
    package var proxyCatalog: any ProxyCatalog

    package init(
        configPath: String, runtimeDirectory: String, stateDirectory: String, workerDirectory: String,
        executableOverrides: [WorkerKind: String] = [:], proxyCatalog: any ProxyCatalog
    ) {
        self.proxyCatalog = proxyCatalog
        self.configPath = configPath
        self.runtimeDirectory = runtimeDirectory
        self.stateDirectory = stateDirectory
        self.workerDirectory = workerDirectory
        self.executableOverrides = executableOverrides
    }

    package var controlSocketPath: String { runtimeDirectory + "/control.sock" }
}

/// `sluiced run`: spawns the enabled workers with least privilege, keeps them alive, and
/// speaks systemd.
///
/// A single thread runs everything: a poll() loop over the signal self-pipe, each
/// worker's control channel and log pipe, the control socket and its clients, with timers
/// for heartbeats, restarts and the watchdog. One thread means no locks, and it means
/// every worker is spawned by the same long-lived thread, which PR_SET_PDEATHSIG needs
/// (it fires when the spawning *thread* exits). See docs/architecture.md.
package final class Supervisor {
    enum Phase: Equatable {
        case running
        /// Stopping every worker; exit with `exitCode` once they are gone.
        case stopping(killAt: UInt64)
    }

    var options: SupervisorOptions
    var configuration: SluiceConfiguration
    var generation: UInt64 = 1
    let notifier = SystemdNotifier()
    let logger = Logger(label: "sluiced")
    /// How sluiced's own stderr wants lines (journald prefixes or human), decided once:
    /// forwarded worker lines use it too.
    let logFormat = LogLineFormat.detect()
    var slots: [WorkerKind: WorkerSlot] = [:]
    /// Account the workers run as; nil when sluiced runs unprivileged (workers keep our uid).
    let account: ServiceAccount?
    /// Group that may use the control socket.
    let controlGroup: gid_t?
    /// Who may use the control socket (checked per connection with SO_PEERCRED).
    var controlAccess: ControlAccess { ControlAccess(owner: geteuid(), serviceUser: account?.uid, group: controlGroup) }
    /// Capabilities we can hand out (our permitted set).
    let grantable: UInt64
    var signalPipe: OwnedDescriptor?
    var listener: OwnedDescriptor?
    var clients: [ControlClient] = []
    /// Warnings about control clients (refused, garbage, expired): at most 10 every 10 s, the rest counted.
    lazy var controlClientLog = LogBudget(
        perWindow: 10, windowSeconds: 10, logger: logger, what: "control-client warnings")
    var nextRequestID: UInt32 = 1
    var phase: Phase = .running
    var exitCode: Int32 = 0
    var readyNotified = false
    var nextHeartbeatAt: UInt64 = 0
    var nextWatchdogAt: UInt64 = 0
    let startedAt = MonotonicClock.now
    var rng = SystemRandomNumberGenerator()
    var lastStatus = ""
    let sleepInhibitor = SleepInhibitor()
    /// Raw ICMP sockets for the tun worker's ping forwarding, opened once (CAP_NET_RAW is
    /// checked at creation) and handed to every tun worker we spawn.
    var icmpSockets: (v4: OwnedDescriptor?, v6: OwnedDescriptor?) = (nil, nil)
    /// Rule-provider downloads in progress, by curl's pid, and when each provider last failed.
    var providerDownloads: [pid_t: ProviderDownload] = [:]
    var providerFailures: [String: UInt64] = [:]
    /// API callers waiting for a provider's download to end (`PUT /providers/rules/:name`), by provider name.
    var providerWaiters: [String: [@Sendable (ProviderUpdate) -> Void]] = [:]
    var nextProviderCheckAt: UInt64 = 0
    /// The Clash API (`external-controller`), when configured; it reaches us through its mailbox.
    var controller: ExternalController?
    /// `dns.listen`, bound by us and handed to each dns worker.
    var dnsListen: (endpoint: InetEndpoint, udp: OwnedDescriptor, tcp: OwnedDescriptor)? {
        didSet {
            if let old = oldValue, old.udp.rawValue != dnsListen?.udp.rawValue {
                old.udp.close()
                old.tcp.close()
            }
        }
    }

    /// The local proxy ports (`mixed-port`, `socks-port`, `port`, `listeners:`), bound by us and handed to each tun
    /// worker: kept across its restarts (connections wait in the backlog meanwhile) and rebound when they change.
    var inboundSockets: [InboundSocketKey: (tcp: OwnedDescriptor, udp: OwnedDescriptor?)] = [:]

    /// - Throws: ``SupervisorError`` when the service account is missing or the runtime
    ///   directory cannot be prepared.
    package init(options: SupervisorOptions, configuration: SluiceConfiguration) throws {
        self.options = options
        self.configuration = configuration
        self.grantable = (try? Capability.current())?.permitted ?? 0
        if geteuid() == 0 {
            let user = configuration.supervisor.user
            guard let account = ServiceAccount.lookup(user) else {
                throw SupervisorError(
                    "supervisor.user: the user \"\(user)\" does not exist. Create it with "
                        + "`useradd --system --no-create-home --shell /usr/sbin/nologin \(user)` "
                        + "(or install units/sluice.sysusers.conf and run `systemd-sysusers`), "
                        + "or set supervisor.user to an existing unprivileged user.")
            }
            self.account = account
            if let groupName = configuration.supervisor.group {
                guard let gid = ServiceAccount.groupID(groupName) else {
                    throw SupervisorError(
                        "supervisor.group: the group \"\(groupName)\" does not exist; create it or remove the key")
                }
                self.controlGroup = gid
            } else {
                self.controlGroup = account.gid
            }
        } else {
            self.account = nil
            self.controlGroup = nil
        }
        for kind in WorkerKind.allCases {
            slots[kind] = WorkerSlot(kind: kind, schedule: Self.schedule(configuration.supervisor.restart))
        }
    }

    static func schedule(_ settings: SluiceConfig.RestartPolicy) -> RestartSchedule {
        RestartSchedule(
            minimumDelay: settings.minDelay, maximumDelay: settings.maxDelay, maxRestarts: settings.maxRestarts,
            window: settings.window, stableAfter: settings.stableAfter)
    }

    var heartbeatInterval: UInt64 { max(10_000_000, configuration.supervisor.heartbeatInterval.nanoseconds) }
    var heartbeatTimeout: UInt64 { max(heartbeatInterval, configuration.supervisor.heartbeatTimeout.nanoseconds) }
    /// How long a fresh worker may take to become ready.
    var startTimeout: UInt64 { max(heartbeatTimeout, 30_000_000_000) }
    var stopGrace: UInt64 { configuration.supervisor.stopTimeout.nanoseconds }

    // MARK: Running

    /// Runs until stopped. Returns the process exit code: 0 after SIGTERM/SIGINT, 1 after
    /// giving up on a worker.
    package func run() -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        do {
            signalPipe = try SignalPipe.install([SIGTERM, SIGINT, SIGHUP, SIGCHLD])
            try prepareDirectories()
            // Non-blocking: the loop must never wait in accept() for a client that connected and went.
            listener = try UnixSocket.listen(path: options.controlSocketPath, mode: 0o660, nonBlocking: true)
            if let controlGroup { chown(options.controlSocketPath, uid_t.max, controlGroup) }
        } catch {
            logger.critical("cannot start: \(error)")
            notifier.status("failed to start: \(error)")
            return 1
        }
        announcePrivileges()
        if configuration.tun.enable { openICMPSockets() }
        updateController(old: nil)
        logger.info(
            "sluiced \(SluiceVersion.string) started (pid \(getpid())), config \(options.configPath), control socket \(options.controlSocketPath)"
        )
        for kind in WorkerKind.allCases {
            let slot = slots[kind]!
            slot.enabled = kind.isEnabled(in: configuration)
            if slot.enabled { spawn(slot) }
        }
        publishStatus()
        checkAllReady()
        let now = MonotonicClock.now
        nextHeartbeatAt = now + heartbeatInterval
        nextWatchdogAt = now
        loop()
        sleepInhibitor.release()
        controller?.stop()
        controller = nil
        unlink(options.controlSocketPath)
        logger.info("sluiced exiting with status \(exitCode)")
        return exitCode
    }

    private func loop() {
        while true {
            if case .stopping = phase, slots.values.allSatisfy({ !$0.isRunning }) { return }
            runTimers()
            if case .stopping = phase, slots.values.allSatisfy({ !$0.isRunning }) { return }
            pollOnce(timeoutMilliseconds: nextTimeoutMilliseconds())
        }
    }

    /// Milliseconds until the earliest timer, at most 1 s.
    private func nextTimeoutMilliseconds() -> Int32 {
        let now = MonotonicClock.now
        var deadline = now + 1_000_000_000
        deadline = min(deadline, nextHeartbeatAt)
        if notifier.watchdogInterval != nil { deadline = min(deadline, nextWatchdogAt) }
        for slot in slots.values {
            if case .backoff(let until) = slot.state { deadline = min(deadline, until) }
        }
        if case .stopping(let killAt) = phase { deadline = min(deadline, killAt) }
        if deadline <= now { return 0 }
        return Int32(min(1000, (deadline - now + 999_999) / 1_000_000))
    }

    private enum Source {
        case signals
        case listener
        case channel(WorkerSlot)
        case log(WorkerSlot)
        case client(ControlClient)
        case mailbox
    }

    private func pollOnce(timeoutMilliseconds: Int32) {
        var fds: [pollfd] = []
        var sources: [Source] = []
        func add(_ fd: CInt, _ source: Source) {
            guard fd >= 0 else { return }
            fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
            sources.append(source)
        }
        if let signalPipe { add(signalPipe.rawValue, .signals) }
        if let listener, phase == .running { add(listener.rawValue, .listener) }
        for slot in slots.values {
            if let channel = slot.channel { add(channel.rawDescriptor, .channel(slot)) }
            if let logPipe = slot.logPipe { add(logPipe.rawValue, .log(slot)) }
        }
        for client in clients { add(client.channel.rawDescriptor, .client(client)) }
        if let controller { add(controller.mailbox.descriptor, .mailbox) }
        let n = poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        guard n > 0 else { return }
        for (i, pfd) in fds.enumerated() where pfd.revents != 0 {
            switch sources[i] {
            case .signals: handleSignals()
            case .listener: acceptClients()
            case .channel(let slot): drainChannel(slot)
            case .log(let slot): drainLog(slot)
            case .client(let client): serveClient(client)
            case .mailbox: controller?.mailbox.run(with: self)
            }
        }
    }

    private func runTimers() {
        let now = MonotonicClock.now
        expireClients(now: now)
        for slot in slots.values {
            if case .backoff(let until) = slot.state, now >= until, phase == .running { spawn(slot) }
        }
        if now >= nextProviderCheckAt {
            nextProviderCheckAt = now + 1_000_000_000
            fetchDueProviders(now: now)
        }
        if now >= nextHeartbeatAt {
            nextHeartbeatAt = now + heartbeatInterval
            for slot in slots.values where slot.isRunning { heartbeat(slot, now: now) }
        }
        if let interval = notifier.watchdogInterval, now >= nextWatchdogAt {
            // Half the period systemd asked for; only while every worker answers.
            if let sick = slots.values.first(where: { !isHealthy($0, now: now) }) {
                logger.debug("withholding WATCHDOG=1: \(sick.kind.identifier) is not answering heartbeats")
                nextWatchdogAt = now + 100_000_000
            } else {
                notifier.watchdog()
                nextWatchdogAt = now + interval.nanoseconds / 2
            }
        }
        if case .stopping(let killAt) = phase, now >= killAt {
            for slot in slots.values where slot.isRunning {
                logger.warning("\(slot.kind.identifier) (pid \(slot.pid)) did not stop in time; sending SIGKILL")
                ProcessSpawner.signal(slot.pid, SIGKILL)
            }
            phase = .stopping(killAt: UInt64.max)
        }
    }

    /// A worker is healthy when it answers heartbeats promptly, or is legitimately not
    /// running (off, stopped, waiting out a restart delay the supervisor controls).
    func isHealthy(_ slot: WorkerSlot, now: UInt64) -> Bool {
        guard slot.isRunning else { return true }
        if !slot.handshaken { return MonotonicClock.elapsed(from: slot.spawnedAt, to: now) < heartbeatTimeout }
        guard let oldest = slot.oldestOutstandingHeartbeat else { return true }
        return MonotonicClock.elapsed(from: oldest, to: now) <= heartbeatInterval + 500_000_000
    }

    private func heartbeat(_ slot: WorkerSlot, now: UInt64) {
        if !slot.handshaken {
            if MonotonicClock.elapsed(from: slot.spawnedAt, to: now) > heartbeatTimeout {
                kill(slot, reason: "no handshake within \(Duration(nanoseconds: heartbeatTimeout).humanReadable)")
            }
            return
        }
        if let oldest = slot.oldestOutstandingHeartbeat,
            MonotonicClock.elapsed(from: oldest, to: now) > heartbeatTimeout
        {
            kill(slot, reason: "heartbeat timeout")
            return
        }
        if slot.state == .starting, MonotonicClock.elapsed(from: slot.spawnedAt, to: now) > startTimeout {
            kill(slot, reason: "not ready within \(Duration(nanoseconds: startTimeout).humanReadable)")
            return
        }
        slot.heartbeatSequence += 1
        slot.outstandingHeartbeats[slot.heartbeatSequence] = now
        send(.heartbeat(Heartbeat(sequence: slot.heartbeatSequence, timestamp: now)), to: slot, purpose: .heartbeat)
        // Stats ride along with every heartbeat: `sluiced status` is at most one interval old.
        send(.statsRequest, to: slot, purpose: .stats)
        if slot.kind == .tun { send(.groupStatusRequest, to: slot, purpose: .groups) }
        if slot.kind == .keepalive, !configuration.wireguard.isEmpty {
            send(.linkStatusRequest, to: slot, purpose: .links)
        }
    }

    // MARK: Signals

    private func handleSignals() {
        guard let fd = signalPipe?.rawValue else { return }
        for sig in SignalPipe.drain(fd) {
            switch sig {
            case SIGCHLD: reapChildren()
            case SIGHUP: reload()
            case SIGTERM, SIGINT:
                if case .running = phase {
                    beginStop(reason: sig == SIGTERM ? "SIGTERM" : "SIGINT", exitCode: 0)
                } else {
                    logger.info(
                        "\(sig == SIGTERM ? "SIGTERM" : "SIGINT") again while stopping; killing the workers now")
                    for slot in slots.values where slot.isRunning { ProcessSpawner.signal(slot.pid, SIGKILL) }
                }
            default: break
            }
        }
    }

    /// Stops every worker in order, then the loop ends with `exitCode`.
    func beginStop(reason: String, exitCode: Int32) {
        guard phase == .running else { return }
        self.exitCode = exitCode
        logger.notice(
            "stopping (\(reason)): asking the workers to shut down within \(Duration(nanoseconds: stopGrace).humanReadable)"
        )
        notifier.stopping(status: exitCode == 0 ? "stopping (\(reason))" : reason)
        phase = .stopping(killAt: MonotonicClock.now + stopGrace)
        let grace = UInt32(min(UInt64(UInt32.max), stopGrace / 1_000_000))
        for kind in WorkerKind.stopOrder {
            let slot = slots[kind]!
            switch slot.state {
            case .backoff, .off:
                slot.state = slot.enabled ? .stopped : .off
            default:
                guard slot.isRunning else { continue }
                slot.state = .stopping
                if slot.channel != nil {
                    send(.shutdown(Shutdown(graceMilliseconds: grace, reason: reason)), to: slot, purpose: nil)
                } else {
                    ProcessSpawner.signal(slot.pid, SIGTERM)
                }
            }
        }
        listener?.close()
        listener = nil
    }

    // MARK: Status

    /// `tun ready, dns ready (1 restart), keepalive off`, then each problem a worker reports:
    /// `…; PROBLEM dns: cannot open the fake-ip store …`.
    func statusLine() -> String {
        let workers = WorkerKind.allCases.map { kind in
            let slot = slots[kind]!
            var text = "\(kind.rawValue) \(slot.enabled ? slot.state.name : "off")"
            if slot.restarts > 0 { text += " (\(slot.restarts) restart\(slot.restarts == 1 ? "" : "s"))" }
            return text
        }.joined(separator: ", ")
        let problems = WorkerKind.allCases.flatMap { kind in
            slots[kind]!.problems.map { "PROBLEM \(kind.rawValue): \($0)" }
        }
        return ([workers] + problems).joined(separator: "; ")
    }

    func publishStatus() {
        let line = statusLine()
        guard line != lastStatus else { return }
        lastStatus = line
        notifier.status(line)
    }

    /// READY=1 once every enabled worker is ready (first time only; reloads send their own).
    func checkAllReady() {
        guard !readyNotified, phase == .running else { return }
        guard slots.values.allSatisfy({ !$0.enabled || $0.state == .ready }) else { return }
        readyNotified = true
        let line = statusLine()
        lastStatus = line
        notifier.ready(status: line)
        logger.info("all workers ready: \(line)")
    }

    func statusDocument() -> SupervisorStatus {
        let now = MonotonicClock.now
        let workers = WorkerKind.allCases.map { kind -> SupervisorStatus.Worker in
            let slot = slots[kind]!
            let exit = slot.lastExit.map { last in
                SupervisorStatus.Exit(
                    code: last.exit.code, signal: last.exit.signal, signalName: last.exit.signal.map(signalName),
                    reason: last.reason, secondsAgo: Double(MonotonicClock.elapsed(from: last.at, to: now)) / 1e9)
            }
            return SupervisorStatus.Worker(
                name: kind.rawValue, enabled: slot.enabled, state: slot.enabled ? slot.state.name : "off",
                pid: slot.isRunning ? slot.pid : nil,
                uptimeSeconds: slot.isRunning
                    ? Double(MonotonicClock.elapsed(from: slot.spawnedAt, to: now)) / 1e9 : nil,
                restarts: slot.restarts,
                lastExit: exit, detail: slot.detail,
                heartbeatLatencyMilliseconds: slot.heartbeatLatency.map { Double($0) / 1e6 }, stats: slot.stats,
                problems: slot.problems)
        }
        return SupervisorStatus(
            pid: getpid(), version: SluiceVersion.string,
            uptimeSeconds: Double(MonotonicClock.elapsed(from: startedAt, to: now)) / 1e9,
            configPath: options.configPath, generation: generation, summary: statusLine(), workers: workers,
            groups: slots[.tun]?.groups ?? [], links: slots[.keepalive]?.links ?? [])
    }

    // MARK: Set-up

    private func prepareDirectories() throws {
        for (path, mode) in [(options.runtimeDirectory, 0o755), (options.stateDirectory, 0o750)] {
            do {
                // Parents as needed (mkdir -p); the directory itself gets its mode.
                try FileManager.default.createDirectory(
                    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: mode])
            } catch {
                throw SupervisorError(
                    "cannot create \(path): \(error.localizedDescription); create it or pass another directory")
            }
        }
        // The workers keep their state here as the service user: the directory and everything in it is theirs,
        // whatever systemd's StateDirectory= or an older version left (StateOwnership).
        if let account { repairStateOwnership(account) }
        prepareWireGuardDirectory()
    }

    private func repairStateOwnership(_ account: ServiceAccount) {
        let directory = options.stateDirectory
        let report = StateOwnership.repair(directory, uid: account.uid, gid: account.gid)
        if !report.repaired.isEmpty {
            logger.notice(
                "state directory \(directory): gave \(report.repaired.joined(separator: ", ")) back to \(account.name) (systemd's StateDirectory= hands it to root at every start of a unit without User=)"
            )
        }
        for skipped in report.skipped { logger.warning("state directory \(directory): left \(skipped) as it is") }
        if let failure = report.failure {
            logger.error(
                "state directory \(directory): \(failure); the workers may not be able to keep their state there")
        }
    }

    /// `keepalive.inhibit-sleep`: holds logind's sleep inhibitor while the keepalive worker reports a link up.
    /// Called when a link report arrives and on reload (not when the worker restarts: its links stay up).
    func updateSleepInhibitor() {
        let up = slots[.keepalive]?.links.filter(\.up).map(\.name) ?? []
        let wanted = configuration.keepalive.inhibitSleep && !configuration.wireguard.isEmpty && !up.isEmpty
        sleepInhibitor.update(
            wanted: wanted, why: "WireGuard \(up.joined(separator: ", ")) up: peers reach this machine through it",
            now: MonotonicClock.now, logger: logger)
    }

    /// wireguard-go, run by the keepalive worker as the service user, puts its UAPI sockets in /run/wireguard; the
    /// user must own it. Done at start and on every reload that (still) has links, so links added later work too.
    func prepareWireGuardDirectory() {
        guard let account, !configuration.wireguard.isEmpty else { return }
        let path = "/run/wireguard"
        try? FileManager.default.createDirectory(
            atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        if chown(path, account.uid, account.gid) != 0 {
            logger.warning(
                "cannot hand \(path) to \(account.name): \(String(cString: strerror(errno))); wireguard-go links will not start"
            )
        }
    }

    private func announcePrivileges() {
        if let account {
            logger.info(
                "workers run as \(account.name) (uid \(account.uid)); tun: CAP_NET_ADMIN only, dns: no capabilities")
            return
        }
        let missing = WorkerKind.allCases.filter {
            $0.capabilities & ~grantable != 0 && $0.isEnabled(in: configuration)
        }
        if missing.isEmpty {
            logger.notice(
                "started unprivileged (uid \(getuid())): workers run as this user with the capabilities sluiced holds")
        } else {
            logger.warning(
                "started unprivileged (uid \(getuid())) without CAP_NET_ADMIN: \(missing.map(\.identifier).joined(separator: ", ")) run without it, so the tun worker can only attach to a pre-created TUN device owned by this user (ip tuntap add mode tun user \(getuid()) name DEV), and auto-route and WireGuard links are off. Start sluiced as root for the full feature set."
            )
        }
    }

    /// Opens the raw ICMP sockets the tun worker forwards pings with. Without CAP_NET_RAW
    /// they cannot be had; the tun worker then says that pings go unanswered.
    func openICMPSockets() {
        guard icmpSockets.v4 == nil && icmpSockets.v6 == nil else { return }
        icmpSockets.v4 = try? InetSocket.make(
            family: AF_INET, type: CInt(SOCK_RAW.rawValue), protocol: CInt(IPPROTO_ICMP), nonBlocking: true)
        icmpSockets.v6 = try? InetSocket.make(
            family: AF_INET6, type: CInt(SOCK_RAW.rawValue), protocol: CInt(IPPROTO_ICMPV6), nonBlocking: true)
        if icmpSockets.v4 == nil {
            logger.warning(
                "cannot open a raw ICMP socket (needs CAP_NET_RAW): pings through the TUN will go unanswered")
        }
    }

    /// The `dns.listen` sockets, bound here so that port 53 needs no capability in the dns
    /// worker; kept across its restarts (queries wait in the socket buffer meanwhile) and
    /// rebound when the address changes.
    func dnsListenSockets() -> (udp: OwnedDescriptor?, tcp: OwnedDescriptor?) {
        let dns = configuration.dns
        guard dns.enable, let listen = dns.listen, case .address(let ip) = listen.host else {
            dnsListen = nil
            return (nil, nil)
        }
        let endpoint = InetEndpoint(ip, listen.port)
        if let current = dnsListen, current.endpoint == endpoint { return (current.udp, current.tcp) }
        dnsListen = nil
        do {
            let (udp, tcp) = try InetSocket.serverPair(endpoint)
            dnsListen = (endpoint, udp, tcp)
            logger.info("dns.listen: bound \(endpoint) (UDP and TCP) for the dns worker")
            return (udp, tcp)
        } catch {
            logger.error(
                "dns.listen: cannot bind \(endpoint): \(error); is another DNS server (systemd-resolved, dnsmasq) on that port? Change dns.listen or stop it."
            )
            return (nil, nil)
        }
    }

    /// The sockets of `inbound.listeners`, in their order (nil where one cannot be bound: said in the log, and that
    /// port stays closed). Sockets of listeners no longer configured are closed.
    func localProxySockets() -> [(tcp: OwnedDescriptor, udp: OwnedDescriptor?)?] {
        let listeners = configuration.inbound.listeners
        var kept: [InboundSocketKey: (tcp: OwnedDescriptor, udp: OwnedDescriptor?)] = [:]
        var result: [(tcp: OwnedDescriptor, udp: OwnedDescriptor?)?] = []
        for listener in listeners {
            let key = InboundSocketKey(address: listener.address, port: listener.port, udp: listener.udp)
            if let current = kept[key] ?? inboundSockets.removeValue(forKey: key) {
                kept[key] = current
                result.append(current)
                continue
            }
            let endpoint = InetEndpoint(listener.address, listener.port)
            do {
                let (udp, tcp) = try InetSocket.serverPair(endpoint, backlog: 1024)
                let sockets = (tcp: tcp, udp: listener.udp ? Optional(udp) : nil)
                if !listener.udp { udp.close() }
                kept[key] = sockets
                result.append(sockets)
                let bound = (try? InetSocket.address(tcp.rawValue)).map(\.description) ?? endpoint.description
                logger.info(
                    "\(listener.name): bound \(bound) (\(listener.kind.rawValue)\(listener.udp ? ", TCP and UDP" : ", TCP")) for the tun worker"
                )
            } catch {
                logger.error(
                    "\(listener.name): cannot bind \(endpoint): \(error); this local proxy port stays closed. Is another program (another proxy) on that port? Change the port or stop it."
                )
                result.append(nil)
            }
        }
        for (_, old) in inboundSockets {
            old.tcp.close()
            old.udp?.close()
        }
        inboundSockets = kept
        return result
    }

    /// UDP sockets for the dns worker's upstream queries, one per family, carrying
    /// `tun.routing-mark` (setting it takes CAP_NET_ADMIN, which the dns worker lacks) so
    /// that they leave around the TUN. Empty when the mark cannot be set or is not wanted.
    func dnsUpstreamSockets() -> [OwnedDescriptor] {
        let mark = configuration.tun.routingMark
        guard configuration.dns.enable, configuration.tun.enable, configuration.tun.autoRoute, mark != 0 else {
            return []
        }
        var sockets: [OwnedDescriptor] = []
        for family in [AF_INET, AF_INET6] {
            guard let socket = try? InetSocket.udp(family) else { continue }
            do {
                try InetSocket.setMark(socket.rawValue, mark)
                InetSocket.enlargeReceiveBuffer(socket.rawValue)
                let any: IPAddress = family == AF_INET ? .v4(IPv4Address(rawValue: 0)) : .v6(.any)
                try InetSocket.bind(socket.rawValue, InetEndpoint(any, 0))
                sockets.append(socket)
            } catch {
                socket.close()
            }
        }
        return sockets
    }

    func nextID() -> UInt32 {
        defer { nextRequestID = nextRequestID == UInt32.max ? 1 : nextRequestID + 1 }
        return nextRequestID
    }
}

/// Which sockets a local proxy port needs: the same key keeps its sockets across worker restarts and reloads.
struct InboundSocketKey: Hashable {
    var address: IPAddress
    var port: UInt16
    var udp: Bool
}

/// A supervisor failure that stops `sluiced run`, with what to do about it.
package struct SupervisorError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}
