import IPC
import SluiceConfig
import SluiceSystem

/// The three workers: what each is called, runs, needs and cares about.
package enum WorkerKind: String, Sendable, CaseIterable, Codable {
    case tun
    case dns
    case keepalive

    package var role: PeerRole {
        switch self {
        case .tun: .tunWorker
        case .dns: .dnsWorker
        case .keepalive: .keepalive
        }
    }

    /// SYSLOG_IDENTIFIER of the worker's log stream.
    package var identifier: String { "sluice-\(rawValue)" }

    /// File name of the executable, looked up beside `sluiced` by default.
    package var executableName: String {
        switch self {
        case .tun: "sluice-tun-worker"
        case .dns: "sluice-dns-worker"
        case .keepalive: "sluice-keepalive"
        }
    }

    /// Capabilities the worker keeps (DESIGN.md, "Privilege"). The keepalive worker only
    /// runs when WireGuard links are configured, and then it needs CAP_NET_ADMIN.
    package var capabilities: UInt64 {
        switch self {
        case .tun, .keepalive: Capability.netAdmin.mask
        case .dns: 0
        }
    }

    /// Whether `configuration` asks for this worker.
    package func isEnabled(in configuration: SluiceConfiguration) -> Bool {
        switch self {
        // Without the TUN it still serves the local proxy ports.
        case .tun: configuration.tun.enable || !configuration.inbound.listeners.isEmpty
        case .dns: configuration.dns.enable
        case .keepalive: !configuration.wireguard.isEmpty
        }
    }

    /// Whether a reload from `old` to `new` changes anything this worker uses (if not,
    /// the worker is left alone).
    package func isAffected(from old: SluiceConfiguration, to new: SluiceConfiguration) -> Bool {
        if old.logLevel != new.logLevel { return true }
        switch self {
        case .tun:
            return old.tun != new.tun || old.mode != new.mode || old.proxies != new.proxies
                || old.proxyGroups != new.proxyGroups || old.rules != new.rules
                || old.ruleProviders != new.ruleProviders
                || old.dns != new.dns || old.ipv6 != new.ipv6 || old.sniffer != new.sniffer
                || old.keepAlive != new.keepAlive
                || old.wireguardBypassMarks != new.wireguardBypassMarks
                || old.wireguardEndpointRules != new.wireguardEndpointRules
                || old.limits.maxConnections != new.limits.maxConnections
                || old.limits.udpMaxFlows != new.limits.udpMaxFlows
                || old.inbound != new.inbound
        case .dns:
            return old.dns != new.dns || old.hosts != new.hosts || old.profile != new.profile || old.ipv6 != new.ipv6
                || old.wireguardEndpointNames != new.wireguardEndpointNames
                || old.limits.dnsMaxInFlight != new.limits.dnsMaxInFlight
        case .keepalive:
            return old.wireguard != new.wireguard || old.keepalive != new.keepalive
        }
    }

    /// Stop order: the data plane first (stop capturing traffic), DNS next, the WireGuard
    /// links last so that nothing is left routed into a dead tunnel.
    package static let stopOrder: [WorkerKind] = [.tun, .dns, .keepalive]
}
