import CSystemd
import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceSystem
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

extension Supervisor {
    // MARK: Spawning

    func executablePath(_ kind: WorkerKind) -> String {
        options.executableOverrides[kind] ?? options.workerDirectory + "/" + kind.executableName
    }

    /// Starts `slot`'s worker: control socket pair, log stream, least privilege, then the
    /// hello and the first config push (pipelined; the worker reads them in order).
    func spawn(_ slot: WorkerSlot) {
        let kind = slot.kind
        slot.resetSession()
        let path = executablePath(kind)
        do {
            let (ours, theirs) = try UnixSocket.pair(.stream)
            let (logWriteEnd, logFormat) = try openLogSink(slot)
            defer { logWriteEnd.close() }
            var environment =
                [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                    "SLUICE_CONTROL_FD=3", "SLUICE_LOG_FORMAT=\(logFormat)",
                    "SLUICE_STATE_DIRECTORY=\(options.stateDirectory)",
                    "SLUICE_RUNTIME_DIRECTORY=\(options.runtimeDirectory)",
                ] + SpawnRequest.sanitizerEnvironment
            var descriptors: [CInt?] = [nil, logWriteEnd.rawValue, logWriteEnd.rawValue, theirs.rawValue]
            var tunClone: OwnedDescriptor?
            defer { tunClone?.close() }
            var upstreamSockets: [OwnedDescriptor] = []
            defer { for socket in upstreamSockets { socket.close() } }
            // Handed-over descriptors from fd 4 on, named in the environment.
            func handOver(_ fd: CInt?, _ variable: String) {
                guard let fd, fd >= 0 else { return }
                environment.append("\(variable)=\(descriptors.count)")
                descriptors.append(fd)
            }
            if kind == .dns {
                let listen = dnsListenSockets()
                handOver(listen.udp?.rawValue, "SLUICE_DNS_UDP_FD")
                handOver(listen.tcp?.rawValue, "SLUICE_DNS_TCP_FD")
                upstreamSockets = dnsUpstreamSockets()
                for socket in upstreamSockets {
                    let family = (try? InetSocket.address(socket.rawValue))?.address.isIPv4 ?? true
                    handOver(socket.rawValue, family ? "SLUICE_DNS_UPSTREAM4_FD" : "SLUICE_DNS_UPSTREAM6_FD")
                }
            }
            if kind == .tun {
                if let account { environment.append("SLUICE_SERVICE_UID=\(account.uid)") }
                handOver(icmpSockets.v4?.rawValue, "SLUICE_ICMP4_FD")
                handOver(icmpSockets.v6?.rawValue, "SLUICE_ICMP6_FD")
                handOver(configuration.tun.inheritedFileDescriptor, "SLUICE_TUN_FD")
                // The service user may not open the device node; a fresh clone descriptor
                // per spawn (each attaches to one device), attached by the worker itself.
                tunClone =
                    configuration.tun.enable && configuration.tun.inheritedFileDescriptor == nil
                    ? try? Descriptors.openTunClone() : nil
                handOver(tunClone?.rawValue, "SLUICE_TUN_CLONE_FD")
                // The local proxy ports, one TCP[:UDP] pair of descriptor numbers per listener, in order ("-": unbound).
                let inbound = localProxySockets().map { sockets -> String in
                    guard let sockets else { return "-" }
                    var text = String(descriptors.count)
                    descriptors.append(sockets.tcp.rawValue)
                    if let udp = sockets.udp {
                        text += ":\(descriptors.count)"
                        descriptors.append(udp.rawValue)
                    }
                    return text
                }
                if !inbound.isEmpty { environment.append("SLUICE_INBOUND_FDS=" + inbound.joined(separator: ",")) }
            }
            let request = SpawnRequest(
                executable: path, arguments: ["--control-fd", "3"], environment: environment,
                descriptors: descriptors, account: account, capabilities: capabilities(of: kind) & grantable)
            let pid = try ProcessSpawner.spawn(request)
            theirs.close()
            slot.pid = pid
            slot.spawnedAt = MonotonicClock.now
            slot.state = .starting
            slot.channel = FrameChannel(takingOwnershipOf: ours)
            logger.info(
                "started \(kind.identifier) (pid \(pid)) as \(account?.name ?? "uid \(getuid())") with capabilities \(Capability.names(capabilities(of: kind) & grantable))"
            )
            send(
                .hello(Hello(role: .supervisor, pid: UInt32(getpid()), software: SluiceVersion.banner("sluiced"))),
                to: slot, purpose: .hello)
            pushConfiguration(to: slot)
        } catch {
            logger.error(
                "cannot start \(kind.identifier) from \(path): \(error); check that the executable exists and is executable (--worker-dir)"
            )
            slot.logPipe?.close()
            slot.logPipe = nil
            failed(slot, exit: ProcessSpawner.Exit(pid: 0, code: 127, signal: nil), reason: "spawn failed: \(error)")
        }
        publishStatus()
    }

