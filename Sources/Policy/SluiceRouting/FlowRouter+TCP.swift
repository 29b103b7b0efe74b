import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluiceRules
import SluiceSniffing
import SluiceSystem

/// TCP: the judgement on a SYN (TUN reader thread), the route of an accepted connection and of one whose rules
/// waited (relay loop thread).
extension FlowRouter {
    /// A new TCP flow `source` → `destination` on its SYN (TUN reader thread). It never waits for a process
    /// lookup: when a rule needs one, or the first bytes are to be sniffed, the flow is admitted and decided after
    /// accept. A REJECT-DROP or REJECT decided here answers the SYN itself (nothing, or a reset).
    package func judgeSYN(source: InetEndpoint, destination: InetEndpoint) -> SYNJudgement {
        let hijacked = names.catches(udp: false, destination)
        let fake = !hijacked && names.isFake(destination.address)
        let host = fake ? names.name(forFake: destination.address) : names.name(forReal: destination.address)
        var label = "tcp \(source) -> \(destination)"
        if let host { label += " (\(host))" }
        if fake && host == nil {
            logger.warning(
                "\(label): \(destination.address) is a fake address that stands for no name (answered before the mapping was lost, or the dns worker is not answering); resetting, the client resolves again"
            )
            rejected.add(1, ordering: .relaxed)
            return .reset
        }
        let current = self.current
        if !hijacked && !fake, let sniffer = current.sniffer,
            sniffer.sniffs(source: source.address, destination: destination, host: host, now: MonotonicClock.now)
        {
            // The rules wait for the client's first bytes: the relay accepts, sniffs and asks decide(...).
            return .admit(.deferred(DeferredFlow(host: host, sniff: true)), label: label, pinsFake: false)
        }
        let rules = current.rules
        var metadata = ConnectionMetadata(
            network: .tcp, source: source.address, sourcePort: source.port, destination: destination.address,
            destinationPort: destination.port, host: host, destinationIsFake: fake)
        if rules.usesUID || rules.usesProcess, let owner = owners.socket(tcp: true, local: source, remote: destination)
        {
            metadata.uid = owner.uid
            if rules.usesProcess && owners.findsProcesses {
                // The process is asked of sluiced, which may take up to 100 ms: not on this thread. A refusal that
                // no process rule can change still answers the SYN (a reset, or nothing); anything else is decided
                // after accept, like a sniffed connection, so that its process is listed with it.
                if !hijacked, let early = rules.decideBeforeProcess(metadata, resolve: resolveForRules),
                    current.groups?.contains(early.target) != true
                {
                    let target =
                        current.rejectNames.contains(early.target) ? BuiltinTarget.reject.rawValue : early.target
                    if let refusal = refusal(disposition(of: target, in: current).0, rule: early.rule, label: label) {
                        return refusal
                    }
                }
                return .admit(
                    .deferred(DeferredFlow(host: host, fake: fake, hijacked: hijacked, owner: owner)), label: label,
                    pinsFake: fake)
            }
        }
        let (decision, facts) =
            hijacked
            ? (
                RuleDecision(target: BuiltinTarget.dns.rawValue, rule: "dns-hijack"),
                RouteFacts(chains: [BuiltinTarget.dns.rawValue])
            )
            : current.settle(
                rules.decide(metadata, resolve: resolveForRules), key: host ?? destination.address.description,
                source: source.address.description)
        if let refusal = refusal(disposition(of: decision.target, in: current).0, rule: decision.rule, label: label) {
            return refusal
        }
        // Logged by admit(...) once the handshake completed: a flood of SYNs that never complete must not write a
        // line each.
        return .admit(
            .routed(SettledFlow(decision: decision, host: host, fake: fake, facts: facts)), label: label, pinsFake: fake
        )
    }

    /// The answer to a SYN that `disposition` refuses (logged and counted); nil when it is forwarded.
    private func refusal(_ disposition: FlowDisposition, rule: String, label: String) -> SYNJudgement? {
        switch disposition {
        case .reject:
            logger.info("\(label) [\(rule)] \(BuiltinTarget.reject.rawValue)")
            rejected.add(1, ordering: .relaxed)
            return .reset
        case .drop:
            logger.info("\(label) [\(rule)] \(BuiltinTarget.rejectDrop.rawValue)")
            rejected.add(1, ordering: .relaxed)
            return .drop
        case .forward:
            return nil
        }
    }

