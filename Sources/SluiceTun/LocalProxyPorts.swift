import SluiceConfig
import SluiceNet
import SluiceSystem

/// The local proxy ports' state shared by the tun worker's threads: their settings (swapped in place on a reload
/// that keeps the same sockets) and the live SOCKS5 UDP associations, which are what lets a client's datagrams
/// through a port's UDP socket (a client that has not authenticated on the TCP side sends nothing anywhere).
final class LocalProxyPorts: Sendable {
    private struct Key: Hashable {
        var listener: Int
        var address: IPAddress
    }

    private struct State {
        var settings: InboundConfiguration
        /// Live associations per (port, client address), with the user of the latest.
        var associations: [Key: (count: Int, user: String?)] = [:]
    }

    private let state: Locked<State>

    init(_ settings: InboundConfiguration) { state = Locked(State(settings: settings)) }

    var settings: InboundConfiguration {
        get { state.withLock { $0.settings } }
        set { state.withLock { $0.settings = newValue } }
    }

    /// Listener `index`'s settings, nil when a reload removed it.
    func listener(_ index: Int) -> InboundConfiguration.Listener? {
        state.withLock { $0.settings.listeners.indices.contains(index) ? $0.settings.listeners[index] : nil }
    }

    /// A client at `address` opened a UDP association on port `listener`.
    func associate(_ listener: Int, _ address: IPAddress, user: String?) {
        state.withLock { s in
            let key = Key(listener: listener, address: address.unmapped)
            s.associations[key] = ((s.associations[key]?.count ?? 0) + 1, user)
        }
    }

    /// Its TCP connection ended: the association is over.
    func dissociate(_ listener: Int, _ address: IPAddress) {
        state.withLock { s in
            let key = Key(listener: listener, address: address.unmapped)
            guard let current = s.associations[key] else { return }
            s.associations[key] = current.count > 1 ? (current.count - 1, current.user) : nil
        }
    }

    /// Whether a client at `address` holds an association on port `listener`, and as which user.
    func association(_ listener: Int, _ address: IPAddress) -> (user: String?, found: Bool) {
        state.withLock { s in
            guard let found = s.associations[Key(listener: listener, address: address.unmapped)] else { return (nil, false) }
            return (found.user, true)
        }
    }
}
