import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluiceRouting
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

    /// When a client at `address` holds an association on port `index`: that port's settings and the user it
    /// authenticated as (one lock per datagram); nil otherwise, or when a reload removed the port.
    func association(_ index: Int, _ address: IPAddress) -> (listener: InboundConfiguration.Listener, user: String?)? {
        state.withLock { s in
            guard s.settings.listeners.indices.contains(index),
                let found = s.associations[Key(listener: index, address: address.unmapped)]
            else { return nil }
            return (s.settings.listeners[index], found.user)
        }
    }
}
