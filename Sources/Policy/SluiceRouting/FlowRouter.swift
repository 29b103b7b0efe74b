import Logging
import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluiceRules
import SluiceSystem
import Synchronization

/// The one place that decides where a flow goes: the packet paths ask it about a new flow (a SYN, a UDP pair's first
/// datagram, an ICMP echo, a local proxy client's request) and about a connection once accepted, and it answers
/// with values; it never calls back into them (STYLE rule 14: sing-tun's `JudgeFlow` at SYN, then the route after
/// accept).
///
/// It holds the routing table (rules, outbounds by name, groups, sniff policy), swapped atomically on reload, and
/// knows what each built-in target (``BuiltinTarget``) means. The hot threads never wait on it for long: a rule that
/// needs the owning process defers the decision until after accept, and the process lookup runs on
/// ``FlowOwners``' lanes with the route handed to a completion.
///
/// Log lines for decisions (`tcp A -> B (host) [rule] TARGET`) and the count of rejected flows are its own.
package final class FlowRouter: Sendable {
    private let table: Locked<RoutingTable>
    package let names: any FlowNames
    package let owners: FlowOwners
    /// Where hijacked TCP DNS goes: a session served by the dns worker.
    package let hijack: any Outbound
    /// IP rules on a fake-IP flow test the name's real addresses (unless `no-resolve`), as mihomo does: the engine
    /// asks at most once per decision, only when such a rule is reached. The caller waits for the dns worker (its
    /// cache answers repeats at once; a first lookup costs an upstream round trip) at most 150 ms; without an answer
    /// the IP rules do not match. `no-resolve` avoids it.
    package let resolveForRules: @Sendable (String) -> [IPAddress]
    package let logger: Logger
    /// Targets already warned about (unknown names, UDP refused): one line each. Touched only on those paths.
    private let warned = Locked<Set<String>>([])
    /// Flows refused by a decision (REJECT, REJECT-DROP, unknown target, unmapped fake address).
    package let rejected = Atomic<UInt64>(0)

    package init(
        table: RoutingTable, names: any FlowNames, owners: FlowOwners = .none, hijack: any Outbound,
        resolveForRules: @escaping @Sendable (String) -> [IPAddress] = { _ in [] }, logger: Logger
    ) {
        self.table = Locked(table)
        self.names = names
        self.owners = owners
        self.hijack = hijack
        self.resolveForRules = resolveForRules
        self.logger = logger
    }

    /// The table new flows are decided with now.
    package var current: RoutingTable { table.withLock { $0 } }

    /// Puts a new routing table in place (reload); returns the one it replaced.
    @discardableResult
    package func install(_ new: RoutingTable) -> RoutingTable {
        table.withLock { current in
            defer { current = new }
            return current
        }
    }

    /// What `target` (settled: groups followed) means in `table`, with a warning the first time a target names
    /// nothing. An unknown target rejects (fail closed).
    package func disposition(of target: String, in table: RoutingTable) -> (FlowDisposition, (any Outbound)?) {
        switch table.meaning(of: target) {
        case .reject: return (.reject, nil)
        case .drop: return (.drop, nil)
        case .dnsHijack: return (.forward, hijack)
        case .outbound(let outbound): return (.forward, outbound)
        case .unknown:
            warnOnce(target) { "rule target \"\(target)\" names no proxy or group; its connections are rejected" }
            return (.reject, nil)
        }
    }

    /// Logs `message` once per `key` for the router's life.
    package func warnOnce(_ key: String, _ message: () -> String) {
        guard warned.withLock({ $0.insert(key).inserted }) else { return }
        logger.warning("\(message())")
    }

    /// The owner of the local socket that sent a flow: its uid (`UID` rules) and its process's executable
    /// (`PROCESS-NAME`, `PROCESS-PATH`), looked up only when some rule tests them; flows from other machines have
    /// none. Blocks for the process lookup: only for threads that may wait (lanes, the UDP loop, the TUN reader for
    /// a UDP pair's first datagram).
    package func ownerFacts(tcp: Bool, _ local: InetEndpoint, _ remote: InetEndpoint, rules: RuleEngine) -> (
        UInt32?, String?
    ) {
        guard rules.usesUID || rules.usesProcess, let owner = owners.socket(tcp: tcp, local: local, remote: remote)
        else {
            return (nil, nil)
        }
        guard rules.usesProcess else { return (owner.uid, nil) }
        return (owner.uid, owners.executable(of: owner))
    }

    /// An ICMP echo request (TUN reader): only DIRECT-like outbounds carry it; echo cannot travel through a proxy,
    /// and answering it here would pretend a path.
    package func judgeEcho(source: IPAddress, destination: IPAddress) -> FlowDisposition {
        let metadata = ConnectionMetadata(
            network: .icmp, source: source, sourcePort: 0, destination: destination, destinationPort: 0)
        let current = self.current
        let (decision, _) = current.settle(
            current.rules.decide(metadata), key: destination.description, source: source.description)
        let (disposition, outbound) = disposition(of: decision.target, in: current)
        if disposition == .forward && !(outbound is DirectOutbound) { return .reject }
        return disposition
    }
}
