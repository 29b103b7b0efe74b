import SluiceConfig
import SluiceInbounds
import SluiceNet
import SluiceSystem
import SluiceOutbounds
import SluiceRules
import SluiceSniffing

/// What the router said about a new TCP flow on its SYN, kept with the flow's NAT entry until the connection is
/// accepted: the packet path stores it and hands it back, and never looks inside.
enum FlowVerdict: Sendable {
    /// Decided on the SYN.
    case routed(SettledFlow)
    /// Decided after accept: on the client's first bytes (sniffing), or once its process is known.
    case deferred(DeferredFlow)
}

/// A TCP flow whose route the rules decided on its SYN.
struct SettledFlow: Sendable {
    var decision: RuleDecision
    /// The name behind the destination (fake-IP mapping or a DNS answer).
    var host: String?
    /// The destination is a fake address standing for `host`.
    var fake: Bool
    /// The rule as written and the chain of outbounds, for the connections list.
    var facts: RouteFacts
}

/// A TCP flow whose rules wait until it is accepted.
struct DeferredFlow: Sendable {
    var host: String?
    var fake = false
    /// Its first bytes are sniffed for a name before the rules run.
    var sniff = false
    /// DNS to a hijacked address: it goes to the dns worker whatever the rules say; deferred only to list its process.
    var hijacked = false
    /// Its local socket, found on the SYN; the process behind it is looked up off the hot threads.
    var owner: SocketOwner?
}

/// The router's answer to a SYN.
enum SYNJudgement {
    /// NAT it with `verdict`. `label` names the flow in log lines; `pinsFake`: the destination is a fake address the
    /// DNS side must keep for it while its entry lives.
    case admit(FlowVerdict, label: String, pinsFake: Bool)
    /// Answer with a reset (REJECT, unknown target, unmapped fake address). Logged and counted.
    case reset
    /// Say nothing (REJECT-DROP). Logged and counted.
    case drop
}

/// What the relay does with a connection it accepted, by its verdict.
enum Admission {
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
enum DeferredRoute {
    /// Decided at once: relay on `route`, or reset when nil.
    case now(TCPRoute?)
    /// A process lookup runs off the caller's thread; the completion gets the route.
    case later
}

/// Where an accepted TCP connection goes: what the relay dials and lists.
struct TCPRoute: Sendable {
    var destination: InetEndpoint
    var outbound: any Outbound
    var label: String
    /// Set when `destination` is a fake address (or a sniffed name overrides it): the name to reach. DIRECT
    /// connects to the name's real address (looked up first); proxies are sent the name.
    var name: String?
    /// What the connections list shows for it (the dialled address is added at the dial).
    var facts: ConnectionFacts
    /// Bytes for the destination before any the client sends from here on (a local proxy client's plain HTTP
    /// request, rewritten, and what it sent behind its request).
    var upstream: [UInt8] = []
}

/// What happens to a flow's packets or datagrams.
enum FlowDisposition: Equatable, Sendable {
    case forward
    /// Refused with an answer (ICMP unreachable, a reset).
    case reject
    /// Dropped silently.
    case drop
}

/// The route of a UDP pair (client, destination), or of a local proxy client's datagrams: decided once, cached by
/// the thread that sends them while it ``holds(for:)``.
struct DatagramRoute {
    var table: ObjectIdentifier
    var groupGeneration: UInt64
    var disposition: FlowDisposition
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

/// A local proxy client's request, from the relay loop (TCP) or the UDP loop (a SOCKS5 UDP ASSOCIATE datagram).
struct LocalRequest: Sendable {
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
struct LocalRoute: Sendable {
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