    /// A connection accepted on the listener (relay loop thread), by the verdict its SYN got.
    package func admit(_ verdict: FlowVerdict, source: InetEndpoint, destination: InetEndpoint) -> Admission {
        switch verdict {
        case .routed(let flow):
            let target = flow.decision.target
            let outbound = target == BuiltinTarget.dns.rawValue ? hijack : current.outbounds[target]
            guard let outbound else { return .refuse }
            var label = "tcp \(source) -> \(destination)"
            if let host = flow.host { label += " (\(host))" }
            logger.info("\(label) [\(flow.decision.rule)] \(target)")
            return .relay(
                TCPRoute(
                    destination: destination, outbound: outbound, label: label, name: flow.fake ? flow.host : nil,
                    facts: ConnectionFacts(
                        network: .tcp, source: source, destination: destination, host: flow.host, fake: flow.fake,
                        route: flow.facts)))
        case .deferred(let flow):
            // Reloaded without a sniffer meanwhile: decided now, without a name.
            if flow.sniff, let sniffer = current.sniffer { return .sniff(flow, kinds: sniffer.kinds) }
            return .decide(flow)
        }
    }

    /// The route of a connection whose rules waited (relay loop thread), with the name its first bytes gave
    /// (`sniffed`: the name and the sniffer that found it; nil when none did, or nothing was sniffed; `timedOut`:
    /// the client sent too little in time). Logs like a decision on the SYN. A nil route: rejected, or no outbound;
    /// the relay resets the client (REJECT-DROP cannot drop a SYN any more, so it resets too).
    ///
    /// When the rules need the owning process, the lookup runs on a lane and `later` gets the route there (the relay
    /// posts it to its own thread); otherwise the route comes back at once and `later` is not called.
    package func decide(
        _ flow: DeferredFlow, source: InetEndpoint, destination: InetEndpoint,
        sniffed: (name: String, kind: Sniffing.Kind)?, timedOut: Bool,
        later: @escaping @Sendable (TCPRoute?) -> Void
    ) -> DeferredRoute {
        let current = self.current
        if timedOut {
            current.sniffer?.failures.recordTimeout(destination, now: MonotonicClock.now)
        } else if sniffed != nil {
            current.sniffer?.failures.recordSuccess(destination)
        }
        let accepted = sniffed.flatMap { current.sniffer?.accept($0.name, kind: $0.kind) }
        let host = accepted?.name ?? flow.host
        var label = "tcp \(source) -> \(destination)"
        if let host { label += " (\(host))" }
        var metadata = ConnectionMetadata(
            network: .tcp, source: source.address, sourcePort: source.port, destination: destination.address,
            destinationPort: destination.port, host: host, destinationIsFake: flow.fake)
        let rules = current.rules
        let owner =
            flow.owner
            ?? (rules.usesUID || rules.usesProcess ? owners.socket(tcp: true, local: source, remote: destination) : nil)
        metadata.uid = owner?.uid
        let decided = Decided(
            flow: flow, source: source, destination: destination, label: label, host: host, accepted: accepted)
        guard let owner, rules.usesProcess, owners.findsProcesses else {
            return .now(route(decided, metadata, in: current))
        }
        let owners = self.owners
        let known = metadata
        owners.offload { [self] in
            var metadata = known
            metadata.processPath = owners.executable(of: owner)
            later(route(decided, metadata, in: current))
        }
        return .later
    }

    /// What a deferred decision carries from the relay's thread to where it finishes.
    private struct Decided: Sendable {
        package var flow: DeferredFlow
        package var source: InetEndpoint
        package var destination: InetEndpoint
        package var label: String
        package var host: String?
        package var accepted: (name: String, overrides: Bool)?
    }

    private func route(_ d: Decided, _ metadata: ConnectionMetadata, in current: RoutingTable) -> TCPRoute? {
        var (decision, facts) =
            d.flow.hijacked
            ? (
                RuleDecision(target: BuiltinTarget.dns.rawValue, rule: "dns-hijack"),
                RouteFacts(chains: [BuiltinTarget.dns.rawValue])
            )
            : current.settle(
                current.rules.decide(metadata, resolve: resolveForRules),
                key: d.host ?? d.destination.address.description,
                source: d.source.address.description)
        facts.processPath = metadata.processPath
        let outbound: (any Outbound)?
        switch current.meaning(of: decision.target) {
        case .reject, .drop: outbound = nil
        case .dnsHijack: outbound = hijack
        case .outbound(let found): outbound = found
        case .unknown:
            outbound = nil
            logger.warning("\(d.label): rule target \"\(decision.target)\" names no proxy or group; rejected")
        }
        logger.info("\(d.label) [\(decision.rule)] \(decision.target)")
        guard let outbound else {
            rejected.add(1, ordering: .relaxed)
            return nil
        }
        let name = d.accepted.flatMap { $0.overrides ? $0.name : nil } ?? (d.flow.fake ? d.host : nil)
        return TCPRoute(
            destination: d.destination, outbound: outbound, label: d.label, name: name,
            facts: ConnectionFacts(
                network: .tcp, source: d.source, destination: d.destination, host: d.host, fake: d.flow.fake,
                sniffHost: d.accepted?.name, route: facts))
    }
}
