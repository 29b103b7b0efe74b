import SluiceNet
import SluicePacket
import SluiceRouting
import SluiceSystem

/// ICMP from the TUN: echo requests the router lets through go to the forwarder's raw sockets; others are answered
/// "administratively prohibited" or dropped.
extension PacketDispatcher {
    func handleICMP(_ ip: IPPacketView, reply: UnsafeMutableRawBufferPointer) {
        guard let icmpHeader = ICMPHeaderView(ip) else { return }
        let ipv4 = ip.version == 4
        guard icmpHeader.type == (ipv4 ? 8 : 128) else { return }  // only echo requests are forwarded
        let disposition = router.judgeEcho(source: ip.source, destination: ip.destination)
        switch disposition {
        case .reject:
            rejected.add(1, ordering: .relaxed)
            // Administratively prohibited: ping reports it immediately.
            let n = PacketBuilder.icmpUnreachable(
                into: reply, answering: ip, reporter: ip.destination, code: ipv4 ? 13 : 1)
            if n > 0 { tun.write(reply.baseAddress, n) }
        case .drop:
            rejected.add(1, ordering: .relaxed)
        case .forward:
            let sent = icmp.forward(
                client: ip.source, destination: ip.destination, identifier: icmpHeader.identifier,
                sequence: icmpHeader.sequence, payload: UnsafeRawBufferPointer(icmpHeader.payload))
            if !sent && !warnedICMP.contains(ipv4) {
                warnedICMP.insert(ipv4)
                logger.warning(
                    "cannot forward ICMP\(ipv4 ? "" : "v6") echo: no raw ICMP socket was handed over (sluiced needs CAP_NET_RAW to open it); pings through the TUN go unanswered"
                )
            }
        }
    }
}
