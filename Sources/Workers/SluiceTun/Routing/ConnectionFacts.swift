import SluiceConfig
import SluiceNet
import SluiceSystem

/// What the rules decided about a flow, kept for the connections list: the rule as written in the config (before
/// any group was followed) and the outbounds that carry the flow.
struct RouteFacts: Sendable, Equatable {
    /// The rule that decided (nil when none did: `no rule matched`, `mode direct`, dns-hijack; mihomo lists no
    /// rule for such a flow either).
    var condition: RuleCondition?
    /// mihomo's order: the outbound that carries the flow first, then each group that led to it, outermost last.
    var chains: [String] = []
    /// The executable of the local process that opened the flow, when a PROCESS rule looked it up.
    var processPath: String?
}

/// What the connections list says about one connection besides its counters; made once, when it is admitted.
struct ConnectionFacts: Sendable, Equatable {
    enum Network: String, Sendable {
        case tcp, udp
    }

    var network: Network
    /// The client.
    var source: InetEndpoint
    /// What the client dialled (possibly a fake address).
    var destination: InetEndpoint
    /// The name behind the destination (fake-IP mapping, a DNS answer, or sniffed), nil when only the address is known.
    var host: String?
    /// The destination is a fake address.
    var fake = false
    /// The name sniffing found in the client's first bytes.
    var sniffHost: String?
    /// The address sluice actually connected or sent to (the real address behind a fake one, the proxy server's),
    /// when known.
    var remoteDestination: IPAddress?
    var route = RouteFacts()
    /// The local proxy port it came in on; nil for the TUN's connections.
    var inbound: LocalInboundFacts?
}

/// How a connection reached a local proxy port, for the connections list.
struct LocalInboundFacts: Sendable, Equatable {
    /// mihomo's type: `Socks5`, `Socks4`, `HTTP`, `HTTPS` (an HTTP CONNECT).
    var type: String
    /// `DEFAULT-MIXED`, `DEFAULT-SOCKS`, `DEFAULT-HTTP` or the listener's name.
    var name: String
    /// The address and port the client connected to.
    var local: InetEndpoint
    var user: String?
}
