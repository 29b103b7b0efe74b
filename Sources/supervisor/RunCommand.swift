import ArgumentParser
import Foundation
import Logging
import SluiceConfig
import SluiceOutbounds
import Supervision
import WorkerRuntime

/// `sluiced run -c FILE`: the suite's entry point (what systemd starts).
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the suite: spawn and supervise the workers the configuration enables.",
        discussion: """
            Started by systemd (units/sluice.service) as root; the workers run as supervisor.user with
            only the capabilities they need. SIGHUP reloads the configuration (a bad file is refused and
            the suite keeps running); SIGTERM stops everything.
            """
    )

    @Option(name: [.customShort("c"), .customLong("config")], help: "The YAML configuration file.")
    var config: String = "/etc/sluice/config.yaml"

    @Option(help: "Runtime directory: control socket (default: $RUNTIME_DIRECTORY or /run/sluice).")
    var runtimeDir: String?

    @Option(help: "State directory: fake-IP mapping, selections (default: $STATE_DIRECTORY or /var/lib/sluice).")
    var stateDir: String?

    @Option(help: "Directory holding the worker executables (default: the directory of sluiced).")
    var workerDir: String?

    @Option(
        name: .customLong("worker-executable"),
        help: ArgumentHelp(
            "Use another executable for one worker: KIND=PATH, KIND one of tun, dns, keepalive.", valueName: "KIND=PATH"
        ))
    var workerExecutables: [String] = []

    func run() throws {
        SluiceLogging.bootstrap(identifier: "sluiced")
        let logger = Logger(label: "sluiced")
        let result = ConfigLoader.load(contentsOfFile: config, catalog: OutboundRegistry.catalog)
        for diagnostic in result.diagnostics {
            if diagnostic.severity == .error { logger.error("\(diagnostic)") } else { logger.warning("\(diagnostic)") }
        }
        guard let configuration = result.configuration, !result.hasErrors else {
            logger.critical("\(config) is not valid; nothing started. `sluiced check -c \(config)` lists the problems.")
            throw ExitCode(1)
        }
        SluiceLogging.setLevel(SluiceLogging.level(named: configuration.logLevel.rawValue))
        var overrides: [WorkerKind: String] = [:]
        for spec in workerExecutables {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let kind = WorkerKind(rawValue: parts[0]) else {
                throw ValidationError(
                    "--worker-executable \(spec): expected KIND=PATH with KIND one of tun, dns, keepalive")
            }
            overrides[kind] = parts[1]
        }
        let environment = ProcessInfo.processInfo.environment
        // systemd's RuntimeDirectory=/StateDirectory= export these (possibly several, ':'-separated).
        let runtime =
            runtimeDir ?? environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first.map(String.init)
            ?? "/run/sluice"
        let state =
            stateDir ?? environment["STATE_DIRECTORY"]?.split(separator: ":").first.map(String.init)
            ?? "/var/lib/sluice"
        let options = SupervisorOptions(
            configPath: config, runtimeDirectory: runtime, stateDirectory: state,
            workerDirectory: workerDir ?? Self.ownDirectory(), executableOverrides: overrides,
            proxyCatalog: OutboundRegistry.catalog)
        let supervisor: Supervisor
        do {
            supervisor = try Supervisor(options: options, configuration: configuration)
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        let code = supervisor.run()
        if code != 0 { throw ExitCode(code) }
    }

    /// The directory of the running executable (/proc/self/exe).
    static func ownDirectory() -> String {
        let path =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (path as NSString).deletingLastPathComponent
    }
}
