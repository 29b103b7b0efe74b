import SluiceInbounds
import CSluice
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluicePacket
import SluiceOutbounds
import SluiceRules
import SluiceSniffing
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// What the dispatcher consults for each new flow; swapped atomically on reload.
final class RoutingTable: Sendable {
    let rules: RuleEngine
    let outbounds: [String: any Outbound]
    /// `proxy-groups`; nil without any.
    let groups: ProxyGroups?
    /// Names of `reject` proxies (a group member may name one).
    let rejectNames: Set<String>
    /// `sniffer:`; nil when nothing is sniffed.
    let sniffer: SniffPolicy?

    init(
        rules: RuleEngine, outbounds: [String: any Outbound], groups: ProxyGroups? = nil, rejectNames: Set<String> = [],
        sniffer: SniffPolicy? = nil
    ) {
        self.rules = rules
        self.outbounds = outbounds
        self.groups = groups
        self.rejectNames = rejectNames
        self.sniffer = sniffer
    }

    /// The rules' decision with groups followed down to the proxy or built-in that carries
    /// the flow (`key`: the destination's name or address, for load balancing). The rule
    /// text keeps the group: `[MATCH → Proxy] ss1`.
    ///
    /// The route facts keep the rule as written and the chain of outbounds (mihomo's order: `["ss1", "Proxy"]`) for the
    /// connections list.
    func settle(_ decision: RuleDecision, key: String, source: String) -> (RuleDecision, RouteFacts) {
        guard let groups, groups.contains(decision.target) else {
            let settled =
                rejectNames.contains(decision.target)
                ? RuleDecision(target: "REJECT", rule: decision.rule, condition: decision.condition) : decision
            return (settled, RouteFacts(condition: decision.condition, chains: [decision.target]))
        }
        guard let path = groups.resolvePath(decision.target, key: key, source: source), let leaf = path.last else {
            return (
                RuleDecision(target: "REJECT", rule: "\(decision.rule) → \(decision.target) (groups in a cycle)"),
                RouteFacts(condition: decision.condition)
            )
        }
        // Fail closed: an unavailable group and PASS (which sluice cannot continue matching from) reject; mihomo's
        // COMPATIBLE is DIRECT only where a group lists it.
        var target = rejectNames.contains(leaf) ? "REJECT" : leaf
        var rule = "\(decision.rule) → \(decision.target)"
        if let down = path.first(where: { groups.unavailable[$0] != nil }) {
            rule += " (group \(down) unavailable)"
        } else if leaf == ProxyGroup.pass {
            target = "REJECT"
            rule += " (PASS in a group is not supported)"
        } else if leaf == ProxyGroup.compatible {
            target = "DIRECT"
        }
        return (
            RuleDecision(target: target, rule: rule, condition: decision.condition),
            RouteFacts(condition: decision.condition, chains: path.reversed())
        )
    }

    /// Cached UDP routes are valid while this is unchanged (and the table is the same).
    var groupGeneration: UInt64 { groups?.generation.load(ordering: .relaxed) ?? 0 }
}

/// Reads packets from the TUN and hands each to its path: TCP is NATed to the local
/// listener (the kernel terminates it), UDP goes to full-cone flows, ICMP echo to the
/// forwarder. Rules are evaluated once per new flow, never per packet.
final class PacketDispatcher: @unchecked Sendable {
    /// Addresses of the "system" stack for one family: the listener lives on the TUN's own
    /// address, NATed connections appear to come from the next address in its subnet.
    struct StackAddresses {
        var listener: InetEndpoint
        var fakeClient: IPAddress
    }

    private let tun: TunWriter
    private let logger: Logger
    private let nat: TCPNATTable
    private let udp: UDPFlowTable
    private let icmp: ICMPForwarder
    private let dns: DNSPeer
    private let resolver: NameResolver
    /// The kernel's socket tables, for `UID` rules (nil if NETLINK_SOCK_DIAG is unavailable).
    private let socketOwners = try? SocketOwners()
    /// sluiced, for process lookups.
    private let supervisor: SupervisorLink?
    let table: Locked<RoutingTable>
    private let v4: StackAddresses?
    private let v6: StackAddresses?
    private let stopping = Atomic<Bool>(false)
    private let bufferSize: Int
    /// A (client, destination) → route cache for UDP so that a stream of datagrams does not
    /// re-run the rules or look up the outbound. An entry is valid only for the routing
    /// table it was made with: a reload makes every pair decide again. Only the reader
    /// thread touches it.
    private var udpRoutes: [UDPPair: UDPRoute] = [:]

    private struct UDPRoute {
        var table: ObjectIdentifier
        var groupGeneration: UInt64
        var disposition: Disposition
        var outbound: (any Outbound)?
        /// The name behind a fake destination, or a local proxy client's name destination: the datagrams go to
        /// its real address (or, through a proxy that takes names, to the name).
        var name: String?
        /// Replies come back from the destination the client sent to (a fake address), not the name's real one.
        var seenAsDestination = false
        /// What the connections list shows for a flow this pair starts.
        var facts: ConnectionFacts

        /// Whether it still holds for `current` (same table, same group choices).
        func holds(for current: RoutingTable) -> Bool {
            table == ObjectIdentifier(current) && groupGeneration == current.groupGeneration
        }
    }
    private var warnedTargets: Set<String> = []
    private var warnedICMP: Set<Bool> = []

