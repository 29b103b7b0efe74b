import ExternalController
import Foundation
import IPC
import SluiceConfig
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The external controller's view of sluiced (every call arrives on sluiced's thread through the mailbox).
extension Supervisor: ControllerBackend {
    /// Starts, updates or stops the API after the configuration changed (`old` nil: at start).
    func updateController(old: ControllerConfiguration?) {
        let wanted = configuration.controller
        guard wanted.isEnabled else {
            if controller != nil {
                controller?.stop()
                controller = nil
                LogTap.set(priority: LogSubscribe.off) { _, _ in }
                logger.info("external controller: stopped (no external-controller in the configuration)")
            }
            return
        }
        do {
            if let controller {
                if old != wanted { try controller.update(wanted) }
            } else {
                let mailbox = try ControllerMailbox()
                let made = ExternalController(
                    configuration: wanted, mailbox: mailbox, version: SluiceVersion.string, logger: logger)
                controller = made
                try made.start()
            }
            if let unix = wanted.unixSocket, let controlGroup { chown(unix, uid_t.max, controlGroup) }
        } catch {
            logger.error(
                "external controller: cannot listen on \(wanted.listen.map { "\($0)" } ?? wanted.unixSocket ?? "?"): \(error); the API is off until the address is free or changed (then reload)"
            )
        }
    }

    package func controllerState() -> ControllerState {
        let status = statusDocument()
        let workers = status.workers.map { w in
            ControllerState.Worker(
                name: w.name, state: w.state, pid: w.pid, restarts: w.restarts,
                heartbeatLatencyMilliseconds: w.heartbeatLatencyMilliseconds,
                stats: w.stats)
        }
        return ControllerState(
            configuration: configuration, configPath: options.configPath, generation: generation,
            version: SluiceVersion.string,
            workers: workers, groups: slots[.tun]?.groups ?? [])
    }

    package func controllerAsk(
        _ worker: ControllerWorker, _ request: Message, reply: @escaping @Sendable (Message) -> Void
    ) {
        let kind: WorkerKind = worker == .tun ? .tun : .dns
        guard let slot = slots[kind], slot.handshaken, slot.channel != nil else {
            let why =
                slots[kind]?.enabled == true ? "is not running (restarting?); try again" : "is off in the configuration"
            reply(.error(ErrorReport(code: .rejected, message: "the \(kind.rawValue) worker \(why)")))
            return
        }
        send(request, to: slot, purpose: .api(reply: reply))
    }

    package func controllerPatch(mode: SluiceConfiguration.Mode?, logLevel: SluiceConfiguration.LogLevel?) {
        var new = configuration
        if let mode { new.mode = mode }
        if let logLevel { new.logLevel = logLevel }
        guard new != configuration else { return }
        logger.notice(
            "external controller: \([mode.map { "mode \($0.rawValue)" }, logLevel.map { "log-level \($0.rawValue)" }].compactMap { $0 }.joined(separator: ", ")) (until the next reload from the file)"
        )
        install(new)
        publishStatus()
    }

    package func controllerReload(path: String?, payload: String?) -> String? {
        if let payload {
            logger.info("external controller: reloading from a payload of \(payload.utf8.count) bytes")
            let name = "(PUT /configs payload)"
            let result = ConfigLoader.load(yaml: payload, fileName: name, catalog: options.proxyCatalog)
            if let refusal = unsafePayload(result, name: name) {
                logger.warning("external controller: payload refused: \(refusal)")
                return refusal
            }
            return apply(result, from: "the PUT /configs payload")
        }
        if let path {
            guard path.hasPrefix("/") else { return "path must be absolute, got \(path)" }
            // As mihomo's SAFE_PATHS: only files beside the running configuration, so that the API cannot make
            // sluiced (root) read any file and echo parts of it in its errors.
            let home = Self.realDirectory(of: options.configPath)
            guard let wanted = Self.realDirectory(of: path), let home, wanted == home || wanted.hasPrefix(home + "/")
            else {
                return "path \(path) is not inside the configuration's directory \(home ?? "?"); put the file there"
            }
        }
        let file = path ?? options.configPath
        guard access(file, R_OK) == 0 else { return "cannot read \(file): \(String(cString: strerror(errno)))" }
        logger.info("external controller: reloading from \(file)")
        let refusal = apply(ConfigLoader.load(contentsOfFile: file, catalog: options.proxyCatalog), from: file)
        if refusal == nil, file != options.configPath {
            logger.notice("the configuration file is now \(file) (SIGHUP reloads it)")
            options.configPath = file
        }
        return refusal
    }

    /// Why a configuration sent as a payload may not be taken, or nil. Unlike a file beside the configuration
    /// (written by root), a payload comes from whoever holds the secret: it may not change the API itself
    /// (its address, secret, or which folder `/ui/` serves without the secret), may not name files outside
    /// the configuration's directory, and errors found in other files are not echoed.
    func unsafePayload(_ result: ConfigLoadResult, name: String) -> String? {
        if result.diagnostics.contains(where: { $0.isError && $0.file != name }) {
            return "the payload refers to files that do not load; check them with `sluiced check` on this machine"
        }
        guard let new = result.configuration else { return nil }
        if new.controller != configuration.controller {
            return
                "a payload cannot change external-controller, secret, external-ui or CORS; edit the configuration file and reload it"
        }
        let home = Self.realDirectory(of: options.configPath)
        for provider in new.ruleProviders {
            let path: String?
            switch provider.source {
            case .file(let file): path = file
            case .http(_, let cache, _): path = cache
            case .inline: path = nil
            }
            guard let path else { continue }
            let directory = Self.realDirectory(of: path.hasPrefix("/") ? path : "/nonexistent/" + path)
            guard let directory, let home, directory == home || directory.hasPrefix(home + "/") else {
                return
                    "rule provider \(provider.name): a payload may only name files inside \(home ?? "the configuration's directory")"
            }
        }
        return nil
    }

    /// The directory holding `path`, with symbolic links resolved; nil when it does not exist.
    static func realDirectory(of path: String) -> String? {
        let directory = (path as NSString).deletingLastPathComponent
        guard let resolved = realpath(directory.isEmpty ? "." : directory, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    package func controllerUpdateRuleProvider(_ name: String, done: @escaping @Sendable (ProviderUpdate) -> Void) {
        updateRuleProvider(name, done: done)
    }

    package func controllerRestartWorkers() {
        let running = WorkerKind.stopOrder.compactMap { slots[$0] }.filter { $0.isRunning && $0.state != .stopping }
        logger.notice(
            "external controller: restarting \(running.isEmpty ? "no worker (none runs)" : running.map { "\($0.kind.identifier) (pid \($0.pid))" }.joined(separator: ", "))"
        )
        for slot in running { restartPlanned(slot, reason: "restart asked through the external controller") }
    }

    package func controllerFollowLogs(priority: UInt8) {
        for slot in slots.values where slot.handshaken && slot.channel != nil {
            send(.logSubscribe(LogSubscribe(priority: priority)), to: slot, purpose: nil)
        }
        // sluiced's own lines, from any of its threads.
        if let controller, priority != LogSubscribe.off {
            LogTap.set(priority: priority) { [weak controller] level, text in
                controller?.publishLog(source: "sluiced", priority: level, text: text)
            }
        } else {
            LogTap.set(priority: LogSubscribe.off) { _, _ in }
        }
    }
}
