import SluiceConfig
import SluiceNet
import SluiceSystem

/// What the rules decided about a flow, kept for the connections list: the rule as written in the config (before
/// any group was followed) and the outbounds that carry the flow.
package struct RouteFacts: Sendable, Equatable {
    /// The rule that decided (nil when none did: `no rule matched`, `mode direct`, dns-hijack; mihomo lists no
    /// rule for such a flow either).
    package var condition: RuleCondition?
    /// mihomo's order: the outbound that carries the flow first, then each group that led to it, outermost last.
    package var chains: [String] = []
    /// The executable of the local process that opened the flow, when a PROCESS rule looked it up.
    package var processPath: String?

    package init(condition: RuleCondition? = nil, chains: [String] = [], processPath: String? = nil) {
        self.condition = condition
        self.chains = chains
        self.processPath = processPath
    }
}

/// What the connections list says about one connection besides its counters; made once, when it is admitted.
package struct ConnectionFacts: Sendable, Equatable {
    package enum Network: String, Sendable {
        case tcp, udp
    }

    package var network: Network
    /// The client.
    package var source: InetEndpoint
    /// What the client dialled (possibly a fake address).
    package var destination: InetEndpoint
    /// The name behind the destination (fake-IP mapping, a DNS answer, or sniffed), nil when only the address is known.
    package var host: String?
    /// The destination is a fake address.
    package var fake = false
    /// The name sniffing found in the client's first bytes.
    package var sniffHost: String?
    /// The address sluice actually connected or sent to (the real address behind a fake one, the proxy server's),
    /// when known.
    package var remoteDestination: IPAddress?
    package var route = RouteFacts()
    /// The local proxy port it came in on; nil for the TUN's connections.
    package var inbound: LocalInboundFacts?

    package init(
        network: Network, source: InetEndpoint, destination: InetEndpoint, host: String? = nil, fake: Bool = false,
        sniffHost: String? = nil, remoteDestination: IPAddress? = nil, route: RouteFacts = RouteFacts(),
        inbound: LocalInboundFacts? = nil
    ) {
        self.network = network
        self.source = source
        self.destination = destination
        self.host = host
        self.fake = fake
        self.sniffHost = sniffHost
        self.remoteDestination = remoteDestination
        self.route = route
        self.inbound = inbound
    }
}

/// How a connection reached a local proxy port, for the connections list.
package struct LocalInboundFacts: Sendable, Equatable {
    /// mihomo's type: `Socks5`, `Socks4`, `HTTP`, `HTTPS` (an HTTP CONNECT).
    package var type: String
    /// `DEFAULT-MIXED`, `DEFAULT-SOCKS`, `DEFAULT-HTTP` or the listener's name.
    package var name: String
    /// The address and port the client connected to.
    package var local: InetEndpoint
    package var user: String?

    package init(type: String, name: String, local: InetEndpoint, user: String? = nil) {
        self.type = type
        self.name = name
        self.local = local
        self.user = user
    }
}
