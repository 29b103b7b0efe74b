import SluiceNet
import SluicePacket
import SluiceRouting
import SluiceSystem

/// TCP from the TUN: a new flow's SYN is judged by the router and NATed to the local listener with the verdict; every
/// packet after it is rewritten both ways. The NAT table's limits (half-open entries pushed out, SYNs refused at
/// `max-connections`, NAT ports exhausted) are handled here, with their rate-limited log lines.
extension PacketDispatcher {
    func handleTCP(_ ip: inout IPPacketView, partialChecksum: Bool, reply: UnsafeMutableRawBufferPointer) {
        guard let tcp = TCPHeaderView(ip), let stack = ip.version == 4 ? v4 : v6 else {
            malformedDropped.add(1, ordering: .relaxed)
            return
        }
        let ipv4 = ip.version == 4
        if ip.source == stack.listener.address && tcp.sourcePort == stack.listener.port
            && ip.destination == stack.fakeClient
        {
            // Listener → client: back to the original endpoints.
            guard let entry = nat.entry(port: tcp.destinationPort, ipv4: ipv4) else { return }
            if NATRewrite.rewrite(
                &ip, source: entry.key.destination, sourcePort: entry.key.destinationPort,
                destination: entry.key.source,
                destinationPort: entry.key.sourcePort, partialChecksum: partialChecksum)
            {
                write(ip)
            }
            return
        }
        let key = TCPNATTable.Key(
            source: ip.source, sourcePort: tcp.sourcePort, destination: ip.destination,
            destinationPort: tcp.destinationPort)
        var port = nat.port(for: key)
        if port != nil, tcp.flags.contains(.syn), !tcp.flags.contains(.ack), let gone = nat.releaseFinished(key) {
            released(gone, reply: reply)
            port = nil
        }
        if port == nil {
            guard tcp.flags.contains(.syn) && !tcp.flags.contains(.ack) else {
                // Mid-stream packet of a connection we do not know (e.g. from before a restart):
                // reset it so the client gives up at once instead of retransmitting.
                if !tcp.flags.contains(.rst) { sendReset(answering: ip, reply: reply) }
                return
            }
            guard nat.admitsNew else {
                // Every connection under the limit is established: refuse before deciding rules for it.
                refuseAtLimit(ip, tcp, reply: reply)
                return
            }
            let client = InetEndpoint(ip.source, tcp.sourcePort)
            let destination = InetEndpoint(ip.destination, tcp.destinationPort)
            switch router.judgeSYN(source: client, destination: destination) {
            case .reset:
                sendReset(answering: ip, reply: reply)
                return
            case .drop:
                return
            case .admit(let verdict, let label, let pinsFake):
                port = settle(
                    nat.create(key, verdict: verdict, clientSequence: tcp.sequence, now: MonotonicClock.now), ip, tcp,
                    label: label, reply: reply)
                guard port != nil else { return }
                if pinsFake { dns.pin(ip.destination, true) }
                tcpFlows.add(1, ordering: .relaxed)
            }
        }
        guard let natPort = port else { return }
        let reset = tcp.flags.contains(.rst)
        if tcp.flags.contains(.fin) {
            nat.clientFinished(port: natPort, ipv4: ipv4, end: tcp.sequence &+ tcp.sequenceLength)
        }
        if NATRewrite.rewrite(
            &ip, source: stack.fakeClient, sourcePort: natPort, destination: stack.listener.address,
            destinationPort: stack.listener.port, partialChecksum: partialChecksum)
        {
            write(ip)
        }
        // A reset from the client: the listener forgets a connection it never completed, so
        // does the table (the relay's close takes care of accepted ones).
        if reset, let gone = nat.releaseHalfOpen(port: natPort, ipv4: ipv4) { natEntryGone(gone) }
    }

    /// A NAT entry left the table: the fake address it was made to no longer holds its name on its behalf.
    func natEntryGone(_ key: TCPNATTable.Key) {
        if dns.isFake(key.destination) { dns.pin(key.destination, false) }
    }

    /// An entry left the table: its name is let go and the listener's side of its port reset (half-open, or in
    /// TIME_WAIT: ``TCPNATTable/Released``) before the port serves another client.
    func released(_ gone: TCPNATTable.Released, reply: UnsafeMutableRawBufferPointer) {
        natEntryGone(gone.key)
        guard let sequence = gone.resetSequence, let stack = gone.ipv4 ? v4 : v6 else { return }
        let n = PacketBuilder.tcpReset(
            into: reply, source: stack.fakeClient, sourcePort: gone.port, destination: stack.listener.address,
            destinationPort: stack.listener.port, sequence: sequence, acknowledgment: nil)
        if n > 0 { tun.write(reply.baseAddress, n) }
    }

    /// The port of a new NAT entry, or nil when the SYN was refused (and answered with a reset).
    /// A half-open entry pushed out to make room has its listener side reset.
    func settle(
        _ creation: TCPNATTable.Creation, _ ip: IPPacketView, _ tcp: TCPHeaderView, label: String,
        reply: UnsafeMutableRawBufferPointer
    ) -> UInt16? {
        if let evicted = creation.evicted { pushOut(evicted, reply: reply) }
        switch creation {
        case .created(let port, _), .existing(let port):
            return port
        case .atLimit:
            refuseAtLimit(ip, tcp, reply: reply)
        case .noPort:
            rejected.add(1, ordering: .relaxed)
            portsExhausted.hit { n in
                "\(label): refused with a reset: all 64,512 NAT ports of the family are in use (\(n) SYNs refused since the last line); connections finish and free them within 15 s"
            }
            sendReset(answering: ip, reply: reply)
        }
        return nil
    }

    /// `limits.max-connections` connections are established: the client gets a reset (a fast
    /// "connection refused"), the log one line per few seconds.
    func refuseAtLimit(_ ip: IPPacketView, _ tcp: TCPHeaderView, reply: UnsafeMutableRawBufferPointer) {
        refusedAtLimit.add(1, ordering: .relaxed)
        rejected.add(1, ordering: .relaxed)
        let client = InetEndpoint(ip.source, tcp.sourcePort)
        let destination = InetEndpoint(ip.destination, tcp.destinationPort)
        limitRefusals.hit { [nat] n in
            "tcp \(client) -> \(destination): refused with a reset: limits.max-connections (\(nat.maxConnections)) connections are established (\(n) SYNs refused since the last line); raise limits.max-connections (each relayed connection holds up to 6 file descriptors)"
        }
        sendReset(answering: ip, reply: reply)
    }

    /// Resets the listener's side of a half-open entry pushed out of the NAT table (the
    /// sequence number the listener expects next), so that it neither completes a connection
    /// nobody can reach any more nor meets its NAT port's next owner.
    func pushOut(_ evicted: TCPNATTable.Released, reply: UnsafeMutableRawBufferPointer) {
        halfOpenEvicted.add(1, ordering: .relaxed)
        released(evicted, reply: reply)
        evictions.hit { [nat] n in
            "tcp: limits.max-connections (\(nat.maxConnections)) reached: \(n) half-open connections (SYN seen, handshake never completed) pushed out for new SYNs since the last line, the latest from \(evicted.key.source) (a SYN flood, or clients that cannot be reached); established connections are not touched"
        }
    }
}