    private struct UDPPair: Hashable {
        var client: InetEndpoint
        var destination: InetEndpoint
    }

    let packets = Atomic<UInt64>(0)
    let fragmentsDropped = Atomic<UInt64>(0)
    let malformedDropped = Atomic<UInt64>(0)
    let rejected = Atomic<UInt64>(0)
    let tcpFlows = Atomic<UInt64>(0)
    /// SYNs refused because `limits.max-connections` connections were established.
    let refusedAtLimit = Atomic<UInt64>(0)
    /// Half-open entries pushed out at the limit to make room for new SYNs.
    let halfOpenEvicted = Atomic<UInt64>(0)
    private let limitRefusals: LimitWarning
    private let evictions: LimitWarning
    private let portsExhausted: LimitWarning
    /// Reads that were TCP super-packets (segmentation offload at work).
    let superPackets = Atomic<UInt64>(0)

    init(
        tun: TunWriter, mtu: Int, v4: StackAddresses?, v6: StackAddresses?, nat: TCPNATTable, udp: UDPFlowTable,
        icmp: ICMPForwarder, dns: DNSPeer, resolver: NameResolver, supervisor: SupervisorLink?, table: RoutingTable,
        logger: Logger
    ) {
        self.supervisor = supervisor
        self.dns = dns
        self.resolver = resolver
        self.tun = tun
        // With a virtio-net header (tun.gso) a read may be a 64 KiB TCP super-packet.
        self.bufferSize = tun.vnetHeader ? VirtioNetHeader.size + 65536 + 64 : max(mtu, 1500) + 64
        self.v4 = v4
        self.v6 = v6
        self.nat = nat
        self.udp = udp
        self.icmp = icmp
        self.table = Locked(table)
        self.logger = logger
        limitRefusals = LimitWarning(logger: logger)
        evictions = LimitWarning(logger: logger)
        portsExhausted = LimitWarning(logger: logger)
    }

    func stop() { stopping.store(true, ordering: .relaxed) }

