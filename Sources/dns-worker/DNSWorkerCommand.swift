import ArgumentParser
import IPC
import SluiceDNS
import WorkerRuntime

/// `sluice-dns-worker`: fake-IP / real-IP DNS. Holds no capabilities; privileged ports
/// arrive as already bound sockets. Started by sluiced.
@main
struct DNSWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-dns-worker",
        abstract: "sluice's DNS worker: fake-IP and real-IP DNS with a persistent mapping. Started by sluiced.",
        discussion:
            "It speaks the IPC protocol (docs/ipc.md) on its control descriptor; run `sluiced run -c CONFIG` instead.",
        version: SluiceVersion.banner("sluice-dns-worker")
    )

    @OptionGroup var options: WorkerOptions

    func run() throws {
        try WorkerProcess.main(role: .dnsWorker, identifier: "sluice-dns", options: options) { DNSWorkerService() }
    }
}
