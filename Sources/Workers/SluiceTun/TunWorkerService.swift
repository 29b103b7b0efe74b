import CSluice
import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluiceOutbounds
import SluiceRouting
import SluiceRules
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The tun worker's job: bring the TUN device up, run the data plane, install auto-route,
/// and take it all down again on a graceful stop.
package final class TunWorkerService: WorkerService, @unchecked Sendable {
    private let logger = Logger(label: "sluice-tun")
    private var running: RunningDataPlane?
    private var applied: SluiceConfiguration?
    private let environment: [String: String]
    private var supervisor: SupervisorLink?

    package init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    package func apply(_ configuration: SluiceConfiguration, generation: UInt64) -> (ConfigResult.Outcome, String) {
        if let running, let applied {
            // Rules, proxies and mode swap in place; anything about the device or routing
            // needs a fresh data plane.
            if applied.tun != configuration.tun || applied.ipv6 != configuration.ipv6 {
                return (.restartRequired, "tun section changed")
            }
            if Self.localSockets(applied.inbound) != Self.localSockets(configuration.inbound) {
                // sluiced binds the ports at the worker's start and hands them over then.
                return (.restartRequired, "local proxy ports changed")
            }
            if applied.tun.autoRoute, applied.wireguardBypassMarks != configuration.wireguardBypassMarks {
                // auto-route's rules send the links' marks around the TUN; a new mark needs them reinstalled.
                return (.restartRequired, "WireGuard link fwmarks changed (auto-route bypass rules)")
            }
            let table = RoutingTable.make(
                configuration, egress: running.egress, resolver: running.resolver,
                previous: running.router.current, stateDirectory: environment["SLUICE_STATE_DIRECTORY"],
                logger: logger)
            running.install(table)
            running.ports?.settings = configuration.inbound
            running.egress.keepAlive = configuration.keepAlive
            running.applyLimits(configuration.limits)
            self.applied = configuration
            return (.applied, running.summary)
        }
        // Without the TUN the data plane still runs for the local proxy ports (mihomo's plain proxy use).
        guard configuration.tun.enable || !configuration.inbound.listeners.isEmpty else {
            return (.applied, "tun disabled")
        }
        do {
            let plane = try RunningDataPlane.start(
                configuration, environment: environment, supervisor: supervisor, logger: logger)
            running = plane
            applied = configuration
            return (.applied, plane.summary)
        } catch {
            logger.error("cannot start the data plane: \(error)")
            return (.rejected, "\(error)")
        }
    }

    package var readyDetail: String { running?.summary ?? "tun disabled" }

    /// What sluiced binds for the local proxy ports: a change needs new sockets, so a new worker.
    static func localSockets(_ inbound: InboundConfiguration) -> [String] {
        inbound.listeners.map { "\($0.address) \($0.port) \($0.udp)" }
    }

    package var isHealthy: Bool { running?.isHealthy ?? true }
    /// One line per proxy group that rejects its traffic because nothing in it can carry a connection.
    package var problems: [String] { running?.router.current.groups?.problems ?? [] }

    package func stats() -> [StatsReport.Entry] { running?.stats() ?? [] }

    package func peerConnected(_ peer: PeerChannel, channel: FrameChannel) {
        guard peer.peer == .dnsWorker else { return }
        running?.dns.attach(channel)
    }

    package func connected(to supervisor: SupervisorLink) { self.supervisor = supervisor }

    /// `sluiced select` and the group state for `sluiced status`; the external controller's connections list and
    /// closes.
    package func answer(_ request: Message) -> Message? {
        let groups = running?.router.current.groups
        switch request {
        case .connectionsRequest:
            let snapshot =
                running?.registry.snapshot() ?? ConnectionsSnapshot(uploadTotal: 0, downloadTotal: 0, connections: [])
            do {
                return .connections(document: Array(try JSONEncoder().encode(snapshot)))
            } catch {
                return .error(ErrorReport(code: .internalFailure, message: "cannot encode the connections: \(error)"))
            }
        case .closeConnections(let close):
            return .connectionsClosed(count: UInt32(clamping: running?.registry.close(id: close.id) ?? 0))
        case .groupStatusRequest:
            return Self.groupStatus(groups)
        case .select(let select):
            guard let groups else {
                return .error(
                    ErrorReport(
                        code: .rejected,
                        message: "no proxy groups are configured (proxy-groups is empty, or the TUN is off)"))
            }
            do {
                try groups.select(select.group, select.member)
            } catch {
                return .error(ErrorReport(code: .rejected, message: error.description))
            }
            return Self.groupStatus(groups)
        default:
            return nil
        }
    }

    /// The external controller's delay tests, measured on a thread of their own (up to the request's timeout).
    package func answerLater(_ request: Message, respond: @escaping @Sendable (Message) -> Void) -> Bool {
        guard case .delayTest(let test) = request else { return false }
        guard let running else {
            respond(.delayResult(DelayResult(delays: [], error: "the TUN is off: no proxies to test")))
            return true
        }
        running.delayTest(test, respond: respond)
        return true
    }

    static func groupStatus(_ groups: ProxyGroups?) -> Message {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let document = (try? encoder.encode(groups?.status ?? [])) ?? Data("[]".utf8)
        return .groupStatus(document: Array(document))
    }

    package func shutdown(graceMilliseconds: UInt32) {
        running?.stop()
        running = nil
    }
}