    /// The read loop; runs on its own thread until ``stop()``.
    func run() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: 1600, alignment: 16)
        defer {
            buffer.deallocate()
            reply.deallocate()
        }
        // The TUN first, then the raw ICMP sockets whose echo replies this thread writes back (ICMPForwarder).
        let icmpDescriptors = icmp.descriptors
        var pfds = ([tun.fd] + icmpDescriptors).map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        var sinceICMP = 0
        var lastSweep = MonotonicClock.now
        let headerSize = tun.vnetHeader ? VirtioNetHeader.size : 0
        while !stopping.load(ordering: .relaxed) {
            let n = csluice_read(tun.fd, buffer.baseAddress, buffer.count)
            if n > headerSize {
                packets.add(1, ordering: .relaxed)
                // The packet follows its header in the buffer, so that a packet rewritten in place goes back out
                // with the header it came with (``write(_:)``).
                var partialChecksum = false
                if headerSize > 0, let header = VirtioNetHeader(UnsafeRawBufferPointer(buffer)) {
                    partialChecksum = header.needsChecksum
                    if header.isSegmented { superPackets.add(1, ordering: .relaxed) }
                }
                handle(
                    UnsafeMutableRawBufferPointer(rebasing: buffer[headerSize..<n]), partialChecksum: partialChecksum,
                    reply: reply)
                // A busy TUN never reaches poll(): look at the ICMP sockets now and then anyway.
                sinceICMP += 1
                if sinceICMP >= 64 {
                    sinceICMP = 0
                    for fd in icmpDescriptors { icmp.drain(fd) }
                }
                continue
            }
            if n > 0 {
                // Shorter than the virtio-net header: nothing to parse.
                malformedDropped.add(1, ordering: .relaxed)
                continue
            }
            if n == -EAGAIN {
                for i in pfds.indices { pfds[i].revents = 0 }
                if poll(&pfds, nfds_t(pfds.count), 500) > 0 {
                    for i in pfds.indices.dropFirst() where pfds[i].revents != 0 { icmp.drain(pfds[i].fd) }
                }
            } else if n < 0 && n != -EINTR {
                logger.error("reading the TUN device failed: \(SystemError("read", errno: Int32(-n))); the data plane stops")
                return
            }
            let now = MonotonicClock.now
            if now - lastSweep > 1_000_000_000 {
                lastSweep = now
                for gone in nat.collect(now: now) { released(gone, reply: reply) }
                if udpRoutes.count > 65536 { udpRoutes.removeAll(keepingCapacity: true) }
                icmp.sweep(now: now)
            }
        }
    }

    private func handle(_ raw: UnsafeMutableRawBufferPointer, partialChecksum: Bool, reply: UnsafeMutableRawBufferPointer) {
        guard var ip = IPPacketView(raw) else {
            malformedDropped.add(1, ordering: .relaxed)
            return
        }
        if ip.isFragment {
            // Reassembly is not implemented: count and drop (TCP never fragments here, the
            // kernel does PMTU discovery; large UDP datagrams do).
            fragmentsDropped.add(1, ordering: .relaxed)
            return
        }
        switch ip.transportProtocol {
        case IPProtocolNumber.tcp: handleTCP(&ip, partialChecksum: partialChecksum, reply: reply)
        case IPProtocolNumber.udp: handleUDP(ip, reply: reply)
        case IPProtocolNumber.icmp, IPProtocolNumber.icmpv6: handleICMP(ip, reply: reply)
        default: malformedDropped.add(1, ordering: .relaxed)
        }
    }

    // MARK: TCP

    private func handleTCP(_ ip: inout IPPacketView, partialChecksum: Bool, reply: UnsafeMutableRawBufferPointer) {
        guard let tcp = TCPHeaderView(ip), let stack = ip.version == 4 ? v4 : v6 else {
            malformedDropped.add(1, ordering: .relaxed)
            return
        }
        let ipv4 = ip.version == 4
        if ip.source == stack.listener.address && tcp.sourcePort == stack.listener.port
            && ip.destination == stack.fakeClient
        {
            // Listener → client: back to the original endpoints.
            guard let entry = nat.entry(port: tcp.destinationPort, ipv4: ipv4) else { return }
            if NATRewrite.rewrite(
                &ip, source: entry.key.destination, sourcePort: entry.key.destinationPort, destination: entry.key.source,
                destinationPort: entry.key.sourcePort, partialChecksum: partialChecksum)
            {
                write(ip)
            }
            return
        }
        let key = TCPNATTable.Key(
            source: ip.source, sourcePort: tcp.sourcePort, destination: ip.destination, destinationPort: tcp.destinationPort)
        var port = nat.port(for: key)
        if port != nil, tcp.flags.contains(.syn), !tcp.flags.contains(.ack), let gone = nat.releaseFinished(key) {
            released(gone, reply: reply)
            port = nil
        }
        if port == nil {
            guard tcp.flags.contains(.syn) && !tcp.flags.contains(.ack) else {
                // Mid-stream packet of a connection we do not know (e.g. from before a restart):
                // reset it so the client gives up at once instead of retransmitting.
                if !tcp.flags.contains(.rst) { sendReset(answering: ip, reply: reply) }
                return
            }
            guard nat.admitsNew else {
                // Every connection under the limit is established: refuse before deciding rules for it.
                refuseAtLimit(ip, tcp, reply: reply)
                return
            }
            let hijacked = dns.catches(udp: false, InetEndpoint(ip.destination, tcp.destinationPort))
            let fake = !hijacked && dns.isFake(ip.destination)
            let host = fake ? dns.name(forFake: ip.destination) : dns.name(forReal: ip.destination)
            var label = "tcp \(InetEndpoint(ip.source, tcp.sourcePort)) -> \(InetEndpoint(ip.destination, tcp.destinationPort))"
            if let host { label += " (\(host))" }
            if fake && host == nil {
                logger.warning(
                    "\(label): \(ip.destination) is a fake address that stands for no name (answered before the mapping was lost, or the dns worker is not answering); resetting, the client resolves again")
                rejected.add(1, ordering: .relaxed)
                sendReset(answering: ip, reply: reply)
                return
            }
            let current = table.withLock { $0 }
            if !hijacked && !fake, let sniffer = current.sniffer,
                sniffer.sniffs(
                    source: ip.source, destination: InetEndpoint(ip.destination, tcp.destinationPort), host: host,
                    now: MonotonicClock.now)
            {
                // The rules wait for the client's first bytes: NAT the SYN, the relay accepts,
                // sniffs and asks ``decideSniffed(natPort:ipv4:sniffed:timedOut:)``.
                port = settle(
                    nat.create(
                        key, decision: RuleDecision(target: "", rule: "sniffing"), host: host, sniff: true,
                        clientSequence: tcp.sequence, now: MonotonicClock.now), ip, tcp, label: label, reply: reply)
                guard port != nil else { return }
                tcpFlows.add(1, ordering: .relaxed)
            } else {
                var metadata = ConnectionMetadata(
                    network: .tcp, source: ip.source, sourcePort: tcp.sourcePort, destination: ip.destination,
                    destinationPort: tcp.destinationPort, host: host, destinationIsFake: fake)
                (metadata.uid, metadata.processPath) = owner(
                    tcp: true, InetEndpoint(ip.source, tcp.sourcePort), InetEndpoint(ip.destination, tcp.destinationPort),
                    current)
                var (decision, facts) =
                    hijacked
                    ? (RuleDecision(target: "DNS", rule: "dns-hijack"), RouteFacts(chains: ["DNS"]))
                    : current.settle(
                        current.rules.decide(metadata, resolve: resolveForRules), key: host ?? ip.destination.description,
                        source: ip.source.description)
                facts.processPath = metadata.processPath
                switch disposition(of: decision.target, in: current).0 {
                case .reject:
                    logger.info("\(label) [\(decision.rule)] REJECT")
                    rejected.add(1, ordering: .relaxed)
                    sendReset(answering: ip, reply: reply)
                    return
                case .drop:
                    logger.info("\(label) [\(decision.rule)] REJECT-DROP")
                    rejected.add(1, ordering: .relaxed)
                    return
                case .forward:
                    // Logged by ``admit(natPort:ipv4:)`` once the handshake completed: a flood of SYNs
                    // that never complete must not write a line each.
                    break
                }
                port = settle(
                    nat.create(
                        key, decision: decision, host: metadata.host, fake: fake, clientSequence: tcp.sequence,
                        route: facts, now: MonotonicClock.now), ip, tcp, label: label, reply: reply)
                guard port != nil else { return }
                if fake { dns.pin(ip.destination, true) }
                tcpFlows.add(1, ordering: .relaxed)
            }
        }
        guard let natPort = port else { return }
        let reset = tcp.flags.contains(.rst)
        if tcp.flags.contains(.fin) { nat.clientFinished(port: natPort, ipv4: ipv4, end: tcp.sequence &+ tcp.sequenceLength) }
        if NATRewrite.rewrite(
            &ip, source: stack.fakeClient, sourcePort: natPort, destination: stack.listener.address,
            destinationPort: stack.listener.port, partialChecksum: partialChecksum)
        {
            write(ip)
        }
        // A reset from the client: the listener forgets a connection it never completed, so
        // does the table (the relay's close takes care of accepted ones).
        if reset, let gone = nat.releaseHalfOpen(port: natPort, ipv4: ipv4) { natEntryGone(gone) }
    }

    /// A NAT entry left the table: the fake address it was made to no longer holds its name on its behalf.
    private func natEntryGone(_ key: TCPNATTable.Key) {
        if dns.isFake(key.destination) { dns.pin(key.destination, false) }
    }

    /// An entry left the table: its name is let go and the listener's side of its port reset (half-open, or in
    /// TIME_WAIT: ``TCPNATTable/Released``) before the port serves another client.
    private func released(_ gone: TCPNATTable.Released, reply: UnsafeMutableRawBufferPointer) {
        natEntryGone(gone.key)
        guard let sequence = gone.resetSequence, let stack = gone.ipv4 ? v4 : v6 else { return }
        let n = PacketBuilder.tcpReset(
            into: reply, source: stack.fakeClient, sourcePort: gone.port, destination: stack.listener.address,
            destinationPort: stack.listener.port, sequence: sequence, acknowledgment: nil)
        if n > 0 { tun.write(reply.baseAddress, n) }
    }

    /// The port of a new NAT entry, or nil when the SYN was refused (and answered with a reset).
    /// A half-open entry pushed out to make room has its listener side reset.
    private func settle(
        _ creation: TCPNATTable.Creation, _ ip: IPPacketView, _ tcp: TCPHeaderView, label: String,
        reply: UnsafeMutableRawBufferPointer
    ) -> UInt16? {
        if let evicted = creation.evicted { pushOut(evicted, reply: reply) }
        switch creation {
        case .created(let port, _), .existing(let port):
            return port
        case .atLimit:
            refuseAtLimit(ip, tcp, reply: reply)
        case .noPort:
            rejected.add(1, ordering: .relaxed)
            portsExhausted.hit { n in
                "\(label): refused with a reset: all 64,512 NAT ports of the family are in use (\(n) SYNs refused since the last line); connections finish and free them within 15 s"
            }
            sendReset(answering: ip, reply: reply)
        }
        return nil
    }

    /// `limits.max-connections` connections are established: the client gets a reset (a fast
    /// "connection refused"), the log one line per few seconds.
    private func refuseAtLimit(_ ip: IPPacketView, _ tcp: TCPHeaderView, reply: UnsafeMutableRawBufferPointer) {
        refusedAtLimit.add(1, ordering: .relaxed)
        rejected.add(1, ordering: .relaxed)
        let client = InetEndpoint(ip.source, tcp.sourcePort)
        let destination = InetEndpoint(ip.destination, tcp.destinationPort)
        limitRefusals.hit { [nat] n in
            "tcp \(client) -> \(destination): refused with a reset: limits.max-connections (\(nat.maxConnections)) connections are established (\(n) SYNs refused since the last line); raise limits.max-connections (each relayed connection holds up to 6 file descriptors)"
        }
        sendReset(answering: ip, reply: reply)
    }

    /// Resets the listener's side of a half-open entry pushed out of the NAT table (the
    /// sequence number the listener expects next), so that it neither completes a connection
    /// nobody can reach any more nor meets its NAT port's next owner.
    private func pushOut(_ evicted: TCPNATTable.Released, reply: UnsafeMutableRawBufferPointer) {
        halfOpenEvicted.add(1, ordering: .relaxed)
        released(evicted, reply: reply)
        evictions.hit { [nat] n in
            "tcp: limits.max-connections (\(nat.maxConnections)) reached: \(n) half-open connections (SYN seen, handshake never completed) pushed out for new SYNs since the last line, the latest from \(evicted.key.source) (a SYN flood, or clients that cannot be reached); established connections are not touched"
        }
    }

    /// Where a TCP connection accepted on the listener goes (relay loop thread): its route,
    /// or, for a connection whose rules wait for sniffing, what to sniff.
    func admit(natPort: UInt16, ipv4: Bool) -> TCPRelayLoop.Admission? {
        guard let entry = nat.entry(port: natPort, ipv4: ipv4) else { return nil }
        if entry.sniff {
            nat.markAccepted(port: natPort, ipv4: ipv4)
            guard let sniffer = table.withLock({ $0.sniffer }) else {
                // Reloaded without a sniffer meanwhile: decide now, without a name.
                return decideSniffed(natPort: natPort, ipv4: ipv4, sniffed: nil).map { .relay($0) }
            }
            return .sniff(kinds: sniffer.kinds)
        }
        nat.markAccepted(port: natPort, ipv4: ipv4)
        guard let route = route(entry) else { return nil }
        logger.info("\(route.label) [\(entry.decision.rule)] \(entry.decision.target)")
        return .relay(route)
    }

    /// The rules' decision for a sniffed connection (relay loop thread), with the name its
    /// first bytes gave (`sniffed`: the name and the sniffer that found it; nil when none did
    /// in time). Logs like a decision on the SYN. nil: rejected, or no outbound; the relay
    /// resets the client.
    func decideSniffed(natPort: UInt16, ipv4: Bool, sniffed: (name: String, kind: Sniffing.Kind)?, timedOut: Bool = false)
        -> TCPRelayLoop.Route?
    {
        guard let entry = nat.entry(port: natPort, ipv4: ipv4) else { return nil }
        let current = table.withLock { $0 }
        let destination = InetEndpoint(entry.key.destination, entry.key.destinationPort)
        if timedOut {
            current.sniffer?.failures.recordTimeout(destination, now: MonotonicClock.now)
        } else if sniffed != nil {
            current.sniffer?.failures.recordSuccess(destination)
        }
        let accepted = sniffed.flatMap { current.sniffer?.accept($0.name, kind: $0.kind) }
        let host = accepted?.name ?? entry.host
        var label = "tcp \(InetEndpoint(entry.key.source, entry.key.sourcePort)) -> \(destination)"
        if let host { label += " (\(host))" }
        var metadata = ConnectionMetadata(
            network: .tcp, source: entry.key.source, sourcePort: entry.key.sourcePort, destination: entry.key.destination,
            destinationPort: entry.key.destinationPort, host: host)
        (metadata.uid, metadata.processPath) = owner(
            tcp: true, InetEndpoint(entry.key.source, entry.key.sourcePort),
            InetEndpoint(entry.key.destination, entry.key.destinationPort), current)
        // A real destination: IP rules test it as it is, nothing is resolved here.
        var (decision, route) = current.settle(
            current.rules.decide(metadata), key: host ?? entry.key.destination.description, source: entry.key.source.description)
        route.processPath = metadata.processPath
        let outbound: (any Outbound)?
        switch decision.target {
        case "REJECT", "REJECT-DROP": outbound = nil
        default:
            outbound = current.outbounds[decision.target]
            if outbound == nil {
                logger.warning("\(label): rule target \"\(decision.target)\" names no proxy or group; rejected")
            }
        }
        guard let outbound else {
            // Accepted already: REJECT-DROP cannot drop a SYN any more, so it resets too.
            logger.info("\(label) [\(decision.rule)] \(decision.target)")
            rejected.add(1, ordering: .relaxed)
            return nil
        }
        logger.info("\(label) [\(decision.rule)] \(decision.target)")
        return TCPRelayLoop.Route(
            destination: destination, outbound: outbound, label: label,
            name: accepted.flatMap { $0.overrides ? $0.name : nil },
            facts: ConnectionFacts(
                network: .tcp, source: InetEndpoint(entry.key.source, entry.key.sourcePort), destination: destination,
                host: host, fake: entry.fake, sniffHost: accepted?.name, route: route))
    }

    /// Where a TCP connection decided on its SYN goes (relay loop thread).
    private func route(_ entry: TCPNATTable.Entry) -> TCPRelayLoop.Route? {
        // Relay thread: a plain lookup (disposition(of:in:) keeps reader-thread state).
        let target = entry.decision.target
        guard let outbound = target == "DNS" ? hijackOutbound : table.withLock({ $0.outbounds[target] }) else { return nil }
        var label = "tcp \(InetEndpoint(entry.key.source, entry.key.sourcePort)) -> \(InetEndpoint(entry.key.destination, entry.key.destinationPort))"
        if let host = entry.host { label += " (\(host))" }
        let destination = InetEndpoint(entry.key.destination, entry.key.destinationPort)
        return TCPRelayLoop.Route(
            destination: destination, outbound: outbound, label: label, name: entry.fake ? entry.host : nil,
            facts: ConnectionFacts(
                network: .tcp, source: InetEndpoint(entry.key.source, entry.key.sourcePort), destination: destination,
                host: entry.host, fake: entry.fake, route: entry.route))
    }

    private enum Disposition { case forward, reject, drop }

    /// Where hijacked TCP DNS goes: a session served by the dns worker.
    private var hijackOutbound: any Outbound { DNSOutbound(peer: dns) }

    /// What a rule target means in `table`: forward (with its outbound), reject or drop.
    /// Reader thread only (it remembers which unknown targets it warned about).
    /// IP rules on a fake-IP flow test the name's real addresses (unless `no-resolve`), as
    /// mihomo does: the engine asks at most once per decision, only when such a rule is
    /// reached. The reader thread waits for the dns worker (its cache answers repeats at
    /// once; a first lookup costs an upstream round trip, during which other packets wait)
    /// at most 150 ms; without an answer the IP rules do not match. `no-resolve` avoids it.
    private var resolveForRules: (String) -> [IPAddress] {
        { [resolver] name in resolver.resolveBlocking(name, ipv6: false, timeoutMilliseconds: 150).0 }
    }

    /// The owner of the local socket that sent a flow: its uid (`UID` rules: one netlink
    /// round trip, tens of microseconds) and its process's executable (`PROCESS-NAME`,
    /// `PROCESS-PATH`: sluiced scans /proc for the socket, as the worker may not; the reader
    /// waits at most 100 ms, typically a few). Looked up only when some rule tests them;
    /// flows from other machines have no owner.
    private func owner(tcp: Bool, _ local: InetEndpoint, _ remote: InetEndpoint, _ table: RoutingTable)
        -> (UInt32?, String?)
    {
        let rules = table.rules
        guard rules.usesUID || rules.usesProcess, let socketOwners,
            let owner = socketOwners.owner(tcp: tcp, local: local, remote: remote)
        else { return (nil, nil) }
        guard rules.usesProcess, let supervisor,
            case .processInfo(let found)? = supervisor.request(
                .processLookup(ProcessLookup(inode: owner.inode, uid: owner.uid)), timeoutMilliseconds: 100),
            found.pid != 0
        else { return (owner.uid, nil) }
        return (owner.uid, found.path)
    }

    private func disposition(of target: String, in table: RoutingTable) -> (Disposition, (any Outbound)?) {
        switch target {
        case "REJECT": return (.reject, nil)
        case "REJECT-DROP": return (.drop, nil)
        case "DNS": return (.forward, hijackOutbound)
        default:
            if let outbound = table.outbounds[target] { return (.forward, outbound) }
            if !warnedTargets.contains(target) {
                warnedTargets.insert(target)
                logger.warning(
                    "rule target \"\(target)\" names no proxy or group; its connections are rejected")
            }
            return (.reject, nil)
        }
    }

    // MARK: UDP

    private func handleUDP(_ ip: IPPacketView, reply: UnsafeMutableRawBufferPointer) {
        guard let udpHeader = UDPHeaderView(ip) else {
            malformedDropped.add(1, ordering: .relaxed)
            return
        }
        let client = InetEndpoint(ip.source, udpHeader.sourcePort)
        let destination = InetEndpoint(ip.destination, udpHeader.destinationPort)
        if dns.catches(udp: true, destination) {
            dns.sendUDP(client: client, server: destination, message: UnsafeRawBufferPointer(udpHeader.payload))
            return
        }
        let pair = UDPPair(client: client, destination: destination)
        let current = table.withLock { $0 }
        let route: UDPRoute
        if let cached = udpRoutes[pair], cached.holds(for: current) {
            route = cached
        } else {
            let fake = dns.isFake(ip.destination)
            let host = fake ? dns.name(forFake: ip.destination) : dns.name(forReal: ip.destination)
            var label = "udp \(client) -> \(destination)"
            if let host { label += " (\(host))" }
            let decision: RuleDecision
            var facts = RouteFacts()
            if fake && host == nil {
                logger.warning("\(label): \(ip.destination) is a fake address that stands for no name; refusing")
                decision = RuleDecision(target: "REJECT", rule: "unmapped fake address")
            } else {
                var metadata = ConnectionMetadata(
                    network: .udp, source: ip.source, sourcePort: udpHeader.sourcePort, destination: ip.destination,
                    destinationPort: udpHeader.destinationPort, host: host, destinationIsFake: fake)
                (metadata.uid, metadata.processPath) = owner(tcp: false, client, destination, current)
                (decision, facts) = current.settle(
                    current.rules.decide(metadata, resolve: resolveForRules), key: host ?? ip.destination.description,
                    source: ip.source.description)
                facts.processPath = metadata.processPath
            }
            var (disposition, outbound) = disposition(of: decision.target, in: current)
            if let reason = outbound?.udpUnsupportedReason {
                // mihomo would try the next rule; sluice's rule engine decides once.
                if !warnedTargets.contains("udp " + decision.target) {
                    warnedTargets.insert("udp " + decision.target)
                    logger.warning("UDP matched to \(decision.target) is refused: \(reason)")
                }
                (disposition, outbound) = (.reject, nil)
            }
            route = UDPRoute(
                table: ObjectIdentifier(current), groupGeneration: current.groupGeneration, disposition: disposition,
                outbound: outbound, name: fake ? host : nil, seenAsDestination: fake,
                facts: ConnectionFacts(
                    network: .udp, source: client, destination: destination, host: host, fake: fake, route: facts))
            udpRoutes[pair] = route
            logger.info("\(label) [\(decision.rule)] \(decision.target)")
        }
        switch route.disposition {
        case .reject:
            rejected.add(1, ordering: .relaxed)
            // Port unreachable: a connected UDP socket sees ECONNREFUSED at once.
            let n = PacketBuilder.icmpUnreachable(into: reply, answering: ip, reporter: ip.destination, code: ip.version == 4 ? 3 : 4)
            if n > 0 { tun.write(reply.baseAddress, n) }
        case .drop:
            rejected.add(1, ordering: .relaxed)
        case .forward:
            forward(UnsafeRawBufferPointer(udpHeader.payload), from: client, to: destination, route: route, via: nil)
        }
    }

    /// Sends one client datagram on its way through its route's outbound (any thread: the TUN reader's, or the UDP
    /// loop's for local proxy clients; `via` names the local port whose client it is, nil for the TUN's). A name
    /// goes to a proxy that takes names as it is (replies appear to come from `destination` when the client sent to
    /// a fake address); otherwise to the name's real address, for which the first datagrams wait (sent from the dns
    /// peer's thread when it arrives).
    private func forward(
        _ payload: UnsafeRawBufferPointer, from client: InetEndpoint, to destination: InetEndpoint, route: UDPRoute,
        via: Int?
    ) {
        guard let outbound = route.outbound else { return }
        let seenAs = route.seenAsDestination ? destination : nil
        guard let name = route.name else {
            udp.send(from: client, to: .endpoint(destination), payload: payload, outbound: outbound, facts: route.facts, via: via)
            return
        }
        if outbound.sendsNames {
            udp.send(
                from: client, to: .name(name, destination.port), seenAs: seenAs, payload: payload, outbound: outbound,
                facts: route.facts, via: via)
            return
        }
        let udp = self.udp
        let copy = Array(payload)
        let facts = route.facts
        let later: @Sendable (IPAddress) -> Void = { real in
            copy.withUnsafeBytes {
                udp.send(
                    from: client, to: .endpoint(InetEndpoint(real, destination.port)), seenAs: seenAs, payload: $0,
                    outbound: outbound, facts: facts, via: via)
            }
        }
        guard let real = dns.udpAddress(for: name, ipv6: !client.address.isIPv4, resolver: resolver, later: later) else {
            return
        }
        udp.send(
            from: client, to: .endpoint(InetEndpoint(real, destination.port)), seenAs: seenAs, payload: payload,
            outbound: outbound, facts: route.facts, via: via)
    }

    // MARK: Local proxy ports

    /// A local proxy client's request, from the relay loop (TCP) or the UDP loop (a SOCKS5 UDP ASSOCIATE datagram).
    struct LocalRequest {
        var network: ConnectionFacts.Network
        var client: InetEndpoint
        /// The address and port the client reached the local port at.
        var local: InetEndpoint
        var target: SocketEndpoint
        var listener: InboundConfiguration.Listener
        var kind: LocalProxyProtocol
        var user: String?
    }

    /// Where a local proxy client's connection or datagrams go.
    struct LocalRoute {
        /// nil: rejected.
        var outbound: (any Outbound)?
        /// The destination's address; for a name target a placeholder of the client's family that nothing dials.
        var destination: InetEndpoint
        /// The name to reach: the target's name, or the name behind a fake address.
        var name: String?
        var fake: Bool
        var label: String
        var facts: ConnectionFacts
    }

    /// The rules' decision for a local proxy client, as for the TUN's flows: the same rules, groups and outbounds;
    /// `proxy:` of a listener sends everything to that proxy. A name target is matched by name, and IP rules
    /// resolve it (unless `no-resolve`), as mihomo does. Any thread (it may wait for a lookup, so the relay loop
    /// calls it off its own thread).
    func decideLocal(_ r: LocalRequest) -> LocalRoute {
        let current = table.withLock { $0 }
        var address: IPAddress
        var host: String?
        var fake = false
        var byName = false
        switch r.target.host {
        case .address(let a): address = a.unmapped
        case .name(let n):
            if let a = IPAddress(n) {
                address = a.unmapped
            } else {
                address = r.client.address.isIPv4 ? .v4(IPv4Address(rawValue: 0)) : .v6(.any)
                host = n
                byName = true
            }
        }
        if !byName {
            fake = dns.isFake(address)
            host = fake ? dns.name(forFake: address) : dns.name(forReal: address)
        }
        let destination = InetEndpoint(address, r.target.port)
        var label = "\(r.network.rawValue) \(r.client) -> \(byName ? r.target.description : destination.description)"
        if let host, !byName { label += " (\(host))" }
        label += " via \(r.listener.name)"
        var facts = ConnectionFacts(
            network: r.network, source: r.client, destination: destination, host: host, fake: fake,
            inbound: LocalInboundFacts(type: r.kind.rawValue, name: r.listener.name, local: r.local, user: r.user))
        func rejected(_ rule: String) -> LocalRoute {
            self.rejected.add(1, ordering: .relaxed)
            logger.info("\(label) [\(rule)] REJECT")
            return LocalRoute(outbound: nil, destination: destination, name: host, fake: fake, label: label, facts: facts)
        }
        if fake && host == nil { return rejected("\(address) is a fake address that stands for no name") }
        var metadata = ConnectionMetadata(
            network: r.network == .tcp ? .tcp : .udp, source: r.client.address, sourcePort: r.client.port,
            destination: address, destinationPort: r.target.port, host: host, destinationIsFake: fake || byName)
        metadata.inbound = ConnectionMetadata.Inbound(
            type: r.kind.rawValue.uppercased(), name: r.listener.name, user: r.user, port: r.local.port)
        (metadata.uid, metadata.processPath) = owner(tcp: r.network == .tcp, r.client, r.local, current)
        let raw =
            r.listener.proxy.map { RuleDecision(target: $0, rule: "listener \(r.listener.name) proxy: \($0)") }
            ?? current.rules.decide(metadata, resolve: resolveForRules)
        var (decision, route) = current.settle(raw, key: host ?? address.description, source: r.client.address.description)
        route.processPath = metadata.processPath
        facts.route = route
        var outbound: (any Outbound)?
        switch decision.target {
        case "REJECT", "REJECT-DROP": break
        default:
            outbound = current.outbounds[decision.target]
            if outbound == nil {
                return rejected("\(decision.rule): target \"\(decision.target)\" names no proxy or group")
            }
        }
        if r.network == .udp, let reason = outbound?.udpUnsupportedReason {
            return rejected("\(decision.rule) → \(decision.target): UDP refused: \(reason)")
        }
        guard outbound != nil else { return rejected(decision.rule) }
        logger.info("\(label) [\(decision.rule)] \(decision.target)")
        return LocalRoute(
            outbound: outbound, destination: destination, name: fake || byName ? host : nil, fake: fake, label: label,
            facts: facts)
    }

    /// Routes of local proxy clients' UDP pairs (the UDP loop's thread only), valid like ``udpRoutes``.
    private var localUDPRoutes: [LocalPair: UDPRoute] = [:]

    private struct LocalPair: Hashable {
        var listener: Int
        var client: InetEndpoint
        var target: SocketEndpoint
    }

    /// One datagram a SOCKS5 UDP ASSOCIATE client sent to local port `listener` (the UDP loop's thread): decided
    /// once per (client, target) and routing table, then sent like the TUN's (replies go back to the client through
    /// the same port, with the SOCKS5 header).
    func handleLocalDatagram(
        listener index: Int, _ listener: InboundConfiguration.Listener, local: InetEndpoint, from client: InetEndpoint,
        to target: SocketEndpoint, payload: UnsafeRawBufferPointer, user: String?
    ) {
        let pair = LocalPair(listener: index, client: client, target: target)
        let current = table.withLock { $0 }
        let route: UDPRoute
        if let cached = localUDPRoutes[pair], cached.holds(for: current) {
            route = cached
        } else {
            let decided = decideLocal(
                LocalRequest(
                    network: .udp, client: client, local: local, target: target, listener: listener, kind: .socks5,
                    user: user))
            if localUDPRoutes.count > 65536 { localUDPRoutes.removeAll(keepingCapacity: true) }
            route = UDPRoute(
                table: ObjectIdentifier(current), groupGeneration: current.groupGeneration,
                disposition: decided.outbound == nil ? .reject : .forward, outbound: decided.outbound, name: decided.name,
                seenAsDestination: decided.fake, facts: decided.facts)
            localUDPRoutes[pair] = route
        }
        guard route.disposition == .forward else {
            udp.dropped.add(1, ordering: .relaxed)
            return
        }
        let destination = route.facts.destination
        forward(payload, from: client, to: destination, route: route, via: index)
    }

    // MARK: ICMP

    private func handleICMP(_ ip: IPPacketView, reply: UnsafeMutableRawBufferPointer) {
        guard let icmpHeader = ICMPHeaderView(ip) else { return }
        let ipv4 = ip.version == 4
        guard icmpHeader.type == (ipv4 ? 8 : 128) else { return }  // only echo requests are forwarded
        let metadata = ConnectionMetadata(
            network: .icmp, source: ip.source, sourcePort: 0, destination: ip.destination, destinationPort: 0)
        let current = table.withLock { $0 }
        let (decision, _) = current.settle(
            current.rules.decide(metadata), key: ip.destination.description, source: ip.source.description)
        var (disposition, outbound) = disposition(of: decision.target, in: current)
        if disposition == .forward && !(outbound is DirectOutbound) {
            // Echo cannot travel through a proxy; answering it here would pretend a path.
            disposition = .reject
        }
        switch disposition {
        case .reject:
            rejected.add(1, ordering: .relaxed)
            // Administratively prohibited: ping reports it immediately.
            let n = PacketBuilder.icmpUnreachable(into: reply, answering: ip, reporter: ip.destination, code: ipv4 ? 13 : 1)
            if n > 0 { tun.write(reply.baseAddress, n) }
        case .drop:
            rejected.add(1, ordering: .relaxed)
        case .forward:
            let sent = icmp.forward(
                client: ip.source, destination: ip.destination, identifier: icmpHeader.identifier,
                sequence: icmpHeader.sequence, payload: UnsafeRawBufferPointer(icmpHeader.payload))
            if !sent && !warnedICMP.contains(ipv4) {
                warnedICMP.insert(ipv4)
                logger.warning(
                    "cannot forward ICMP\(ipv4 ? "" : "v6") echo: no raw ICMP socket was handed over (sluiced needs CAP_NET_RAW to open it); pings through the TUN go unanswered")
            }
        }
    }

    // MARK: Writing

    /// Writes a packet read from the device and rewritten in place, with the virtio-net header it was read with
    /// (just in front of it in the read buffer): offload flags, segment size and checksum offsets still hold, as
    /// the rewrite changes no lengths.
    private func write(_ ip: IPPacketView) {
        guard tun.vnetHeader, let base = ip.bytes.baseAddress else {
            tun.write(ip.bytes.baseAddress, ip.bytes.count)
            return
        }
        tun.writeFramed(base - VirtioNetHeader.size, ip.bytes.count + VirtioNetHeader.size)
    }

    private func sendReset(answering ip: IPPacketView, reply: UnsafeMutableRawBufferPointer) {
        let n = PacketBuilder.tcpReset(into: reply, answering: ip)
        if n > 0 { tun.write(reply.baseAddress, n) }
    }
}
