import CSluice
import SluiceNet
import SluiceRouting
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Accepting: the TUN's NATed connections (each goes where the router's verdict says: relayed, sniffed first, or
/// decided now) and the way out when descriptors run out.
extension TCPRelayLoop {
    /// The next connection waiting on `listener` (counted); nil when none is (or the descriptors ran out: one
    /// waiting connection was shed, see ``shedOneConnection(_:)``).
    func acceptNext(_ listener: CInt) -> (OwnedDescriptor, InetEndpoint)? {
        while true {
            do {
                guard let next = try InetSocket.accept(listener) else { return nil }
                accepted.add(1, ordering: .relaxed)
                return next
            } catch {
                if error.errno == ECONNABORTED { continue }
                if error.errno == EMFILE || error.errno == ENFILE {
                    shedOneConnection(listener)
                } else {
                    logger.warning("accept: \(error)")
                }
                return nil
            }
        }
    }

    /// Accepts every connection waiting on a TUN listener and goes on with each as the router says, by the verdict
    /// its SYN got (kept in its NAT entry, found by its peer port).
    func acceptAll(_ listener: CInt, ipv4: Bool) {
        while let (client, peer) = acceptNext(listener) {
            let origin = Origin.nat(port: peer.port, ipv4: ipv4)
            guard let entry = nat.entry(port: peer.port, ipv4: ipv4) else {
                // A connection the NAT does not know (a stale SYN after a restart): refuse.
                InetSocket.setResetOnClose(client.rawValue)
                failed.add(1, ordering: .relaxed)
                continue
            }
            nat.markAccepted(port: peer.port, ipv4: ipv4)
            let source = InetEndpoint(entry.key.source, entry.key.sourcePort)
            let destination = InetEndpoint(entry.key.destination, entry.key.destinationPort)
            switch router.admit(entry.verdict, source: source, destination: destination) {
            case .relay(let route):
                begin(client: client, origin: origin, route: route)
            case .sniff(let flow, let kinds):
                startSniffing(
                    DeferredClient(
                        client: client, natPort: peer.port, ipv4: ipv4, flow: flow, source: source,
                        destination: destination, kinds: kinds, deadline: MonotonicClock.now + Self.sniffWait))
            case .decide(let flow):
                decideDeferred(
                    DeferredClient(
                        client: client, natPort: peer.port, ipv4: ipv4, flow: flow, source: source,
                        destination: destination, kinds: [], deadline: 0),
                    sniffed: nil, timedOut: false)
            case .refuse:
                // Its outbound went away with a reload since the SYN.
                InetSocket.setResetOnClose(client.rawValue)
                client.close()
                failed.add(1, ordering: .relaxed)
                finish(origin)
            }
        }
    }

    /// Out of descriptors: the pending connection would keep the listener readable and
    /// the loop spinning. Free the spare descriptor, accept and reset the connection (the
    /// client sees a refusal at once), and take the spare back.
    func shedOneConnection(_ listener: CInt) {
        descriptorsExhausted.hit { n in
            "out of file descriptors (EMFILE): refusing new connections (\(n) refused since the last line); raise LimitNOFILE or lower the load"
        }
        spare?.close()
        if let (client, _) = try? InetSocket.accept(listener) {
            InetSocket.setResetOnClose(client.rawValue)
            client.close()
        }
        spare = try? InetSocket.udp(AF_INET)
        failed.add(1, ordering: .relaxed)
    }
}
