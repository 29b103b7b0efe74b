import SluiceConfig
import SluiceInbounds
import SluiceNet
import SluiceOutbounds
import SluiceRules
import SluiceSniffing
import SluiceSystem

/// What the router said about a new TCP flow on its SYN, kept with the flow's NAT entry until the connection is
/// accepted: the packet path stores it and hands it back, and never looks inside.
package enum FlowVerdict: Sendable {
    /// Decided on the SYN.
    case routed(SettledFlow)
    /// Decided after accept: on the client's first bytes (sniffing), or once its process is known.
    case deferred(DeferredFlow)
}

/// A TCP flow whose route the rules decided on its SYN.
package struct SettledFlow: Sendable {
    package var decision: RuleDecision
    /// The name behind the destination (fake-IP mapping or a DNS answer).
    package var host: String?
    /// The destination is a fake address standing for `host`.
    package var fake: Bool
    /// The rule as written and the chain of outbounds, for the connections list.
    package var facts: RouteFacts

    package init(decision: RuleDecision, host: String? = nil, fake: Bool, facts: RouteFacts) {
        self.decision = decision
        self.host = host
        self.fake = fake
        self.facts = facts
    }
}

/// A TCP flow whose rules wait until it is accepted.
package struct DeferredFlow: Sendable {
    package var host: String?
    package var fake = false
    /// Its first bytes are sniffed for a name before the rules run.
    package var sniff = false
    /// DNS to a hijacked address: it goes to the dns worker whatever the rules say; deferred only to list its process.
    package var hijacked = false
    /// Its local socket, found on the SYN; the process behind it is looked up off the hot threads.
    package var owner: SocketOwner?
}

/// The router's answer to a SYN.
package enum SYNJudgement {
    /// NAT it with `verdict`. `label` names the flow in log lines; `pinsFake`: the destination is a fake address the
    /// DNS side must keep for it while its entry lives.
    case admit(FlowVerdict, label: String, pinsFake: Bool)
    /// Answer with a reset (REJECT, unknown target, unmapped fake address). Logged and counted.
    case reset
    /// Say nothing (REJECT-DROP). Logged and counted.
    case drop
}

/// What the relay does with a connection it accepted, by its verdict.
package enum Admission {
    /// Relay it.
    case relay(TCPRoute)
    /// Sniff its first bytes with `kinds` (at most ``SniffPolicy/waitMilliseconds``), then ask
    /// ``FlowRouter/decide(_:source:destination:sniffed:timedOut:later:)``.
    case sniff(DeferredFlow, kinds: [Sniffing.Kind])
    /// Ask ``FlowRouter/decide(_:source:destination:sniffed:timedOut:later:)`` now.
    case decide(DeferredFlow)
    /// Reset it (its outbound is gone: reloaded meanwhile).
    case refuse
}

/// The answer to a deferred flow.
package enum DeferredRoute {
    /// Decided at once: relay on `route`, or reset when nil.
    case now(TCPRoute?)
    /// A process lookup runs off the caller's thread; the completion gets the route.
    case later
}

/// Where an accepted TCP connection goes: what the relay dials and lists.
package struct TCPRoute: Sendable {
    package var destination: InetEndpoint
    package var outbound: any Outbound
    package var label: String
    /// Set when `destination` is a fake address (or a sniffed name overrides it): the name to reach. DIRECT
    /// connects to the name's real address (looked up first); proxies are sent the name.
    package var name: String?
    /// What the connections list shows for it (the dialled address is added at the dial).
    package var facts: ConnectionFacts
    /// Bytes for the destination before any the client sends from here on (a local proxy client's plain HTTP
    /// request, rewritten, and what it sent behind its request).
    package var upstream: [UInt8] = []

    package init(
        destination: InetEndpoint, outbound: any Outbound, label: String, name: String? = nil, facts: ConnectionFacts,
        upstream: [UInt8] = []
    ) {
        self.destination = destination
        self.outbound = outbound
        self.label = label
        self.name = name
        self.facts = facts
        self.upstream = upstream
    }
}

/// What happens to a flow's packets or datagrams.
package enum FlowDisposition: Equatable, Sendable {
    case forward
    /// Refused with an answer (ICMP unreachable, a reset).
    case reject
    /// Dropped silently.
    case drop
}

/// The route of a UDP pair (client, destination), or of a local proxy client's datagrams: decided once, cached by
/// the thread that sends them while it ``holds(for:)``.
package struct DatagramRoute {
    package var table: ObjectIdentifier
    package var groupGeneration: UInt64
    package var disposition: FlowDisposition
    package var outbound: (any Outbound)?
    /// The name behind a fake destination, or a local proxy client's name destination: the datagrams go to
    /// its real address (or, through a proxy that takes names, to the name).
    package var name: String?
    /// Replies come back from the destination the client sent to (a fake address), not the name's real one.
    package var seenAsDestination = false
    /// What the connections list shows for a flow this pair starts.
    package var facts: ConnectionFacts

    /// Whether it still holds for `current` (same table, same group choices).
    package func holds(for current: RoutingTable) -> Bool {
        table == ObjectIdentifier(current) && groupGeneration == current.groupGeneration
    }

    package init(
        table: ObjectIdentifier, groupGeneration: UInt64, disposition: FlowDisposition, outbound: (any Outbound)? = nil,
        name: String? = nil,
        seenAsDestination: Bool = false, facts: ConnectionFacts
    ) {
        self.table = table
        self.groupGeneration = groupGeneration
        self.disposition = disposition
        self.outbound = outbound
        self.name = name
        self.seenAsDestination = seenAsDestination
        self.facts = facts
    }
}

/// A local proxy client's request, from the relay loop (TCP) or the UDP loop (a SOCKS5 UDP ASSOCIATE datagram).
package struct LocalRequest: Sendable {
    package var network: ConnectionFacts.Network
    package var client: InetEndpoint
    /// The address and port the client reached the local port at.
    package var local: InetEndpoint
    package var target: SocketEndpoint
    package var listener: InboundConfiguration.Listener
    package var kind: LocalProxyProtocol
    package var user: String?

    package init(
        network: ConnectionFacts.Network, client: InetEndpoint, local: InetEndpoint, target: SocketEndpoint,
        listener: InboundConfiguration.Listener, kind: LocalProxyProtocol, user: String? = nil
    ) {
        self.network = network
        self.client = client
        self.local = local
        self.target = target
        self.listener = listener
        self.kind = kind
        self.user = user
    }
}

/// Where a local proxy client's connection or datagrams go.
package struct LocalRoute: Sendable {
    /// nil: rejected.
    package var outbound: (any Outbound)?
    /// The destination's address; for a name target a placeholder of the client's family that nothing dials.
    package var destination: InetEndpoint
    /// The name to reach: the target's name, or the name behind a fake address.
    package var name: String?
    package var fake: Bool
    package var label: String
    package var facts: ConnectionFacts
}
