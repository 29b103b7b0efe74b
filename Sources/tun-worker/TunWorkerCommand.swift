import ArgumentParser
import IPC
import SluiceTun
import WorkerRuntime

/// `sluice-tun-worker`: the data plane (TUN device, NAT, rules, outbounds). Holds
/// CAP_NET_ADMIN and nothing else; started by sluiced.
@main
struct TunWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-tun-worker",
        abstract: "sluice's TUN worker: captures layer-3 traffic and forwards it. Started by sluiced.",
        discussion:
            "It speaks the IPC protocol (docs/ipc.md) on its control descriptor; run `sluiced run -c CONFIG` instead.",
        version: SluiceVersion.banner("sluice-tun-worker")
    )

    @OptionGroup var options: WorkerOptions

    func run() throws {
        try WorkerProcess.main(role: .tunWorker, identifier: "sluice-tun", options: options) { TunWorkerService() }
    }
}