    /// What `kind` needs: the tun worker without a TUN (only the local proxy ports: no device, no routes, no marks
    /// to keep its sockets out of a TUN) needs no capability at all.
    func capabilities(of kind: WorkerKind) -> UInt64 {
        kind == .tun && !configuration.tun.enable ? 0 : kind.capabilities
    }

    /// The worker's stdout/stderr: a journald stream with its own SYSLOG_IDENTIFIER when
    /// journald is reachable, else a pipe we read and prefix with the worker's name.
    private func openLogSink(_ slot: WorkerSlot) throws -> (OwnedDescriptor, String) {
        let fd = sd_journal_stream_fd(slot.kind.identifier, LOG_INFO, 1)
        if fd >= 0 {
            slot.logPipe?.close()
            slot.logPipe = nil
            return (OwnedDescriptor(takingOwnershipOfDescriptor: fd), "journal")
        }
        let pipe = try Descriptors.pipe()
        try Descriptors.setNonBlocking(pipe.read.rawValue)
        slot.logPipe?.close()
        slot.logPipe = pipe.read
        slot.logBuffer = []
        return (pipe.write, "pipe")
    }

    func pushConfiguration(to slot: WorkerSlot) {
        do {
            let document = try JSONEncoder().encode(configuration)
            send(
                .configPush(ConfigPush(generation: generation, document: Array(document))), to: slot,
                purpose: .config(generation: generation))
        } catch {
            logger.critical("cannot encode the configuration for \(slot.kind.identifier): \(error)")
        }
    }

    /// Sends to a worker; a failed send means the worker is gone or wedged: kill it.
    func send(_ message: Message, to slot: WorkerSlot, purpose: WorkerSlot.Purpose?) {
        guard let channel = slot.channel else { return }
        let id = purpose == nil ? 0 : nextID()
        if let purpose { slot.requests[id] = purpose }
        do {
            try channel.send(message, requestID: id)
        } catch {
            kill(slot, reason: "control channel: \(error)")
        }
    }

    /// SIGKILLs a worker the supervisor gave up on; the exit is handled when it is reaped.
    func kill(_ slot: WorkerSlot, reason: String) {
        guard slot.isRunning else { return }
        if slot.killReason == nil {
            slot.killReason = reason
            logger.error("\(slot.kind.identifier) (pid \(slot.pid)): \(reason); killing it (SIGKILL) to restart it")
        }
        ProcessSpawner.signal(slot.pid, SIGKILL)
        slot.channel?.close()
        slot.channel = nil
    }

    // MARK: Control channel traffic

