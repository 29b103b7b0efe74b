import ArgumentParser
import Foundation
import IPC
import Supervision

/// `sluiced select GROUP MEMBER`: choose the member a `select` proxy group uses. Without
/// arguments it lists the groups.
struct SelectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "select",
        abstract:
            "Choose the member of a select proxy group (kept across restarts); without arguments, list the groups.")

    @Argument(help: "The proxy group (a `select` group of proxy-groups).")
    var group: String?

    @Argument(help: "The member to use: one of the group's proxies or groups, or DIRECT/REJECT when listed.")
    var member: String?

    @Option(help: "Runtime directory of the running sluiced (default: $RUNTIME_DIRECTORY or /run/sluice).")
    var runtimeDir: String?

    func validate() throws {
        if group != nil && member == nil {
            throw ValidationError("name the member to use: sluiced select GROUP MEMBER")
        }
    }

    func run() throws {
        let runtime = runtimeDir ?? ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"] ?? "/run/sluice"
        let request: Message = group.map { .select(Select(group: $0, member: member!)) } ?? .groupStatusRequest
        let document: [UInt8]
        do {
            document = try ControlConnection.request(request, socketPath: runtime + "/control.sock") { message in
                if case .groupStatus(let document) = message { return document }
                return nil
            }
        } catch {
            writeStandardError("sluiced select: \(error)\n")
            throw ExitCode(1)
        }
        let groups = (try? JSONDecoder().decode([GroupState].self, from: Data(document))) ?? []
        if let group {
            let now = groups.first { $0.name == group }?.now ?? member!
            print("\(group): now \(now)")
        } else if groups.isEmpty {
            print("no proxy groups are configured")
        } else {
            print(SupervisorStatus.renderGroups(groups))
        }
    }
}
