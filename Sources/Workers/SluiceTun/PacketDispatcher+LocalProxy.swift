import SluiceConfig
import SluiceNet
import SluiceRouting
import SluiceSystem

/// A local proxy port's SOCKS5 UDP ASSOCIATE datagrams (the UDP loop's thread): routed by the router like a local
/// client's connection, once per (client, target) and routing table, then sent like the TUN's datagrams.
extension PacketDispatcher {
    /// One datagram a SOCKS5 UDP ASSOCIATE client sent to local port `listener` (the UDP loop's thread): decided
    /// once per (client, target) and routing table, then sent like the TUN's (replies go back to the client through
    /// the same port, with the SOCKS5 header).
    func handleLocalDatagram(
        listener index: Int, _ listener: InboundConfiguration.Listener, local: InetEndpoint, from client: InetEndpoint,
        to target: SocketEndpoint, payload: UnsafeRawBufferPointer, user: String?
    ) {
        let pair = LocalPair(listener: index, client: client, target: target)
        let current = router.current
        let route: DatagramRoute
        if let cached = localUDPRoutes[pair], cached.holds(for: current) {
            route = cached
        } else {
            let decided = router.decideLocal(
                LocalRequest(
                    network: .udp, client: client, local: local, target: target, listener: listener, kind: .socks5,
                    user: user))
            if localUDPRoutes.count > 65536 { localUDPRoutes.removeAll(keepingCapacity: true) }
            route = DatagramRoute(
                table: ObjectIdentifier(current), groupGeneration: current.groupGeneration,
                disposition: decided.outbound == nil ? .reject : .forward, outbound: decided.outbound,
                name: decided.name,
                seenAsDestination: decided.fake, facts: decided.facts)
            localUDPRoutes[pair] = route
        }
        guard route.disposition == .forward else {
            udp.dropped.add(1, ordering: .relaxed)
            return
        }
        let destination = route.facts.destination
        forward(payload, from: client, to: destination, route: route, via: index)
    }
}
