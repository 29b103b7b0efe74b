import CSluice
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluicePacket
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `tun.dns-hijack`: DNS that enters the TUN for a matching destination is answered by the
/// dns worker, over the peer channel sluiced wires between the two workers.
///
/// UDP queries travel as `dnsPacket` frames and the answers are written back into the TUN
/// from the hijacked server address. TCP DNS is terminated like any other connection and
/// served by ``DNSOutbound``, which carries each length-prefixed message the same way.
/// While no dns worker is connected (it is off, or restarting) nothing is hijacked: the
/// query follows the rules like any other traffic, so DNS keeps working.
///
/// Queries addressed to the dns worker's own upstreams are never hijacked: they are the dns
/// worker's own forwarded queries, which would otherwise loop back to it whenever they
/// enter the TUN (sluiced run unprivileged, so no `uidrange` bypass rule).
public final class DNSHijacker: @unchecked Sendable {
    private let entries: [DNSHijack]
    private let upstreams: Set<InetEndpoint>
    private let tun: CInt
    private let logger: Logger
    private let peer = Mutex<FrameChannel?>(nil)
    private let waiters = Mutex<[UInt32: TCPWaiter]>([:])
    private let nextID = Atomic<UInt32>(1)
    let queries = Atomic<UInt64>(0)
    let answers = Atomic<UInt64>(0)

    /// One TCP query waiting for its answer.
    final class TCPWaiter: @unchecked Sendable {
        let ready = Mutex<[UInt8]?>(nil)
        /// An eventfd the answer's arrival is signalled on.
        let event: OwnedDescriptor?

        init() {
            let fd = csluice_eventfd()
            event = fd >= 0 ? OwnedDescriptor(takingOwnershipOfDescriptor: fd) : nil
        }
    }

    public init(entries: [DNSHijack], upstreams: Set<InetEndpoint> = [], tun: CInt, logger: Logger) {
        self.entries = entries
        self.upstreams = upstreams
        self.tun = tun
        self.logger = logger
    }

    var isEnabled: Bool { !entries.isEmpty }

    /// Whether DNS to `destination` over `udp` (or TCP) is hijacked right now.
    public func catches(udp: Bool, _ destination: InetEndpoint) -> Bool {
        guard isEnabled, !upstreams.contains(destination), peer.withLock({ $0 != nil }) else { return false }
        return entries.contains { entry in
            (entry.transport == .both || (entry.transport == .udp) == udp)
                && entry.port == destination.port
                && (entry.address == nil || entry.address == destination.address || entry.address.map(Self.isUnspecified) == true)
        }
    }

    private static func isUnspecified(_ address: IPAddress) -> Bool {
        switch address {
        case .v4(let a): a.rawValue == 0
        case .v6(let a): a.high == 0 && a.low == 0
        }
    }

    /// A (new) channel to the dns worker; answers are read on a thread of their own.
    public func attach(_ channel: FrameChannel) {
        let old = peer.withLock { current in
            defer { current = channel }
            return current
        }
        old?.close()
        _ = try? OSThread.start(name: "tun-dns-peer") { [self] in readAnswers(channel) }
    }

    public func detach() { peer.withLock { $0?.close(); $0 = nil } }

    /// Sends a hijacked UDP query (reader thread).
    func sendUDP(client: InetEndpoint, server: InetEndpoint, message: UnsafeRawBufferPointer) {
        let packet = DNSPacket(
            transport: .udp, client: client.address, clientPort: client.port, server: server.address,
            serverPort: server.port, message: Array(message.prefix(DNSPacket.maxMessageSize)))
        send(packet)
    }

