import ArgumentParser
import IPC
import SluiceWireGuard
import WorkerRuntime

/// `sluice-keepalive`: brings WireGuard links up and keeps them alive. Holds
/// CAP_NET_ADMIN only when links are configured. Started by sluiced.
@main
struct KeepaliveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-keepalive",
        abstract: "sluice's keepalive worker: WireGuard links, liveness and routes. Started by sluiced.",
        discussion:
            "It speaks the IPC protocol (docs/ipc.md) on its control descriptor; run `sluiced run -c CONFIG` instead.",
        version: SluiceVersion.banner("sluice-keepalive")
    )

    @OptionGroup var options: WorkerOptions

    func run() throws {
        try WorkerProcess.main(role: .keepalive, identifier: "sluice-keepalive", options: options) {
            KeepaliveService()
        }
    }
}
