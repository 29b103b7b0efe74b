import SluiceNet
import SluiceOutbounds
import SluicePacket
import SluiceRouting
import SluiceSystem

/// UDP from the TUN: hijacked DNS goes to the dns worker; every other datagram takes its pair's route (the router
/// decides a new pair once, the reader caches it) to a full-cone flow, or is refused with ICMP or dropped.
extension PacketDispatcher {
    func handleUDP(_ ip: IPPacketView, reply: UnsafeMutableRawBufferPointer) {
        guard let udpHeader = UDPHeaderView(ip) else {
            malformedDropped.add(1, ordering: .relaxed)
            return
        }
        let client = InetEndpoint(ip.source, udpHeader.sourcePort)
        let destination = InetEndpoint(ip.destination, udpHeader.destinationPort)
        if dns.catches(udp: true, destination) {
            dns.sendUDP(client: client, server: destination, message: UnsafeRawBufferPointer(udpHeader.payload))
            return
        }
        let pair = UDPPair(client: client, destination: destination)
        let current = router.current
        let route: DatagramRoute
        if let cached = udpRoutes[pair], cached.holds(for: current) {
            route = cached
        } else {
            route = router.judgeDatagram(client: client, destination: destination, in: current)
            udpRoutes[pair] = route
        }
        switch route.disposition {
        case .reject:
            rejected.add(1, ordering: .relaxed)
            // Port unreachable: a connected UDP socket sees ECONNREFUSED at once.
            let n = PacketBuilder.icmpUnreachable(
                into: reply, answering: ip, reporter: ip.destination, code: ip.version == 4 ? 3 : 4)
            if n > 0 { tun.write(reply.baseAddress, n) }
        case .drop:
            rejected.add(1, ordering: .relaxed)
        case .forward:
            forward(UnsafeRawBufferPointer(udpHeader.payload), from: client, to: destination, route: route, via: nil)
        }
    }

    /// Sends one client datagram on its way through its route's outbound (any thread: the TUN reader's, or the UDP
    /// loop's for local proxy clients; `via` names the local port whose client it is, nil for the TUN's). A name
    /// goes to a proxy that takes names as it is (replies appear to come from `destination` when the client sent to
    /// a fake address); otherwise to the name's real address, for which the first datagrams wait (sent from the dns
    /// peer's thread when it arrives).
    func forward(
        _ payload: UnsafeRawBufferPointer, from client: InetEndpoint, to destination: InetEndpoint,
        route: DatagramRoute,
        via: Int?
    ) {
        guard let outbound = route.outbound else { return }
        let seenAs = route.seenAsDestination ? destination : nil
        guard let name = route.name else {
            udp.send(
                from: client, to: .endpoint(destination), payload: payload, outbound: outbound, facts: route.facts,
                via: via)
            return
        }
        if outbound.sendsNames {
            udp.send(
                from: client, to: .name(name, destination.port), seenAs: seenAs, payload: payload, outbound: outbound,
                facts: route.facts, via: via)
            return
        }
        let udp = self.udp
        let copy = Array(payload)
        let facts = route.facts
        let later: @Sendable (IPAddress) -> Void = { real in
            copy.withUnsafeBytes {
                udp.send(
                    from: client, to: .endpoint(InetEndpoint(real, destination.port)), seenAs: seenAs, payload: $0,
                    outbound: outbound, facts: facts, via: via)
            }
        }
        guard let real = dns.udpAddress(for: name, ipv6: !client.address.isIPv4, resolver: resolver, later: later)
        else {
            return
        }
        udp.send(
            from: client, to: .endpoint(InetEndpoint(real, destination.port)), seenAs: seenAs, payload: payload,
            outbound: outbound, facts: route.facts, via: via)
    }
}
