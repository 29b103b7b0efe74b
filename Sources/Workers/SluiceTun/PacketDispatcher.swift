import CSluice
import Logging
import SluiceNet
import SluiceOutbounds
import SluicePacket
import SluiceRouting
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Reads packets from the TUN and hands each to its path: TCP is NATed to the local
/// listener (the kernel terminates it; ``PacketDispatcher+TCP``), UDP goes to full-cone flows (``+UDP``), ICMP echo
/// to the forwarder (``+ICMP``); a local proxy port's SOCKS5 datagrams take the UDP path too (``+LocalProxy``).
/// The router judges each new flow, once, never per packet: the dispatcher only carries out its answers.
final class PacketDispatcher: @unchecked Sendable {
    /// Addresses of the "system" stack for one family: the listener lives on the TUN's own
    /// address, NATed connections appear to come from the next address in its subnet.
    struct StackAddresses {
        var listener: InetEndpoint
        var fakeClient: IPAddress
    }

    let tun: TunWriter
    let logger: Logger
    let nat: TCPNATTable
    let udp: UDPFlowTable
    let icmp: ICMPForwarder
    let dns: DNSPeer
    let resolver: NameResolver
    /// Judges new flows and holds the routing table.
    let router: FlowRouter
    let v4: StackAddresses?
    let v6: StackAddresses?
    private let stopping = Atomic<Bool>(false)
    private let bufferSize: Int
    /// A (client, destination) → route cache for UDP so that a stream of datagrams does not
    /// re-run the rules or look up the outbound. An entry is valid only for the routing
    /// table it was made with: a reload makes every pair decide again. Only the reader
    /// thread touches it.
    var udpRoutes: [UDPPair: DatagramRoute] = [:]
    /// Routes of local proxy clients' UDP pairs (the UDP loop's thread only), valid like ``udpRoutes``.
    var localUDPRoutes: [LocalPair: DatagramRoute] = [:]
    /// Families whose missing raw ICMP socket was warned about (reader thread only).
    var warnedICMP: Set<Bool> = []

    struct UDPPair: Hashable {
        var client: InetEndpoint
        var destination: InetEndpoint
    }

    struct LocalPair: Hashable {
        var listener: Int
        var client: InetEndpoint
        var target: SocketEndpoint
    }

    let packets = Atomic<UInt64>(0)
    let fragmentsDropped = Atomic<UInt64>(0)
    let malformedDropped = Atomic<UInt64>(0)
    let rejected = Atomic<UInt64>(0)
    let tcpFlows = Atomic<UInt64>(0)
    /// SYNs refused because `limits.max-connections` connections were established.
    let refusedAtLimit = Atomic<UInt64>(0)
    /// Half-open entries pushed out at the limit to make room for new SYNs.
    let halfOpenEvicted = Atomic<UInt64>(0)
    let limitRefusals: LimitWarning
    let evictions: LimitWarning
    let portsExhausted: LimitWarning
    /// Reads that were TCP super-packets (segmentation offload at work).
    let superPackets = Atomic<UInt64>(0)

    init(
        tun: TunWriter, mtu: Int, v4: StackAddresses?, v6: StackAddresses?, nat: TCPNATTable, udp: UDPFlowTable,
        icmp: ICMPForwarder, dns: DNSPeer, resolver: NameResolver, router: FlowRouter, logger: Logger
    ) {
        self.router = router
        self.dns = dns
        self.resolver = resolver
        self.tun = tun
        // With a virtio-net header (tun.gso) a read may be a 64 KiB TCP super-packet.
        self.bufferSize = tun.vnetHeader ? VirtioNetHeader.size + 65536 + 64 : max(mtu, 1500) + 64
        self.v4 = v4
        self.v6 = v6
        self.nat = nat
        self.udp = udp
        self.icmp = icmp
        self.logger = logger
        limitRefusals = LimitWarning(logger: logger)
        evictions = LimitWarning(logger: logger)
        portsExhausted = LimitWarning(logger: logger)
    }

    func stop() { stopping.store(true, ordering: .relaxed) }