    /// Asks the dns worker and waits for the answer (a TCP DNS session's thread).
    func queryTCP(server: InetEndpoint, message: [UInt8], timeoutMilliseconds: Int32 = 5000) -> [UInt8]? {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let waiter = TCPWaiter()
        waiters.withLock { $0[id] = waiter }
        defer { waiters.withLock { $0[id] = nil } }
        let unspecified: IPAddress = server.address.isIPv4 ? .v4(IPv4Address(rawValue: 0)) : .v6(IPv6Address(high: 0, low: 0))
        send(
            DNSPacket(
                transport: .tcp, client: unspecified, clientPort: 0, server: server.address, serverPort: server.port,
                message: message), requestID: id)
        guard let event = waiter.event,
            (try? Descriptors.waitReadable(event.rawValue, timeoutMilliseconds: timeoutMilliseconds)) == true
        else { return nil }
        return waiter.ready.withLock { $0 }
    }

    private func send(_ packet: DNSPacket, requestID: UInt32? = nil) {
        guard let channel = peer.withLock({ $0 }) else { return }
        let id = requestID ?? nextID.add(1, ordering: .relaxed).newValue
        do {
            try channel.send(.dnsPacket(packet), requestID: id)
            queries.add(1, ordering: .relaxed)
        } catch {
            logger.warning("dns-hijack: the dns worker's channel failed (\(error)); queries follow the rules until it is back")
            detach()
        }
    }

    private func readAnswers(_ channel: FrameChannel) {
        let packet = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536 + 64, alignment: 8)
        defer { packet.deallocate() }
        while true {
            let received: ReceivedFrame?
            do throws(IPCError) {
                received = try channel.receive(timeoutMilliseconds: -1)
            } catch {
                if error.code != .peerClosed { logger.warning("dns peer channel: \(error)") }
                peer.withLock { if $0 === channel { $0 = nil } }
                return
            }
            guard let received, received.header.isReply, case .dnsPacket(let answer)? = try? received.frame.message()
            else { continue }
            answers.add(1, ordering: .relaxed)
            switch answer.transport {
            case .udp:
                let length = answer.message.withUnsafeBytes {
                    PacketBuilder.udp(
                        into: packet, source: answer.server, sourcePort: answer.serverPort, destination: answer.client,
                        destinationPort: answer.clientPort, payload: $0)
                }
                if length > 0 { _ = csluice_write(tun, packet.baseAddress, length) }
            case .tcp:
                guard let waiter = waiters.withLock({ $0[received.header.requestID] }) else { continue }
                waiter.ready.withLock { $0 = answer.message }
                var one: UInt64 = 1
                if let event = waiter.event { _ = write(event.rawValue, &one, 8) }
            }
        }
    }
}

/// TCP DNS caught by `dns-hijack`: the relay connects the client to one end of a socket
/// pair; a thread on the other end reads each length-prefixed query (RFC 1035 4.2.2),
/// asks the dns worker and writes the answer back.
struct DNSOutbound: Outbound {
    let name = "DNS"
    let hijacker: DNSHijacker

    func openTCP(to destination: InetEndpoint) throws(SystemError) -> OwnedDescriptor {
        let (ours, theirs) = try UnixSocket.pair(.stream)
        try Descriptors.setNonBlocking(ours.rawValue)
        let session = theirs
        let hijacker = self.hijacker
        _ = try OSThread.start(name: "tun-dns-tcp") {
            defer { session.close() }
            let fd = session.rawValue
            while let lengthBytes = Self.readExactly(fd, 2) {
                let length = Int(lengthBytes[0]) << 8 | Int(lengthBytes[1])
                guard length >= 12, let query = Self.readExactly(fd, length),
                    let answer = hijacker.queryTCP(server: destination, message: query)
                else { return }
                let framed = [UInt8(answer.count >> 8), UInt8(answer.count & 0xFF)] + answer
                guard (try? Descriptors.writeAll(fd, framed)) != nil else { return }
            }
        }
        return ours
    }

    func openUDP(family: CInt) throws(SystemError) -> OwnedDescriptor {
        throw SystemError("DNS outbound carries TCP only", errno: EOPNOTSUPP)
    }

    private static func readExactly(_ fd: CInt, _ count: Int) -> [UInt8]? {
        var out: [UInt8] = []
        while out.count < count {
            guard let chunk = try? Descriptors.read(fd, maxBytes: count - out.count), !chunk.isEmpty else { return nil }
            out += chunk
        }
        return out
    }
}
