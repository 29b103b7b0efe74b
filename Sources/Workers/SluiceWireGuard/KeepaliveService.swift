import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluiceSystem
import Synchronization
import WorkerRuntime

/// The keepalive worker's job: the `wireguard:` links, brought up with wireguard-go, kept up, and reported.
///
/// `apply` only records the wanted links; one thread (the keeper) does all the work: it starts or adopts each
/// link's wireguard-go, configures it over UAPI and rtnetlink, checks every child a few times a second and every
/// peer each `keepalive.interval`, restarts a dead wireguard-go (at once, then with backoff when it keeps dying)
/// and re-applies the configuration, and takes links down on shutdown. A worker killed outright leaves its links
/// up; the next one adopts them by their UAPI sockets.
package final class KeepaliveService: WorkerService, @unchecked Sendable {
    /// What `apply` hands the keeper: the links with their private keys read, and a version to notice changes.
    private struct Wanted {
        var links: [(link: WireGuardLink, privateKey: [UInt8])] = []
        var interval: Duration = .seconds(5)
        var thresholds = PeerLiveness.Thresholds()
        var logLevel: String = "error"
        var backend: KeepaliveConfiguration.Backend = .auto
        var version = 0
        var stopping = false
    }

    private let wanted = Locked(Wanted())
    private let published = Locked<(entries: [StatsReport.Entry], summary: String, links: [WireGuardLinkState])>(
        ([], "no links", []))
    private let logger = Logger(label: "sluice-keepalive")
    private var keeper: OSThread?
    private let stopped = Atomic<Bool>(false)
    private let environment = ProcessInfo.processInfo.environment
    /// sluiced, which opens `/dev/net/tun` for wireguard-go's TUN (the service user may not). Set once, before the
    /// first configuration starts the keeper; nil when the service runs without sluiced (it opens the node itself).
    private var supervisor: SupervisorLink?

    package init() {}

    // MARK: WorkerService

    package func apply(_ configuration: SluiceConfiguration, generation: UInt64) -> (ConfigResult.Outcome, String) {
        var links: [(link: WireGuardLink, privateKey: [UInt8])] = []
        for (position, configured) in configuration.wireguard.enumerated() {
            // The link's UDP carries a mark auto-route sends around the TUN (tun.routing-mark by default).
            var link = configured
            link.fwmark = configuration.effectiveFwmark(of: configured)
            link.fwmark = LinkRouting.defaultRouteMark(for: link)
            switch link.privateKey {
            case .key(let key): links.append((link, key.bytes))
            case .file(let path):
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                    return (
                        .rejected,
                        "wireguard[\(position)](\(link.name)).private-key-file: cannot read \(path) as \(NSUserName())"
                    )
                }
                guard let key = WireGuardKey(base64: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                    return (
                        .rejected,
                        "wireguard[\(position)](\(link.name)).private-key-file: \(path) does not hold a base64 WireGuard key"
                    )
                }
                links.append((link, key.bytes))
            }
        }
        let backend = configuration.keepalive.backend
        if !links.isEmpty {
            let kernel = backend == .wireguardGo ? false : KernelWireGuard.isAvailable()
            if backend == .kernel, !kernel {
                return (
                    .rejected,
                    "keepalive.backend is kernel, but this kernel has no wireguard module (modprobe wireguard failed or is not allowed); use backend: auto or wireguard-go"
                )
            }
            if !kernel, WireGuardGo.executable(environment: environment) == nil {
                return (
                    .rejected,
                    "wireguard: no wireguard kernel module and wireguard-go not found (apt-get install wireguard-go, or set SLUICE_WIREGUARD_GO)"
                )
            }
        }
        let level =
            switch configuration.logLevel {
            case .debug: "verbose"
            case .silent: "silent"
            default: "error"
            }
        wanted.withLock {
            $0.links = links
            $0.interval = configuration.keepalive.interval
            $0.thresholds = .init(
                handshakeTimeout: configuration.keepalive.handshakeTimeout.nanoseconds,
                rxTimeout: configuration.keepalive.rxTimeout.nanoseconds)
            $0.logLevel = level
            $0.backend = backend
            $0.version += 1
        }
        if keeper == nil {
            do {
                keeper = try OSThread.start(name: "wg-keeper") { [self] in keep() }
            } catch {
                return (.rejected, "cannot start the keeper thread: \(error)")
            }
        }
        return (.applied, summary(links.map(\.link.name)))
    }

    package var readyDetail: String { published.withLock { $0.summary } }

    package var isHealthy: Bool { !(keeper?.hasExited ?? false) || stopped.load(ordering: .relaxed) }

    package func stats() -> [StatsReport.Entry] { published.withLock { $0.entries } }

    package func peerConnected(_ peer: PeerChannel, channel: FrameChannel) { channel.close() }

    package func connected(to supervisor: SupervisorLink) { self.supervisor = supervisor }

    /// The links' state for `sluiced status`.
    package func answer(_ request: Message) -> Message? {
        guard case .linkStatusRequest = request else { return nil }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let document = (try? encoder.encode(published.withLock { $0.links })) ?? Data("[]".utf8)
        return .linkStatus(document: Array(document))
    }

    package func shutdown(graceMilliseconds: UInt32) {
        wanted.withLock { $0.stopping = true }
        keeper?.join()
        keeper = nil
    }

    private func summary(_ names: [String]) -> String {
        names.isEmpty ? "no WireGuard links" : "WireGuard \(names.joined(separator: ", "))"
    }

    // MARK: The keeper thread

    /// One link as the keeper tracks it.
    private struct LinkState {
        var link: WireGuardLink
        var privateKey: [UInt8]
        /// Chosen when the link first comes up (``chooseBackend``), kept until it is taken down.
        var backend: Backend?
        /// The wireguard-go process (userspace backend).
        var pid: pid_t?
        /// The kernel interface exists and is ours (kernel backend).
        var kernelDevice = false
        /// Started by this worker (so reaped with waitpid) rather than adopted.
        var ownChild = false
        var adopted = false
        var fresh = true
        var needsConfigure = true
        var configured = false
        var restarts = 0
        var failures = 0
        var startedAt: UInt64 = 0
        var nextAttempt: UInt64 = 0
        var lastStatusAt: UInt64 = 0
        var status: WireGuardUAPI.DeviceStatus?
        /// When the configuration was last applied, and each name-endpoint peer's liveness since then.
        var configuredAt: UInt64 = 0
        var liveness: [[UInt8]: PeerLiveness] = [:]
        /// Endpoint changes after re-resolution, per peer public key.
        var endpointChanges: [[UInt8]: Int] = [:]
        /// A link event named the link: look whether someone else deleted it or set it down.
        var checkLink = false

        /// The device exists and is ours: wireguard-go runs, or the kernel interface is there.
        var hasDevice: Bool { backend == .kernel ? kernelDevice : pid != nil }

        var control: any WireGuardControl { (backend ?? .wireguardGo).control }
    }

    /// What runs a link's device.
    private enum Backend {
        case wireguardGo, kernel

        var control: any WireGuardControl {
            switch self {
            case .wireguardGo: UAPIControl()
            case .kernel: KernelControl()
            }
        }
    }

    private var links: [String: LinkState] = [:]
    private var seenVersion = 0
    /// The framing the wireguard-go executable expects of its TUN descriptor, by path and modification time.
    private var framing: (executable: String, modified: Int, framing: WireGuardGo.TunFraming)?
    private var configuredBackend: KeepaliveConfiguration.Backend = .auto

    private func keep() {
        let netlink: RouteNetlink
        do {
            netlink = try RouteNetlink()
        } catch {
            logger.error("rtnetlink: \(error); WireGuard links cannot be managed")
            return
        }
        // Link events make a deleted or downed link noticed at once; without them the status check every
        // interval still notices it.
        let monitor: RouteMonitor?
        do {
            monitor = try RouteMonitor(groups: .link)
        } catch {
            logger.warning(
                "rtnetlink link events: \(error); a deleted link is noticed every keepalive.interval instead")
            monitor = nil
        }
        while true {
            let w = wanted.withLock { $0 }
            if w.stopping {
                for name in links.keys.sorted() { takeDown(name, netlink: netlink) }
                links = [:]
                publish(interval: w.interval)
                stopped.store(true, ordering: .relaxed)
                return
            }
            if w.version != seenVersion {
                seenVersion = w.version
                reconcile(w, netlink: netlink)
            }
            let now = MonotonicClock.now
            for name in links.keys.sorted() {
                tend(
                    name, now: now, interval: w.interval, thresholds: w.thresholds, logLevel: w.logLevel,
                    netlink: netlink)
            }
            publish(interval: w.interval)
            if let monitor {
                var poller = pollfd(fd: monitor.descriptor, events: Int16(POLLIN), revents: 0)
                if poll(&poller, 1, 200) > 0 { linkEvents(monitor.drain()) }
            } else {
                usleep(200_000)
            }
        }
    }

    /// Has the links that events name checked by ``tend``. Events are only a hint: they queue up while the keeper
    /// creates and configures a link, so the link's state is looked up when the check runs.
    private func linkEvents(_ events: [RouteEvent]) {
        for event in events {
            guard case .link(let info, _) = event, links[info.name]?.configured == true else { continue }
            links[info.name]?.checkLink = true
        }
    }

    private func reconcile(_ w: Wanted, netlink: RouteNetlink) {
        configuredBackend = w.backend
        // A link whose backend no longer fits keepalive.backend is taken down and brought up anew.
        for name in links.keys.sorted() {
            guard let running = links[name]?.backend else { continue }
            let fits =
                switch w.backend {
                case .auto: true
                case .kernel: running == .kernel
                case .wireguardGo: running == .wireguardGo
                }
            if !fits {
                logger.info(
                    "\(name): keepalive.backend is now \(w.backend.rawValue); bringing the link up again with it")
                takeDown(name, netlink: netlink)
                links[name] = nil
            }
        }
        let names = Set(w.links.map(\.link.name))
        for name in links.keys.sorted() where !names.contains(name) {
            logger.info("\(name): no longer configured; taking it down")
            takeDown(name, netlink: netlink)
            links[name] = nil
        }
        for (link, key) in w.links {
            if var state = links[link.name] {
                if state.link != link || state.privateKey != key {
                    state.link = link
                    state.privateKey = key
                    state.needsConfigure = true
                    links[link.name] = state
                    logger.info("\(link.name): configuration changed; re-applying")
                }
            } else {
                links[link.name] = LinkState(link: link, privateKey: key)
            }
        }
    }

    private func tend(
        _ name: String, now: UInt64, interval: Duration, thresholds: PeerLiveness.Thresholds, logLevel: String,
        netlink: RouteNetlink
    ) {
        guard var state = links[name] else { return }
        defer { links[name] = state }
        if state.checkLink {
            state.checkLink = false
            switch Result(catching: { try netlink.link(named: name) }) {
            case .success(nil):
                logger.notice("\(name): the link was deleted (not by sluice); bringing it up again")
                recreate(&state, now: now)
            case .success(let info?) where !info.isUp:
                logger.notice("\(name): the link was set down (not by sluice); bringing it up again")
                state.needsConfigure = true
            default:
                break
            }
        }
        // Liveness of the process.
        if let pid = state.pid {
            var exit: ProcessSpawner.Exit?
            let dead: Bool
            if state.ownChild {
                exit = ProcessSpawner.wait(for: pid, blocking: false)
                dead = exit != nil
            } else {
                dead = !WireGuardGo.isAlive(pid)
            }
            if dead {
                let how =
                    exit.map { e in
                        e.signal.map { "was killed by signal \($0)" } ?? "exited with status \(e.code ?? -1)"
                    } ?? "is gone"
                let ranFor = MonotonicClock.elapsed(from: state.startedAt, to: now)
                state.failures = ranFor < 10_000_000_000 ? state.failures + 1 : 0
                let delay = state.failures <= 1 ? 0 : min(30, 1 << min(state.failures - 1, 5))
                logger.error(
                    "\(name): wireguard-go (pid \(pid)) \(how); restarting it\(delay == 0 ? "" : " in \(delay) s")")
                state.pid = nil
                state.configured = false
                state.needsConfigure = true
                state.status = nil
                state.restarts += 1
                state.nextAttempt = now + UInt64(delay) * 1_000_000_000
            }
        }
        // Start or adopt.
        if !state.hasDevice, now >= state.nextAttempt {
            do {
                try bringUp(&state, logLevel: logLevel, netlink: netlink)
            } catch {
                state.failures += 1
                let delay = min(30, 1 << min(state.failures - 1, 5))
                logger.error("\(name): cannot start wireguard-go: \(error); next try in \(delay) s")
                state.nextAttempt = now + UInt64(delay) * 1_000_000_000
                return
            }
        }
        guard state.hasDevice else { return }
        // Configure.
        if state.needsConfigure {
            do {
                try configure(&state, netlink: netlink)
                state.needsConfigure = false
                state.configured = true
                state.lastStatusAt = 0
                state.configuredAt = now
                state.liveness = [:]
                let how = state.pid.map { "wireguard-go pid \($0)" } ?? "kernel"
                logger.info(
                    "\(name): up (\(state.link.peers.count) peer\(state.link.peers.count == 1 ? "" : "s"), \(how)\(state.adopted ? ", adopted" : ""))"
                )
            } catch {
                logger.error("\(name): configuring failed: \(error); retrying")
                state.configured = false
                return
            }
        }
        // Peers, every interval.
        let intervalNanos = interval.nanoseconds
        if state.lastStatusAt == 0 || MonotonicClock.elapsed(from: state.lastStatusAt, to: now) >= intervalNanos {
            state.lastStatusAt = now
            // A link deleted while the link events were missed.
            if state.configured, (try? netlink.link(named: name)) == .some(nil) {
                logger.notice("\(name): the link is gone (not deleted by sluice); bringing it up again")
                recreate(&state, now: now)
                return
            }
            do {
                state.status = try state.control.status(link: name)
                checkEndpoints(&state, now: now, thresholds: thresholds)
            } catch {
                logger.warning("\(name): reading the device's status (\(state.control.backendName)) failed: \(error)")
                state.status = nil
            }
        }
    }

    /// The device of a deleted link is gone with it: wireguard-go (which lost its TUN) is stopped, and the link is
    /// brought up anew right away, as after a crash, without backoff.
    private func recreate(_ state: inout LinkState, now: UInt64) {
        stopWireGuardGo(state, signal: SIGKILL)
        state.pid = nil
        state.kernelDevice = false
        state.fresh = false
        state.configured = false
        state.needsConfigure = true
        state.status = nil
        state.restarts += 1
        state.nextAttempt = now
    }

    /// Re-resolves the endpoint names of peers that look dead (``PeerLiveness``) and sets a changed address over UAPI.
    /// Names go through the system resolver (getaddrinfo: /etc/hosts, then DNS); the worker has no dns peer.
    private func checkEndpoints(_ state: inout LinkState, now: UInt64, thresholds: PeerLiveness.Thresholds) {
        guard let status = state.status else { return }
        let name = state.link.name
        let wallNow = Int64(Date().timeIntervalSince1970)
        for peer in state.link.peers {
            guard let configured = peer.endpoint, case .name(let host) = configured.host else { continue }
            let key = peer.publicKey.bytes
            guard let current = status.peers.first(where: { $0.publicKey == key }) else { continue }
            var liveness = state.liveness[key] ?? PeerLiveness(upSince: state.configuredAt, thresholds: thresholds)
            liveness.thresholds = thresholds
            let reason = liveness.observe(
                .init(
                    now: now, handshakeAge: current.handshakeAge(now: wallNow), rxBytes: current.rxBytes,
                    txBytes: current.txBytes))
            state.liveness[key] = liveness
            guard let reason else { continue }
            guard let resolved = Resolver.resolve(host, port: configured.port) else {
                logger.warning("\(name): peer \(host): \(reason); cannot resolve \(host)")
                continue
            }
            let text = WireGuardUAPI.endpointText(resolved)
            guard text != current.endpoint else {
                logger.debug("\(name): peer \(host): \(reason); \(host) still resolves to \(text)")
                continue
            }
            do {
                try state.control.setEndpoint(link: name, publicKey: key, endpoint: resolved)
                state.endpointChanges[key, default: 0] += 1
                logger.notice("\(name): peer \(host): \(reason); endpoint \(current.endpoint ?? "none") -> \(text)")
            } catch {
                logger.error("\(name): peer \(host): setting endpoint \(text) failed: \(error)")
            }
        }
    }

    private func bringUp(_ state: inout LinkState, logLevel: String, netlink: RouteNetlink) throws {
        if state.backend == nil { state.backend = try chooseBackend(link: state.link.name, netlink: netlink) }
        switch state.backend {
        case .kernel: try bringUpKernel(&state, netlink: netlink)
        default: try bringUpWireGuardGo(&state, logLevel: logLevel, netlink: netlink)
        }
    }

    /// `keepalive.backend`: with `auto`, a link that already runs keeps its backend (a kernel interface, or a TUN
    /// with its wireguard-go), otherwise the kernel module when it is there, otherwise wireguard-go.
    private func chooseBackend(link name: String, netlink: RouteNetlink) throws -> Backend {
        switch configuredBackend {
        case .wireguardGo: return .wireguardGo
        case .kernel: return .kernel
        case .auto:
            let existing = try netlink.link(named: name)
            if existing?.kind == "wireguard" { return .kernel }
            if existing?.kind == "tun" { return .wireguardGo }
            return KernelWireGuard.isAvailable() ? .kernel : .wireguardGo
        }
    }

    /// The kernel backend: adopts an existing kernel wireguard interface of the link's name (a worker restart, or
    /// one made by hand) or creates it (`ip link add NAME type wireguard`); the configuration follows.
    private func bringUpKernel(_ state: inout LinkState, netlink: RouteNetlink) throws {
        let name = state.link.name
        if let existing = try netlink.link(named: name) {
            guard existing.kind == "wireguard" else {
                throw SystemError(
                    "link \(name) exists and is \(existing.kind.map { "a \($0) device" } ?? "not a wireguard device"); delete it (ip link del \(name)) or rename the link in the config",
                    errno: EEXIST)
            }
            if state.fresh { logger.info("\(name): adopting the kernel wireguard interface") }
            state.adopted = state.fresh
        } else {
            try KernelWireGuard.createLink(name: name, netlink: netlink)
            state.adopted = false
        }
        state.fresh = false
        state.kernelDevice = true
        state.startedAt = MonotonicClock.now
        state.needsConfigure = true
    }

    /// Adopts a running wireguard-go for the link (its UAPI socket answers) or starts one and waits for its socket.
    private func bringUpWireGuardGo(_ state: inout LinkState, logLevel: String, netlink: RouteNetlink) throws {
        let name = state.link.name
        let path = WireGuardGo.socketPath(link: name)
        if state.fresh, (try? UAPIClient.status(path: path)) != nil, let pid = WireGuardGo.findProcess(link: name) {
            state.fresh = false
            state.pid = pid
            state.ownChild = false
            state.adopted = true
            state.startedAt = MonotonicClock.now
            state.needsConfigure = true
            logger.info("\(name): adopting the running wireguard-go (pid \(pid))")
            return
        }
        state.fresh = false
        if let stray = WireGuardGo.findProcess(link: name) {
            // Alive but not answering: end it so that the new one can take the name.
            logger.warning("\(name): wireguard-go pid \(stray) does not answer on \(path); stopping it")
            ProcessSpawner.signal(stray, SIGKILL)
            usleep(100_000)
        }
        guard let executable = WireGuardGo.executable(environment: environment) else {
            throw SystemError("wireguard-go not found", errno: ENOENT)
        }
        // The TUN: opened by sluiced (the device node may be mode 0600 root, which CAP_NET_ADMIN does not bypass),
        // attached here to the persistent device, and handed to wireguard-go as WG_TUN_FD. Our copy is closed once
        // wireguard-go has its own, so that the device is attached to wireguard-go alone.
        let tun = try supervisor?.openTunDevice() ?? WireGuardGo.openTunDevice()
        defer { tun.close() }
        if try WireGuardGo.attachPersistentTun(
            tun, link: name, framing: tunFraming(executable: executable), netlink: netlink)
        {
            logger.debug("\(name): created the persistent TUN device for wireguard-go")
        }
        let pid = try WireGuardGo.spawn(
            link: name, executable: executable, tun: tun.rawValue, capabilities: Capability.netAdmin.mask,
            logLevel: logLevel)
        state.pid = pid
        state.ownChild = true
        state.adopted = false
        state.startedAt = MonotonicClock.now
        state.needsConfigure = true
        let deadline = MonotonicClock.now + 5_000_000_000
        while MonotonicClock.now < deadline {
            if (try? UAPIClient.status(path: path)) != nil { return }
            if let exit = ProcessSpawner.wait(for: pid, blocking: false) {
                state.pid = nil
                throw SystemError(
                    "wireguard-go \(name) exited at start with status \(exit.status) (see the log above)", errno: ECHILD
                )
            }
            usleep(20_000)
        }
        ProcessSpawner.signal(pid, SIGKILL)
        _ = ProcessSpawner.wait(for: pid)
        state.pid = nil
        throw SystemError("wireguard-go \(name): no UAPI socket at \(path) within 5 s", errno: ETIMEDOUT)
    }

    /// How to attach the TUN for `executable` (``WireGuardGo/TunFraming``), from its `--version`; asked again when the
    /// file changes (an upgrade). A version it cannot read gets Debian's framing, with a warning.
    private func tunFraming(executable: String) -> WireGuardGo.TunFraming {
        var info = stat()
        let modified = stat(executable, &info) == 0 ? Int(info.st_mtim.tv_sec) : -1
        if let framing, framing.executable == executable, framing.modified == modified { return framing.framing }
        let chosen: WireGuardGo.TunFraming
        do {
            let line = try WireGuardGo.version(executable: executable)
            if let known = WireGuardGo.TunFraming(versionOutput: line) {
                chosen = known
                logger.info("\(executable): \(line); its TUN is attached with \(known)")
            } else {
                chosen = .packetInformation
                logger.warning(
                    "\(executable) --version printed \"\(line)\", not wireguard-go v0.0.YYYYMMDD; attaching its TUN with \(chosen), as wireguard-go up to 0.0.20230223 wants"
                )
            }
        } catch {
            chosen = .packetInformation
            logger.warning(
                "\(executable) --version: \(error); attaching its TUN with \(chosen), as wireguard-go up to 0.0.20230223 wants"
            )
        }
        framing = (executable, modified, chosen)
        return chosen
    }

    private func configure(_ state: inout LinkState, netlink: RouteNetlink) throws {
        let link = state.link
        var peers: [WireGuardUAPI.PeerSettings] = []
        for peer in link.peers {
            var endpoint: SocketEndpoint?
            if let configured = peer.endpoint {
                switch configured.host {
                case .address: endpoint = configured
                case .name(let host):
                    endpoint = Resolver.resolve(host, port: configured.port)
                    if endpoint == nil {
                        logger.warning("\(link.name): cannot resolve \(host); peer left without an endpoint")
                    }
                }
            }
            peers.append(
                .init(
                    publicKey: peer.publicKey.bytes,
                    presharedKey: peer.presharedKey?.bytes ?? [UInt8](repeating: 0, count: 32),
                    endpoint: endpoint, persistentKeepalive: peer.persistentKeepalive ?? 0, allowedIPs: peer.allowedIPs)
            )
        }
        let settings = WireGuardUAPI.DeviceSettings(
            privateKey: state.privateKey, listenPort: link.listenPort, fwmark: link.fwmark, peers: peers)
        // A device that already runs keeps the sessions of unchanged peers (wg syncconf); a new one gets all.
        let control = state.control
        let current = state.configured || state.adopted ? try? control.status(link: link.name) : nil
        if let current {
            let keep = Set(peers.map(\.publicKey))
            let remove = current.peers.map(\.publicKey).filter { !keep.contains($0) }
            try control.set(link: link.name, settings, replacePeers: false, removePeers: remove)
        } else {
            try control.set(link: link.name, settings, replacePeers: true, removePeers: [])
        }
        try LinkRouting.apply(link, netlink: netlink)
        if LinkRouting.defaultRouteFamilies(of: link).contains(.v4) {
            do {
                try LinkRouting.enableSourceValidMark()
            } catch {
                logger.warning(
                    "\(link.name): \(error); with a strict rp_filter the link's own UDP replies may be dropped (set net.ipv4.conf.all.src_valid_mark=1)"
                )
            }
        }
    }

    private func takeDown(_ name: String, netlink: RouteNetlink) {
        guard let state = links[name] else { return }
        if let info = try? netlink.link(named: name) {
            do { try netlink.deleteLink(index: info.index) } catch {
                logger.warning("\(name): deleting the link: \(error)")
            }
        }
        do { try LinkRouting.removeRules(link: name, netlink: netlink) } catch {
            logger.warning("\(name): removing its rules: \(error)")
        }
        if state.pid != nil {
            stopWireGuardGo(state, signal: SIGTERM)
        } else {
            unlink(WireGuardGo.socketPath(link: name))
        }
        logger.info("\(name): down")
    }

    /// Ends the link's wireguard-go with `signal` and waits up to 2 s: a child of ours is reaped (and killed if
    /// still there), an adopted one is watched in /proc. Its UAPI socket goes once it is gone (wireguard-go
    /// removes it on a clean exit, but not when it was killed).
    private func stopWireGuardGo(_ state: LinkState, signal: Int32) {
        guard let pid = state.pid else { return }
        ProcessSpawner.signal(pid, signal)
        let deadline = MonotonicClock.now + 2_000_000_000
        if state.ownChild {
            while MonotonicClock.now < deadline, ProcessSpawner.wait(for: pid, blocking: false) == nil {
                usleep(10_000)
            }
            if WireGuardGo.isAlive(pid) {
                ProcessSpawner.signal(pid, SIGKILL)
                _ = ProcessSpawner.wait(for: pid)
            }
        } else {
            while MonotonicClock.now < deadline, WireGuardGo.isAlive(pid) { usleep(10_000) }
        }
        if !WireGuardGo.isAlive(pid) { unlink(WireGuardGo.socketPath(link: state.link.name)) }
    }

    // MARK: Status

    /// A peer is `ok` when its last handshake is at most this old (WireGuard rekeys every 120 s).
    package static let staleAfterSeconds: Int64 = 135

    private func publish(interval: Duration) {
        var entries: [StatsReport.Entry] = [.init("wg.links", Int64(links.count))]
        var states: [WireGuardLinkState] = []
        let now = Int64(Date().timeIntervalSince1970)
        var upNames: [String] = []
        for name in links.keys.sorted() {
            let state = links[name]!
            let up = state.hasDevice && state.configured
            if up { upNames.append(name) }
            var peers: [WireGuardLinkState.Peer] = []
            var ok = 0
            var stale = 0
            var never = 0
            var newest: Int64 = -1
            var rx: UInt64 = 0
            var tx: UInt64 = 0
            for configured in state.link.peers {
                let key = configured.publicKey.bytes
                let current = state.status?.peers.first { $0.publicKey == key }
                let age = current?.handshakeAge(now: now)
                let verdict: String
                if let age {
                    verdict = age <= Self.staleAfterSeconds ? "ok" : "stale"
                    if age <= Self.staleAfterSeconds { ok += 1 } else { stale += 1 }
                    newest = newest < 0 ? age : min(newest, age)
                } else {
                    verdict = "never"
                    never += 1
                }
                rx += current?.rxBytes ?? 0
                tx += current?.txBytes ?? 0
                peers.append(
                    .init(
                        publicKey: configured.publicKey.description,
                        configuredEndpoint: configured.endpoint.map(WireGuardUAPI.endpointText),
                        endpoint: current?.endpoint, handshakeAgeSeconds: age, rxBytes: current?.rxBytes ?? 0,
                        txBytes: current?.txBytes ?? 0, state: verdict, endpointChanges: state.endpointChanges[key] ?? 0
                    ))
            }
            states.append(
                .init(
                    name: name, up: up, backend: state.control.backendName, pid: state.pid, restarts: state.restarts,
                    adopted: state.adopted, listenPort: state.status?.listenPort, peers: peers))
            let p = "wg.\(name)."
            entries.append(.init(p + "up", up ? 1 : 0))
            entries.append(.init(p + "pid", Int64(state.pid ?? 0)))
            entries.append(.init(p + "restarts", Int64(state.restarts)))
            entries.append(.init(p + "adopted", state.adopted ? 1 : 0))
            entries.append(.init(p + "peers", Int64(state.link.peers.count)))
            entries.append(.init(p + "peers.ok", Int64(ok)))
            entries.append(.init(p + "peers.stale", Int64(stale)))
            entries.append(.init(p + "peers.never", Int64(never)))
            entries.append(.init(p + "handshake.age.s", newest))
            entries.append(.init(p + "rx.bytes", Int64(clamping: rx)))
            entries.append(.init(p + "tx.bytes", Int64(clamping: tx)))
            entries.append(.init(p + "endpoint.changes", Int64(state.endpointChanges.values.reduce(0, +))))
        }
        let summary = links.isEmpty ? "no WireGuard links" : "WireGuard \(upNames.count)/\(links.count) up"
        published.withLock { $0 = (entries, summary, states) }
    }
}

/// Name resolution for peer endpoints (getaddrinfo; IPv4 preferred, as the first answer of a dual-stack name).
enum Resolver {
    static func resolve(_ host: String, port: UInt16) -> SocketEndpoint? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(first) }
        var candidates: [IPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            if info.pointee.ai_family == AF_INET {
                info.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var a = sin.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count))
                }
            } else if info.pointee.ai_family == AF_INET6 {
                info.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                    var a = sin.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count))
                }
            }
            if let address = IPAddress(String(cString: buffer)) { candidates.append(address) }
            cursor = info.pointee.ai_next
        }
        guard let chosen = candidates.first(where: \.isIPv4) ?? candidates.first else { return nil }
        return SocketEndpoint(address: chosen, port: port)
    }
}