    /// The read loop; runs on its own thread until ``stop()``.
    func run() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: 1600, alignment: 16)
        defer {
            buffer.deallocate()
            reply.deallocate()
        }
        // The TUN first, then the raw ICMP sockets whose echo replies this thread writes back (ICMPForwarder).
        let icmpDescriptors = icmp.descriptors
        var pfds = ([tun.fd] + icmpDescriptors).map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        var sinceICMP = 0
        var lastSweep = MonotonicClock.now
        let headerSize = tun.vnetHeader ? VirtioNetHeader.size : 0
        while !stopping.load(ordering: .relaxed) {
            let n = csluice_read(tun.fd, buffer.baseAddress, buffer.count)
            if n > headerSize {
                packets.add(1, ordering: .relaxed)
                // The packet follows its header in the buffer, so that a packet rewritten in place goes back out
                // with the header it came with (``write(_:)``).
                var partialChecksum = false
                if headerSize > 0, let header = VirtioNetHeader(UnsafeRawBufferPointer(buffer)) {
                    partialChecksum = header.needsChecksum
                    if header.isSegmented { superPackets.add(1, ordering: .relaxed) }
                }
                handle(
                    UnsafeMutableRawBufferPointer(rebasing: buffer[headerSize..<n]), partialChecksum: partialChecksum,
                    reply: reply)
                // A busy TUN never reaches poll(): look at the ICMP sockets now and then anyway.
                sinceICMP += 1
                if sinceICMP >= 64 {
                    sinceICMP = 0
                    for fd in icmpDescriptors { icmp.drain(fd) }
                }
                continue
            }
            if n > 0 {
                // Shorter than the virtio-net header: nothing to parse.
                malformedDropped.add(1, ordering: .relaxed)
                continue
            }
            if n == -EAGAIN {
                for i in pfds.indices { pfds[i].revents = 0 }
                if poll(&pfds, nfds_t(pfds.count), 500) > 0 {
                    for i in pfds.indices.dropFirst() where pfds[i].revents != 0 { icmp.drain(pfds[i].fd) }
                }
            } else if n < 0 && n != -EINTR {
                logger.error(
                    "reading the TUN device failed: \(SystemError("read", errno: Int32(-n))); the data plane stops")
                return
            }
            let now = MonotonicClock.now
            if now - lastSweep > 1_000_000_000 {
                lastSweep = now
                for gone in nat.collect(now: now) { released(gone, reply: reply) }
                if udpRoutes.count > 65536 { udpRoutes.removeAll(keepingCapacity: true) }
                icmp.sweep(now: now)
            }
        }
    }

    private func handle(
        _ raw: UnsafeMutableRawBufferPointer, partialChecksum: Bool, reply: UnsafeMutableRawBufferPointer
    ) {
        guard var ip = IPPacketView(raw) else {
            malformedDropped.add(1, ordering: .relaxed)
            return
        }
        if ip.isFragment {
            // Reassembly is not implemented: count and drop (TCP never fragments here, the
            // kernel does PMTU discovery; large UDP datagrams do).
            fragmentsDropped.add(1, ordering: .relaxed)
            return
        }
        switch ip.transportProtocol {
        case IPProtocolNumber.tcp: handleTCP(&ip, partialChecksum: partialChecksum, reply: reply)
        case IPProtocolNumber.udp: handleUDP(ip, reply: reply)
        case IPProtocolNumber.icmp, IPProtocolNumber.icmpv6: handleICMP(ip, reply: reply)
        default: malformedDropped.add(1, ordering: .relaxed)
        }
    }

    // MARK: Writing

    /// Writes a packet read from the device and rewritten in place, with the virtio-net header it was read with
    /// (just in front of it in the read buffer): offload flags, segment size and checksum offsets still hold, as
    /// the rewrite changes no lengths.
    func write(_ ip: IPPacketView) {
        guard tun.vnetHeader, let base = ip.bytes.baseAddress else {
            tun.write(ip.bytes.baseAddress, ip.bytes.count)
            return
        }
        tun.writeFramed(base - VirtioNetHeader.size, ip.bytes.count + VirtioNetHeader.size)
    }

    func sendReset(answering ip: IPPacketView, reply: UnsafeMutableRawBufferPointer) {
        let n = PacketBuilder.tcpReset(into: reply, answering: ip)
        if n > 0 { tun.write(reply.baseAddress, n) }
    }
}
