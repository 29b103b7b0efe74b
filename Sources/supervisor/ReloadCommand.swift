import ArgumentParser
import Foundation
import IPC

/// `sluiced reload`: what SIGHUP and the API's `PUT /configs` do, with the answer: the new generation, or why
/// the file was refused (the running configuration stays).
struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Reload the configuration file of the running sluiced; print the new generation or the errors.")

    @Option(help: "Runtime directory of the running sluiced (default: $RUNTIME_DIRECTORY or /run/sluice).")
    var runtimeDir: String?

    func run() throws {
        let runtime = runtimeDir ?? ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"] ?? "/run/sluice"
        let result: ConfigResult
        do {
            result = try ControlConnection.request(
                .reload(Reload(reason: "sluiced reload")), socketPath: runtime + "/control.sock"
            ) {
                if case .configResult(let result) = $0 { return result }
                return nil
            }
        } catch {
            writeStandardError("sluiced reload: \(error)\n")
            throw ExitCode(1)
        }
        guard result.outcome == .applied else {
            writeStandardError(
                "sluiced reload: refused, still running generation \(result.generation): \(result.detail)\n")
            throw ExitCode(1)
        }
        print("reloaded: generation \(result.generation) (\(result.detail))")
    }
}
