import SluiceConfig
import SluiceNet
import SluiceRules
import SluiceSystem

/// UDP from the TUN: the route of a new (client, destination) pair, which the TUN reader caches while it holds.
extension FlowRouter {
    /// The route of a UDP pair's first datagram (TUN reader thread), decided with `current` (the table the caller
    /// caches it against). Logs the decision. A fake destination that stands for no name is refused.
    ///
    /// - Note: a rule that tests the process makes this wait for the lookup (up to 100 ms), as before: a datagram
    ///   flow has no accept to defer the decision to.
    package func judgeDatagram(client: InetEndpoint, destination: InetEndpoint, in current: RoutingTable)
        -> DatagramRoute
    {
        let fake = names.isFake(destination.address)
        let host = fake ? names.name(forFake: destination.address) : names.name(forReal: destination.address)
        var label = "udp \(client) -> \(destination)"
        if let host { label += " (\(host))" }
        let decision: RuleDecision
        var facts = RouteFacts()
        if fake && host == nil {
            logger.warning("\(label): \(destination.address) is a fake address that stands for no name; refusing")
            decision = RuleDecision(target: BuiltinTarget.reject.rawValue, rule: "unmapped fake address")
        } else {
            var metadata = ConnectionMetadata(
                network: .udp, source: client.address, sourcePort: client.port, destination: destination.address,
                destinationPort: destination.port, host: host, destinationIsFake: fake)
            (metadata.uid, metadata.processPath) = ownerFacts(tcp: false, client, destination, rules: current.rules)
            (decision, facts) = current.settle(
                current.rules.decide(metadata, resolve: resolveForRules), key: host ?? destination.address.description,
                source: client.address.description)
            facts.processPath = metadata.processPath
        }
        var (disposition, outbound) = disposition(of: decision.target, in: current)
        if let reason = outbound?.udpUnsupportedReason {
            // mihomo would try the next rule; sluice's rule engine decides once.
            warnOnce("udp " + decision.target) { "UDP matched to \(decision.target) is refused: \(reason)" }
            (disposition, outbound) = (.reject, nil)
        }
        logger.info("\(label) [\(decision.rule)] \(decision.target)")
        return DatagramRoute(
            table: ObjectIdentifier(current), groupGeneration: current.groupGeneration, disposition: disposition,
            outbound: outbound, name: fake ? host : nil, seenAsDestination: fake,
            facts: ConnectionFacts(
                network: .udp, source: client, destination: destination, host: host, fake: fake, route: facts))
    }
}