    func drainChannel(_ slot: WorkerSlot) {
        while let channel = slot.channel {
            let received: ReceivedFrame
            do {
                guard let next = try channel.receive(timeoutMilliseconds: 0) else { return }
                received = next
            } catch {
                if error.code == .peerClosed {
                    // The exit itself arrives as SIGCHLD; just stop reading.
                    slot.channel?.close()
                    slot.channel = nil
                } else {
                    kill(slot, reason: "protocol error on the control channel: \(error)")
                }
                return
            }
            let message: Message
            do {
                message = try received.frame.message()
            } catch {
                logger.warning("\(slot.kind.identifier) sent a frame sluiced cannot read: \(error)")
                continue
            }
            handle(message, header: received.header, from: slot)
        }
    }

    private func handle(_ message: Message, header: FrameHeader, from slot: WorkerSlot) {
        let purpose = header.isReply ? slot.requests.removeValue(forKey: header.requestID) : nil
        let now = MonotonicClock.now
        if !slot.handshaken, message.type != .helloAccept {
            // A worker answers the hello first (it reads it before anything else); nothing is taken from a channel
            // whose process has not shown it is the one sluiced started.
            kill(slot, reason: "it sent \(message.type) before answering hello")
            return
        }
        // The external controller's answers go back to it; the cases below still keep what they cache (stats, groups).
        if case .api(let reply)? = purpose { reply(message) }
        switch message {
        case .helloAccept(let accept):
            // The channel is one end of a socketpair handed over at spawn, so only that process holds it; the pid
            // it names must be the one sluiced started (a descriptor leaked to another process would not match).
            guard accept.pid == UInt32(bitPattern: slot.pid) else {
                kill(
                    slot, reason: "its channel answered hello as pid \(accept.pid), but sluiced started pid \(slot.pid)"
                )
                return
            }
            slot.handshaken = true
            logger.debug(
                "\(slot.kind.identifier) (pid \(accept.pid)) speaks protocol \(accept.version): \(accept.software)")
            wirePeers(around: slot)
            if let level = controller?.followedLogPriority, level != LogSubscribe.off {
                send(.logSubscribe(LogSubscribe(priority: level)), to: slot, purpose: nil)
            }
        case .configResult(let result):
            switch result.outcome {
            case .applied:
                slot.appliedGeneration = result.generation
            case .restartRequired:
                logger.notice(
                    "\(slot.kind.identifier) needs a restart for generation \(result.generation): \(result.detail)")
                restartPlanned(slot)
            case .rejected:
                logger.error(
                    "\(slot.kind.identifier) rejected configuration generation \(result.generation): \(result.detail)")
                if slot.state == .starting { kill(slot, reason: "rejected its configuration") }
            }
        case .ready(let ready):
            let wasReady = slot.state == .ready
            if slot.state == .starting || slot.state == .ready {
                slot.state = .ready
                slot.readyAt = now
            }
            slot.detail = ready.detail
            if !wasReady { logger.info("\(slot.kind.identifier) ready: \(ready.detail)") }
            publishStatus()
            checkAllReady()
        case .heartbeatAck(let beat):
            if let sent = slot.outstandingHeartbeats.removeValue(forKey: beat.sequence) {
                slot.heartbeatLatency = MonotonicClock.elapsed(from: sent, to: now)
            }
            // An answer to a newer beat means every older one was lost, not pending.
            slot.outstandingHeartbeats = slot.outstandingHeartbeats.filter { $0.key > beat.sequence }
        case .statsReport(let report):
            slot.stats = Dictionary(report.entries.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
            if slot.problems != report.problems {
                for problem in report.problems where !slot.problems.contains(problem) {
                    logger.error("\(slot.kind.identifier) reports a problem: \(problem)")
                }
                if slot.problems.isEmpty == false, report.problems.isEmpty {
                    logger.notice("\(slot.kind.identifier): its problems are gone")
                }
                slot.problems = report.problems
                publishStatus()
            }
        case .processLookup(let lookup) where slot.kind == .tun && !header.isReply:
            let found = ProcessTable.owner(ofSocket: lookup.inode, uid: lookup.uid)
            do {
                try slot.channel?.send(
                    .processInfo(ProcessIdentity(pid: found?.pid ?? 0, path: found?.path ?? "")),
                    requestID: header.requestID,
                    isReply: true)
            } catch {
                kill(slot, reason: "control channel: \(error)")
            }
        case .tunDescriptorRequest where !header.isReply:
            answerTunDescriptorRequest(requestID: header.requestID, from: slot, now: now)
        case .groupStatus(let document):
            if let groups = try? JSONDecoder().decode([GroupState].self, from: Data(document)) { slot.groups = groups }
            if case .forward(let client, let requestID) = purpose {
                forwardAnswer(message, to: client, requestID: requestID)
            }
        case _ where purpose.map({ if case .forward = $0 { true } else { false } }) ?? false:
            // Any other answer (or error) to a request a control client made goes back to it as it is.
            if case .forward(let client, let requestID)? = purpose {
                forwardAnswer(message, to: client, requestID: requestID)
            }
        case _ where purpose.map({ if case .api = $0 { true } else { false } }) ?? false:
            break  // answered above
        case .logRecord(let record):
            controller?.publishLog(source: slot.kind.rawValue, priority: record.priority, text: record.text)
        case .linkStatus(let document):
            if let links = try? JSONDecoder().decode([WireGuardLinkState].self, from: Data(document)) {
                slot.links = links
                updateSleepInhibitor()
            }
        case .error(let report)
        where purpose.map({ if case .groups = $0 { true } else if case .links = $0 { true } else { false } }) ?? false:
            // A worker without groups or links (or an older one) has nothing to say.
            _ = report
        case .error(let report):
            logger.warning(
                "\(slot.kind.identifier) answered an error\(purpose.map { " to \($0)" } ?? ""): \(report.code): \(report.message)"
            )
            if case .hello = purpose { kill(slot, reason: "handshake refused: \(report.message)") }
        default:
            logger.debug("\(slot.kind.identifier) sent \(message.type); ignored")
        }
    }

    /// A restart the configuration (or `POST /restart`) asked for: stop gracefully and start again without
    /// counting a failure.
    func restartPlanned(_ slot: WorkerSlot, reason: String = "configuration change needs a restart") {
        guard slot.isRunning else { return }
        slot.restartAfterExit = true
        slot.state = .stopping
        send(.shutdown(Shutdown(graceMilliseconds: 2000, reason: reason)), to: slot, purpose: nil)
    }

    /// Gives the tun and dns workers a fresh socket pair to each other whenever one of
    /// them (re)starts: no worker ever connects to a path it could be tricked into.
    func wirePeers(around slot: WorkerSlot) {
        let pairs: [WorkerKind: WorkerKind] = [.tun: .dns, .dns: .tun]
        guard let otherKind = pairs[slot.kind], let other = slots[otherKind], other.handshaken, other.channel != nil,
            slot.channel != nil
        else { return }
        do {
            let (a, b) = try UnixSocket.pair(.stream)
            defer {
                a.close()
                b.close()
            }
            try slot.channel?.send(
                .peerChannel(PeerChannel(peer: other.kind.role, peerPID: UInt32(other.pid))), descriptors: [a.rawValue])
            try other.channel?.send(
                .peerChannel(PeerChannel(peer: slot.kind.role, peerPID: UInt32(slot.pid))), descriptors: [b.rawValue])
            logger.info(
                "wired \(slot.kind.identifier) (pid \(slot.pid)) and \(other.kind.identifier) (pid \(other.pid))")
        } catch {
            logger.error("cannot wire \(slot.kind.identifier) to \(other.kind.identifier): \(error)")
        }
    }

    // MARK: Logs (fallback pipe)

    func drainLog(_ slot: WorkerSlot) {
        guard let pipe = slot.logPipe else { return }
        while true {
            let chunk: [UInt8]
            do {
                chunk = try Descriptors.read(pipe.rawValue, maxBytes: 16384)
            } catch {
                if error.errno != EAGAIN { closeLog(slot) }
                break
            }
            if chunk.isEmpty {
                closeLog(slot)
                break
            }
            slot.logBuffer += chunk
            while let newline = slot.logBuffer.firstIndex(of: 10) {
                forwardLogLine(slot, Array(slot.logBuffer[..<newline]))
                slot.logBuffer.removeSubrange(...newline)
            }
            if slot.logBuffer.count > 65536 {  // a runaway line without newline
                forwardLogLine(slot, slot.logBuffer)
                slot.logBuffer = []
            }
        }
    }

    private func closeLog(_ slot: WorkerSlot) {
        if !slot.logBuffer.isEmpty { forwardLogLine(slot, slot.logBuffer) }
        slot.logBuffer = []
        slot.logPipe?.close()
        slot.logPipe = nil
    }

    /// Re-emits a worker's `<N>message` line on our stderr with the worker's name.
    private func forwardLogLine(_ slot: WorkerSlot, _ raw: [UInt8]) {
        var text = String(decoding: raw, as: UTF8.self)
        var priority = 6
        if text.hasPrefix("<"), let close = text.firstIndex(of: ">"),
            let p = Int(text[text.index(after: text.startIndex)..<close])
        {
            priority = p
            text = String(text[text.index(after: close)...])
        }
        let line: String
        switch logFormat {
        case .journalPrefix, .supervisorPipe: line = "<\(priority)>\(slot.kind.identifier): \(text)\n"
        case .human:
            line = "\(LineLogHandler.timestamp()) \(slot.kind.identifier) \(Self.levelName(priority)): \(text)\n"
        }
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func levelName(_ priority: Int) -> String {
        switch priority {
        case ...2: "critical"
        case 3: "error"
        case 4: "warning"
        case 5: "notice"
        case 6: "info"
        default: "debug"
        }
    }

    // MARK: Exits and restarts

    func reapChildren() {
        while let exit = ProcessSpawner.reapOne() {
            if downloadExited(exit) { continue }
            guard let slot = slots.values.first(where: { $0.pid == exit.pid }) else { continue }
            childExited(slot, exit: exit)
        }
    }

    private func childExited(_ slot: WorkerSlot, exit: ProcessSpawner.Exit) {
        if slot.logPipe != nil { drainLog(slot) }
        closeLogIfIdle(slot)
        let how = exit.signal.map { "was killed by \(signalName($0))" } ?? "exited with status \(exit.code ?? -1)"
        let reason = slot.killReason ?? (exit.signal != nil || exit.code != 0 ? "crashed" : "exited")
        slot.pid = 0
        slot.resetSession()
        if case .stopping = phase {
            slot.lastExit = WorkerSlot.LastExit(exit: exit, reason: "stopped", at: MonotonicClock.now)
            slot.state = .stopped
            logger.info("\(slot.kind.identifier) \(how) during shutdown")
            return
        }
        if slot.state == .stopping {
            slot.lastExit = WorkerSlot.LastExit(exit: exit, reason: "stopped", at: MonotonicClock.now)
            if slot.restartAfterExit && slot.enabled {
                slot.restartAfterExit = false
                logger.info("\(slot.kind.identifier) \(how); starting it again with the new configuration")
                spawn(slot)
            } else {
                slot.state = slot.enabled ? .stopped : .off
                logger.info("\(slot.kind.identifier) \(how)")
                publishStatus()
            }
            return
        }
        logger.error("\(slot.kind.identifier) \(how) (\(reason))")
        failed(slot, exit: exit, reason: reason)
    }

    private func closeLogIfIdle(_ slot: WorkerSlot) {
        // The worker is gone; whatever it wrote is in the pipe already.
        if slot.logPipe != nil { closeLog(slot) }
    }

    /// Records a failure and either schedules the restart or gives up on the suite.
    func failed(_ slot: WorkerSlot, exit: ProcessSpawner.Exit, reason: String) {
        let now = MonotonicClock.now
        let uptime =
            slot.spawnedAt > 0 ? Duration(nanoseconds: MonotonicClock.elapsed(from: slot.spawnedAt, to: now)) : .zero
        slot.pid = 0
        slot.lastExit = WorkerSlot.LastExit(exit: exit, reason: reason, at: now)
        slot.restarts += 1
        slot.state = .off
        switch slot.schedule.recordFailure(at: now, uptime: uptime, using: &rng) {
        case .restart(let delay):
            slot.state = .backoff(until: now + delay)
            logger.warning(
                "restarting \(slot.kind.identifier) in \(Duration(nanoseconds: delay).humanReadable) (restart \(slot.restarts))"
            )
            publishStatus()
        case .giveUp(let why):
            let message = "giving up on \(slot.kind.identifier): \(why); stopping so that systemd can restart sluice"
            logger.critical("\(message)")
            slot.state = .stopped
            beginStop(reason: message, exitCode: 1)
        }
    }

    // MARK: Reload

    /// SIGHUP: validate the file again; keep running on the old configuration if it is bad.
    func reload() {
        guard phase == .running else { return }
        logger.info("reloading \(options.configPath)")
        _ = apply(
            ConfigLoader.load(contentsOfFile: options.configPath, catalog: options.proxyCatalog),
            from: options.configPath)
    }

    /// Puts a loaded configuration in place, or keeps the running one when it has errors. Returns the
    /// refusal (the first error and the count) or nil when applied.
    @discardableResult
    func apply(_ result: ConfigLoadResult, from source: String) -> String? {
        guard let new = result.configuration, !result.hasErrors else {
            let problems = result.diagnostics.filter { $0.severity == .error }
            for diagnostic in problems {
                logger.error("reload refused: \(diagnostic)")
            }
            let errors = problems.count
            logger.error(
                "reload refused: \(errors) error\(errors == 1 ? "" : "s") in \(source); still running generation \(generation). Fix it and reload again (`sluiced check -c FILE` lists the problems)."
            )
            notifier.status("\(statusLine()); reload refused: \(errors) error\(errors == 1 ? "" : "s") in \(source)")
            lastStatus = ""
            return "\(errors) error\(errors == 1 ? "" : "s") in \(source): "
                + problems.prefix(5).map { "\($0)" }.joined(separator: "; ")
        }
        for diagnostic in result.diagnostics { logger.warning("\(diagnostic)") }
        notifier.reloading()
        install(new)
        let line = statusLine()
        lastStatus = line
        notifier.ready(status: line)
        return nil
    }

    /// Makes `new` the running configuration: a new generation, pushed to the workers it affects; workers it
    /// enables or disables are started or stopped.
    func install(_ new: SluiceConfiguration) {
        let old = configuration
        configuration = new
        generation += 1
        SluiceLogging.setLevel(SluiceLogging.level(named: new.logLevel.rawValue))
        prepareWireGuardDirectory()
        updateSleepInhibitor()
        if old.supervisor.restart != new.supervisor.restart {
            for slot in slots.values { slot.schedule = Self.schedule(new.supervisor.restart) }
        }
        for kind in WorkerKind.allCases {
            let slot = slots[kind]!
            let enable = kind.isEnabled(in: new)
            switch (slot.enabled, enable) {
            case (false, true):
                slot.enabled = true
                logger.info("\(kind.identifier) enabled by the new configuration")
                spawn(slot)
            case (true, false):
                slot.enabled = false
                logger.info("\(kind.identifier) disabled by the new configuration")
                if slot.isRunning {
                    slot.state = .stopping
                    send(
                        .shutdown(Shutdown(graceMilliseconds: 2000, reason: "disabled by configuration")), to: slot,
                        purpose: nil)
                } else {
                    slot.state = .off
                }
            case (true, true) where kind.isAffected(from: old, to: new):
                if slot.isRunning { pushConfiguration(to: slot) }
            default:
                break
            }
        }
        updateController(old: old.controller)
        logger.info("configuration generation \(generation) loaded")
    }
}
