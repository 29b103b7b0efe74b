import CoreMetrics
import IPC
import Prometheus
import SluiceConfig
import SluiceSystem

/// `GET /metrics`: Prometheus text, recorded through swift-metrics into a registry of our own (not the
/// process-wide MetricsSystem, so that a reload or a test can make another controller).
///
/// The workers report cumulative counters with their stats; at each scrape the growth since the last one is
/// added to the matching Counter (a restarted worker starts from zero again: its new value is the growth).
final class ControllerMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    /// Last value seen of each cumulative series, by metric label and dimensions.
    private let last = Locked<[String: Int64]>([:])
    /// Series of connections by outbound seen before (set to 0 when none are left).
    private let outbounds = Locked<Set<String>>([])

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = []
        self.factory = factory
    }

    func render() -> [UInt8] { registry.emitToBuffer() }

    func update(_ state: ControllerState, connections: ConnectionsSnapshot?) {
        for worker in state.workers {
            let labels = [("worker", worker.name)]
            counter("sluice_worker_restarts_total", labels, value: Int64(worker.restarts))
            gauge("sluice_worker_up", labels, Double(worker.state == "ready" ? 1 : 0))
            gauge("sluice_worker_heartbeat_latency_seconds", labels, (worker.heartbeatLatencyMilliseconds ?? 0) / 1000)
        }
        let tun = state.worker("tun")?.stats ?? [:]
        let dns = state.worker("dns")?.stats ?? [:]
        if let connections {
            counter("sluice_traffic_bytes_total", [("direction", "up")], value: Int64(connections.uploadTotal))
            counter("sluice_traffic_bytes_total", [("direction", "down")], value: Int64(connections.downloadTotal))
            var byOutbound: [String: Int] = [:]
            for connection in connections.connections {
                byOutbound[connection.chains.first ?? BuiltinTarget.direct.rawValue, default: 0] += 1
            }
            let names = outbounds.withLock { seen in
                seen.formUnion(byOutbound.keys)
                return seen
            }
            for name in names { gauge("sluice_connections", [("outbound", name)], Double(byOutbound[name] ?? 0)) }
        }
        if let accepted = tun["tcp.accepted"] { counter("sluice_tcp_connections_total", [], value: accepted) }
        if let flows = tun["udp.flows"] { gauge("sluice_udp_flows", [], Double(flows)) }
        if let queries = dns["dns.queries"] { counter("sluice_dns_queries_total", [], value: queries) }
        if let hits = dns["dns.cache.hits"] { counter("sluice_dns_cache_hits_total", [], value: hits) }
        if let mappings = dns["dns.fake.mappings"] {
            gauge("sluice_fakeip_pool_used", [], Double(mappings))
            let dnsConfig = state.configuration.dns
            if dnsConfig.enhancedMode == .fakeIP {
                let bits = Int(dnsConfig.fakeIPRange.address.isIPv4 ? 32 : 128) - Int(dnsConfig.fakeIPRange.length)
                gauge("sluice_fakeip_pool_size", [], bits >= 53 ? Double(1 << 53) : Double(1 << bits))
            }
        }
        gauge("sluice_config_generation", [], Double(state.generation))
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)], _ value: Double) {
        Gauge(label: label, dimensions: dimensions, factory: factory).record(value)
    }

    private func counter(_ label: String, _ dimensions: [(String, String)], value: Int64) {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        let growth = last.withLock { seen -> Int64 in
            let previous = seen[key] ?? 0
            seen[key] = value
            return value >= previous ? value - previous : value
        }
        Counter(label: label, dimensions: dimensions, factory: factory).increment(by: growth)
    }
}
