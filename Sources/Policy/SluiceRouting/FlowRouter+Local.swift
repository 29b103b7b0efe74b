import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluiceRules
import SluiceSystem

/// Local proxy ports: a SOCKS or HTTP client's request is routed like the TUN's flows (the same rules, groups and
/// outbounds); `proxy:` of a listener sends everything to that proxy.
extension FlowRouter {
    /// The route of a local proxy client's request. A name target is matched by name, and IP rules resolve it
    /// (unless `no-resolve`), as mihomo does. It may wait for a name or a process lookup: call it from a thread that
    /// may wait (the UDP loop), or use ``decideLocal(_:completion:)``.
    package func decideLocal(_ r: LocalRequest) -> LocalRoute {
        let current = self.current
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
            fake = names.isFake(address)
            host = fake ? names.name(forFake: address) : names.name(forReal: address)
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
            logger.info("\(label) [\(rule)] \(BuiltinTarget.reject.rawValue)")
            return LocalRoute(
                outbound: nil, destination: destination, name: host, fake: fake, label: label, facts: facts)
        }
        if fake && host == nil { return rejected("\(address) is a fake address that stands for no name") }
        var metadata = ConnectionMetadata(
            network: r.network == .tcp ? .tcp : .udp, source: r.client.address, sourcePort: r.client.port,
            destination: address, destinationPort: r.target.port, host: host, destinationIsFake: fake || byName)
        metadata.inbound = ConnectionMetadata.Inbound(
            type: r.kind.rawValue.uppercased(), name: r.listener.name, user: r.user, port: r.local.port)
        (metadata.uid, metadata.processPath) = ownerFacts(
            tcp: r.network == .tcp, r.client, r.local, rules: current.rules)
        let raw =
            r.listener.proxy.map { RuleDecision(target: $0, rule: "listener \(r.listener.name) proxy: \($0)") }
            ?? current.rules.decide(metadata, resolve: resolveForRules)
        var (decision, route) = current.settle(
            raw, key: host ?? address.description, source: r.client.address.description)
        route.processPath = metadata.processPath
        facts.route = route
        var outbound: (any Outbound)?
        switch current.meaning(of: decision.target) {
        case .reject, .drop: break
        case .outbound(let found): outbound = found
        case .dnsHijack, .unknown:
            return rejected("\(decision.rule): target \"\(decision.target)\" names no proxy or group")
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

    /// ``decideLocal(_:)`` on a lookup lane (it may wait for a name or a process): for the relay loop, which posts
    /// the completion back to its own thread.
    package func decideLocal(_ request: LocalRequest, completion: @escaping @Sendable (LocalRoute) -> Void) {
        owners.offload { [self] in completion(decideLocal(request)) }
    }
}
