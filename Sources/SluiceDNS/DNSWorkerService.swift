import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceSystem
import Synchronization
import WorkerRuntime

/// The dns worker's job as far as it goes today: answer DNS that the tun worker hijacks
/// (`tun.dns-hijack`) by forwarding it to the configured upstream (`dns.nameserver`, UDP).
/// Fake-IP answers, the cache, `hosts` and `dns.listen` arrive with the DNS issue; until
/// then every mode answers with real addresses, and the worker says so at start.
public final class DNSWorkerService: WorkerService, @unchecked Sendable {
    private let logger = Logger(label: "sluice-dns")
    private var forwarder: DNSForwarder?
    private var forwarderThread: OSThread?
    private var applied: SluiceConfiguration?
    private let peer = Mutex<FrameChannel?>(nil)
    private var readers: [OSThread] = []

    public init() {}

    public func apply(_ configuration: SluiceConfiguration, generation: UInt64) -> (ConfigResult.Outcome, String) {
        if let applied, applied.dns != configuration.dns { return (.restartRequired, "dns section changed") }
        if applied != nil { return (.applied, readyDetail) }
        let dns = configuration.dns
        let candidates = dns.nameserver.isEmpty ? dns.defaultNameserver : dns.nameserver
        let upstreams = candidates.compactMap { upstream -> InetEndpoint? in
            guard upstream.transport == .udp, case .address(let ip) = upstream.endpoint.host else { return nil }
            return InetEndpoint(ip, upstream.endpoint.port)
        }
        if upstreams.count < candidates.count {
            logger.warning("only UDP nameservers given as IP addresses are used so far; others are ignored")
        }
        if dns.enhancedMode != .normal {
            logger.warning("enhanced-mode \(dns.enhancedMode.rawValue) is not implemented yet: answers are real addresses from the upstream")
        }
        do {
            let forwarder = try DNSForwarder(upstreams: upstreams, logger: logger) { [weak self] pending, reply in
                var answer = pending.query
                answer.message = reply
                try? self?.peer.withLock { $0 }?.send(.dnsPacket(answer), requestID: pending.requestID, isReply: true)
            }
            self.forwarder = forwarder
            forwarderThread = try OSThread.start(name: "dns-upstream") { forwarder.run() }
        } catch {
            return (.rejected, "cannot open upstream sockets: \(error)")
        }
        applied = configuration
        if upstreams.isEmpty { logger.warning("no usable nameserver: hijacked queries go unanswered") }
        return (.applied, readyDetail)
    }

    public var readyDetail: String {
        "dns forwarding to " + (forwarder?.upstreams.map(\.description).joined(separator: ", ") ?? "nothing")
    }

    public var isHealthy: Bool { forwarderThread.map { !$0.hasExited } ?? true }

    public func stats() -> [StatsReport.Entry] {
        guard let forwarder else { return [] }
        return [
            .init("dns.forwarded", Int64(forwarder.forwarded.load(ordering: .relaxed))),
            .init("dns.answered", Int64(forwarder.answered.load(ordering: .relaxed))),
            .init("dns.timeouts", Int64(forwarder.timedOut.load(ordering: .relaxed))),
        ]
    }

    /// The tun worker's channel: hijacked queries arrive on it, answers go back on it.
    public func peerConnected(_ peer: PeerChannel, channel: FrameChannel) {
        guard peer.peer == .tunWorker else { return }
        let old = self.peer.withLock { current in
            defer { current = channel }
            return current
        }
        old?.close()
        let forwarder = self.forwarder
        let logger = self.logger
        if let reader = try? OSThread.start(name: "dns-peer", {
            while true {
                let received: ReceivedFrame?
                do throws(IPCError) {
                    received = try channel.receive(timeoutMilliseconds: -1)
                } catch {
                    if error.code != .peerClosed { logger.warning("tun peer channel: \(error)") }
                    return
                }
                guard let received, case .dnsPacket(let query)? = try? received.frame.message(),
                    !received.header.isReply
                else { continue }
                forwarder?.forward(query, requestID: received.header.requestID)
            }
        }) {
            readers.append(reader)
        }
    }

    public func shutdown(graceMilliseconds: UInt32) {
        forwarder?.stop()
        forwarderThread?.join()
        peer.withLock { $0?.close() }
    }
}
