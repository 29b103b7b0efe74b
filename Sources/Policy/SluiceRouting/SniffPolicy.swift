import SluiceConfig
import SluiceNet
import SluiceSniffing
import SluiceSystem

/// The `sniffer:` section as the data plane uses it: which new TCP connections wait for
/// their first bytes so that the rules see the name in them, and what a sniffed name may do.
/// Part of the ``RoutingTable`` (a reload replaces it).
package final class SniffPolicy: Sendable {
    package let configuration: SnifferConfiguration
    /// The sniffers tried on a connection's first bytes, TLS first.
    package let kinds: [Sniffing.Kind]
    /// Destinations whose sniffing timed out: after ``failureLimit`` timeouts within
    /// ``failureWindow`` their connections are decided at once, without waiting (mihomo keeps
    /// the same kind of list, so a server that speaks first costs the wait only a few times).
    package let failures = SniffFailures()
    /// How long the relay waits for a client's first bytes.
    package static let waitMilliseconds = 300

    package init?(_ configuration: SnifferConfiguration) {
        guard configuration.isActive else { return nil }
        self.configuration = configuration
        kinds = configuration.protocols.map { $0.kind == .tls ? .tls : .http }
    }

    /// Whether a new TCP connection to a real address waits for its first bytes. `host` is
    /// the name a DNS answer gave the destination, if any.
    package func sniffs(source: IPAddress, destination: InetEndpoint, host: String?, now: UInt64) -> Bool {
        guard configuration.protocolFor(port: destination.port) != nil else { return false }
        if let host {
            guard configuration.forceDNSMapping || configuration.forceDomain.contains(where: { $0.matches(host) })
            else {
                return false
            }
        } else if !configuration.parsePureIP {
            return false
        }
        if configuration.skipSourceAddress.contains(where: { $0.contains(source) }) { return false }
        if configuration.skipDestinationAddress.contains(where: { $0.contains(destination.address) }) { return false }
        return !failures.isSkipped(destination, now: now)
    }

    /// What the rules see of a sniff: the name, unless it is an IP literal or `skip-domain`
    /// matches; and whether it replaces the destination (`override-destination` of the
    /// protocol that found it).
    package func accept(_ name: String, kind: Sniffing.Kind) -> (name: String, overrides: Bool)? {
        guard IPAddress(name) == nil, !configuration.skipDomain.contains(where: { $0.matches(name) }) else {
            return nil
        }
        let wanted: SniffedProtocol.Kind = kind == .tls ? .tls : .http
        let overrides = configuration.protocols.first { $0.kind == wanted }?.overrideDestination ?? false
        return (name, overrides)
    }
}

/// Destinations whose clients did not speak within the wait (SMTP, SSH, ... servers speak
/// first): counted per destination, forgotten after ``window``. Bounded.
package final class SniffFailures: Sendable {
    package static let limit = 5
    package static let window: UInt64 = 600_000_000_000
    private static let capacity = 4096
    private let state = Locked<[InetEndpoint: (count: Int, since: UInt64)]>([:])

    package func isSkipped(_ destination: InetEndpoint, now: UInt64) -> Bool {
        state.withLock { table in
            guard let entry = table[destination] else { return false }
            if now > entry.since && now - entry.since > Self.window {
                table[destination] = nil
                return false
            }
            return entry.count >= Self.limit
        }
    }

    package func recordTimeout(_ destination: InetEndpoint, now: UInt64) {
        state.withLock { table in
            if table.count >= Self.capacity && table[destination] == nil { table.removeAll(keepingCapacity: true) }
            let old = table[destination]
            let fresh = old.map { now > $0.since && now - $0.since > Self.window } ?? true
            table[destination] = fresh ? (1, now) : (old!.count + 1, old!.since)
        }
    }

    package func recordSuccess(_ destination: InetEndpoint) {
        state.withLock { table in
            if table[destination] != nil { table[destination] = nil }
        }
    }
}
