import IPC
import Logging
import SluiceConfig
import SluiceSystem

/// A ``WorkerService`` that holds the applied configuration and the peer channels, and
/// does no data-plane work of its own.
///
/// Each worker starts from this and grows its job on top (issues 4, 5 and 7); until then it
/// is exactly what it says: the lifecycle (config, ready, heartbeats, peers, shutdown)
/// working for real, with a ready line that says which section it holds.
package final class ConfigurationKeeper: WorkerService, @unchecked Sendable {
    private let summarize: @Sendable (SluiceConfiguration) -> String
    private let state = Locked<(configuration: SluiceConfiguration?, peers: [PeerRole: FrameChannel])>((nil, [:]))
    private let logger: Logger

    /// - Parameter summarize: the ready line for a configuration, e.g. the device name.
    package init(label: String, summarize: @escaping @Sendable (SluiceConfiguration) -> String) {
        self.summarize = summarize
        self.logger = Logger(label: label)
    }

    package func apply(_ configuration: SluiceConfiguration, generation: UInt64) -> (ConfigResult.Outcome, String) {
        state.withLock { $0.configuration = configuration }
        return (.applied, summarize(configuration))
    }

    package var readyDetail: String {
        state.withLock { $0.configuration.map(summarize) ?? "no configuration" }
    }

    package var isHealthy: Bool { true }

    package func stats() -> [StatsReport.Entry] {
        [.init("peers.connected", Int64(state.withLock { $0.peers.count }))]
    }

    package func peerConnected(_ peer: PeerChannel, channel: FrameChannel) {
        let old = state.withLock { s in
            defer { s.peers[peer.peer] = channel }
            return s.peers[peer.peer]
        }
        old?.close()
    }

    package func shutdown(graceMilliseconds: UInt32) {
        let peers = state.withLock { s in
            defer { s.peers = [:] }
            return s.peers
        }
        for channel in peers.values { channel.close() }
    }
}
