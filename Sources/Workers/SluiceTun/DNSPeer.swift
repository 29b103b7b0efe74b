import CSluice
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluicePacket
import SluiceRouting
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The tun worker's end of the channel to the dns worker, which sluiced wires (and rewires
/// after either restarts).
///
/// - `tun.dns-hijack`: DNS that enters the TUN for a matching destination is answered by
///   the dns worker. UDP queries travel as `dnsPacket` frames and the answers are written
///   back into the TUN from the hijacked server address; TCP DNS is terminated like any
///   other connection and served by ``DNSOutbound``. While no dns worker is connected
///   nothing is hijacked: the query follows the rules like any other traffic. Queries to
///   the dns worker's own upstreams are never hijacked (they would loop back to it).
/// - Fake IP: a mirror of the dns worker's mapping, fed by `mappingEvent`s, names the
///   destination of a new flow without a round trip; a miss asks (`fakeIPLookup`) with a
///   short timeout. Connections pin their fake address so it is not recycled under them,
///   and DIRECT connections to a fake address get the real one through `resolveRequest`.
/// - Real addresses that the dns worker answered (fake-ip filter, redir-host) are
///   remembered with their name too, so domain rules apply to them.
package final class DNSPeer: NameService, @unchecked Sendable {
    /// Real address → name entries remembered at most (then the oldest half goes).
    static let realNameLimit = 65536
    /// How long a new flow may wait for a fake address's name on a mirror miss.
    static let lookupTimeoutMilliseconds: Int32 = 300

    private let entries: [DNSHijack]
    private let upstreams: Set<InetEndpoint>
    /// The fake-IP ranges; empty when the dns worker hands out no fake addresses.
    package let fakeRanges: [IPPrefix]
    private let tun: TunWriter
    private let logger: Logger
    private let peer = Locked<FrameChannel?>(nil)
    /// Requests waiting for a reply: the channel they went out on, and who wants the answer.
    private let replies = Locked<[UInt32: (channel: ObjectIdentifier, callback: @Sendable (Message?) -> Void)]>([:])
    private let nextID = Atomic<UInt32>(1)
    private let fakeNames = Locked<[IPAddress: String]>([:])
    /// Real addresses of fake-IP names for UDP flows: ("4 name" or "6 name") → address and
    /// expiry; expiry 0 means the lookup is in flight and `waiting` datagrams want it.
    private let resolvedForUDP = Locked<
        [String: (address: IPAddress?, expiresAt: UInt64, waiting: [@Sendable (IPAddress) -> Void])]
    >([:])
    private let realNames = Locked<(names: [IPAddress: String], order: [IPAddress])>(([:], []))
    let queries = Atomic<UInt64>(0)
    let answers = Atomic<UInt64>(0)
    let lookups = Atomic<UInt64>(0)

    package init(
        entries: [DNSHijack], upstreams: Set<InetEndpoint> = [], fakeRanges: [IPPrefix] = [], tun: TunWriter,
        logger: Logger
    ) {
        self.entries = entries
        self.upstreams = upstreams
        self.fakeRanges = fakeRanges
        self.tun = tun
        self.logger = logger
    }

    package var isConnected: Bool { peer.withLock { $0 != nil } }

    // MARK: Hijacking

    /// Whether DNS to `destination` over `udp` (or TCP) is hijacked right now.
    package func catches(udp: Bool, _ destination: InetEndpoint) -> Bool {
        guard !entries.isEmpty, !upstreams.contains(destination), isConnected else { return false }
        return entries.contains { entry in
            (entry.transport == .both || (entry.transport == .udp) == udp)
                && entry.port == destination.port
                && (entry.address == nil || entry.address == destination.address
                    || entry.address.map(Self.isUnspecified) == true)
        }
    }

    private static func isUnspecified(_ address: IPAddress) -> Bool {
        switch address {
        case .v4(let a): a.rawValue == 0
        case .v6(let a): a.high == 0 && a.low == 0
        }
    }

    /// Sends a hijacked UDP query (reader thread); the answer is written into the TUN.
    func sendUDP(client: InetEndpoint, server: InetEndpoint, message: UnsafeRawBufferPointer) {
        let packet = DNSPacket(
            transport: .udp, client: client.address, clientPort: client.port, server: server.address,
            serverPort: server.port, message: Array(message.prefix(DNSPacket.maxMessageSize)))
        if send(.dnsPacket(packet), requestID: nextID.add(1, ordering: .relaxed).newValue) {
            queries.add(1, ordering: .relaxed)
        }
    }

    /// Asks the dns worker and waits for the answer (a TCP DNS session's thread).
    func queryTCP(server: InetEndpoint, message: [UInt8], timeoutMilliseconds: Int32 = 5000) -> [UInt8]? {
        let unspecified: IPAddress = server.address.isIPv4 ? .v4(IPv4Address(rawValue: 0)) : .v6(.any)
        let query = DNSPacket(
            transport: .tcp, client: unspecified, clientPort: 0, server: server.address, serverPort: server.port,
            message: message)
        queries.add(1, ordering: .relaxed)
        guard case .dnsPacket(let answer)? = request(.dnsPacket(query), timeoutMilliseconds: timeoutMilliseconds) else {
            return nil
        }
        return answer.message
    }

    // MARK: Fake IP

    /// Whether `address` lies in a fake-IP range.
    package func isFake(_ address: IPAddress) -> Bool {
        !fakeRanges.isEmpty && fakeRanges.contains { $0.contains(address) }
    }

    /// The name behind a fake address: the mirror, else a bounded wait for the dns worker.
    /// Nil when it is not mapped, or the dns worker does not answer in time.
    package func name(forFake address: IPAddress) -> String? {
        if let name = fakeNames.withLock({ $0[address] }) { return name }
        lookups.add(1, ordering: .relaxed)
        guard
            case .fakeIPAnswer(let answer)? = request(
                .fakeIPLookup(FakeIPLookup(address: address)), timeoutMilliseconds: Self.lookupTimeoutMilliseconds)
        else { return nil }
        if let name = answer.name { fakeNames.withLock { $0[address] = name } }
        return answer.name
    }

    /// The name the dns worker last answered with `address` (a real address).
    package func name(forReal address: IPAddress) -> String? {
        realNames.withLock { $0.names[address] }
    }

    /// A connection to a fake address started (true) or ended (false).
    func pin(_ address: IPAddress, _ pinned: Bool) {
        _ = send(.fakeIPPin(FakeIPPin(address: address, pinned: pinned)))
    }

    /// Resolves `name` to real addresses through the dns worker; `completion` runs once, on
    /// the channel's reader thread (or at once when no dns worker is connected).
    package func resolve(_ name: String, ipv6: Bool, completion: @escaping @Sendable ([IPAddress], String) -> Void) {
        request(.resolveRequest(ResolveRequest(name: name, ipv6: ipv6))) { reply in
            switch reply {
            case .resolveAnswer(let answer)?: completion(answer.addresses, answer.error)
            case .error(let report)?: completion([], report.message)
            default: completion([], "the dns worker is not connected")
            }
        }
    }

    /// A real address of `name` usable from a UDP socket of the client's family (v4 on a v4
    /// socket; v6, or v4-mapped, on a v6 one), from a small cache. On a miss the lookup
    /// starts, nil is returned, and `later` runs with the address once it is known (up to
    /// a few datagrams per name wait like this; more are dropped, as on any lossy path). Looked up with `resolver`
    /// (the dns worker while it is connected, else the system resolver).
    func udpAddress(
        for name: String, ipv6: Bool, resolver: NameResolver, later: @escaping @Sendable (IPAddress) -> Void
    ) -> IPAddress? {
        let now = MonotonicClock.now
        let key = ipv6 ? "6 " + name : "4 " + name
        let (cached, start) = resolvedForUDP.withLock { cache -> (IPAddress?, Bool) in
            if let entry = cache[key] {
                if entry.expiresAt > now { return (entry.address, false) }
                if entry.expiresAt == 0 {  // in flight
                    if entry.waiting.count < 8 { cache[key]!.waiting.append(later) }
                    return (nil, false)
                }
            }
            if cache.count > 4096 { cache = cache.filter { $0.value.expiresAt == 0 } }
            cache[key] = (nil, 0, [later])
            return (nil, true)
        }
        if start {
            resolver.resolve(name, ipv6: ipv6) { [self] addresses, _ in
                let usable =
                    addresses.first { $0.isIPv4 != ipv6 }
                    ?? (ipv6 ? addresses.first.map { $0.mapped(toIPv4: false) } : nil)
                // Failures are remembered briefly, answers for a minute.
                let life: UInt64 = usable == nil ? 2_000_000_000 : 60_000_000_000
                let waiting = resolvedForUDP.withLock { cache -> [@Sendable (IPAddress) -> Void] in
                    defer { cache[key] = (usable, MonotonicClock.now + life, []) }
                    return cache[key]?.waiting ?? []
                }
                if let usable { for send in waiting { send(usable) } }
            }
        }
        return cached
    }

    private func apply(_ event: MappingEvent) {
        if isFake(event.address) {
            fakeNames.withLock { names in
                switch event.kind {
                case .assigned: names[event.address] = event.name
                case .released: if names[event.address] == event.name { names[event.address] = nil }
                }
            }
        } else if event.kind == .assigned {
            realNames.withLock { s in
                if s.names.updateValue(event.name, forKey: event.address) == nil { s.order.append(event.address) }
                if s.order.count > Self.realNameLimit {
                    let old = s.order.prefix(Self.realNameLimit / 2)
                    for address in old { s.names[address] = nil }
                    s.order.removeFirst(old.count)
                }
            }
        }
    }

    // MARK: The channel

    /// A (new) channel to the dns worker; it is read on a thread of its own. The mirror
    /// starts over: the dns worker sends its whole mapping on connect.
    package func attach(_ channel: FrameChannel) {
        let old = peer.withLock { current in
            defer { current = channel }
            return current
        }
        old?.close()
        fakeNames.withLock { $0.removeAll() }
        do {
            try OSThread.detached(name: "tun-dns-peer") { [self] in read(channel) }
        } catch {
            logger.error("cannot start the dns peer reader: \(error); DNS hijack and fake-IP lookups are off")
            detach()
        }
    }

    package func detach() {
        peer.withLock {
            $0?.close()
            $0 = nil
        }
    }

    @discardableResult
    private func send(_ message: Message, requestID: UInt32 = 0, on given: FrameChannel? = nil) -> Bool {
        guard let channel = given ?? peer.withLock({ $0 }) else { return false }
        do {
            try channel.send(message, requestID: requestID)
            return true
        } catch {
            logger.warning("the dns worker's channel failed (\(error)); DNS follows the rules until it is back")
            peer.withLock { if $0 === channel { $0 = nil } }
            channel.close()
            return false
        }
    }

    /// Sends a request; `callback` gets the reply, or nil when it cannot be sent or the
    /// channel closes before the reply comes.
    private func request(_ message: Message, completion callback: @escaping @Sendable (Message?) -> Void) {
        guard let channel = peer.withLock({ $0 }) else {
            callback(nil)
            return
        }
        let id = nextID.add(1, ordering: .relaxed).newValue
        replies.withLock { $0[id] = (ObjectIdentifier(channel), callback) }
        if !send(message, requestID: id, on: channel), let waiter = replies.withLock({ $0.removeValue(forKey: id) }) {
            waiter.callback(nil)
        }
    }

    /// Sends a request and waits for its reply at most `timeoutMilliseconds`.
    private func request(_ message: Message, timeoutMilliseconds: Int32) -> Message? {
        let fd = csluice_eventfd()
        guard fd >= 0 else { return nil }
        let event = OwnedDescriptor(takingOwnershipOfDescriptor: fd)
        let box = Locked<Message?>(nil)
        let id = nextID.add(1, ordering: .relaxed).newValue
        guard let channel = peer.withLock({ $0 }) else { return nil }
        replies.withLock {
            $0[id] = (
                ObjectIdentifier(channel),
                { reply in
                    box.withLock { $0 = reply }
                    var one: UInt64 = 1
                    _ = write(fd, &one, 8)
                }
            )
        }
        defer { replies.withLock { $0[id] = nil } }
        guard send(message, requestID: id, on: channel),
            (try? Descriptors.waitReadable(event.rawValue, timeoutMilliseconds: timeoutMilliseconds)) == true
        else { return nil }
        return box.withLock { $0 }
    }

    private func read(_ channel: FrameChannel) {
        let packet = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536 + 64, alignment: 8)
        defer {
            packet.deallocate()
            // Whoever still waits for an answer on this channel gets none.
            let mine = ObjectIdentifier(channel)
            let waiting = replies.withLock { r -> [@Sendable (Message?) -> Void] in
                let ids = r.filter { $0.value.channel == mine }.map(\.key)
                return ids.compactMap { r.removeValue(forKey: $0)?.callback }
            }
            for waiter in waiting { waiter(nil) }
        }
        while true {
            let received: ReceivedFrame?
            do throws(IPCError) {
                received = try channel.receive(timeoutMilliseconds: -1)
            } catch {
                if error.code != .peerClosed { logger.warning("dns peer channel: \(error)") }
                peer.withLock { if $0 === channel { $0 = nil } }
                return
            }
            guard let received else { continue }
            let message: Message
            do throws(IPCError) {
                message = try received.frame.message()
            } catch {
                logger.warning("dns peer channel: \(error); frame ignored")
                continue
            }
            if case .mappingEvent(let event) = message {
                apply(event)
                continue
            }
            guard received.header.isReply else { continue }
            if case .dnsPacket(let answer) = message, answer.transport == .udp {
                answers.add(1, ordering: .relaxed)
                let length = answer.message.withUnsafeBytes {
                    PacketBuilder.udp(
                        into: packet, source: answer.server, sourcePort: answer.serverPort, destination: answer.client,
                        destinationPort: answer.clientPort, payload: $0)
                }
                if length > 0 { _ = tun.write(packet.baseAddress, length) }
                continue
            }
            if case .dnsPacket = message { answers.add(1, ordering: .relaxed) }
            let waiter = replies.withLock { $0.removeValue(forKey: received.header.requestID) }
            waiter?.callback(message)
        }
    }
}

/// TCP DNS caught by `dns-hijack`: the relay connects the client to one end of a socket
/// pair; a thread on the other end reads each length-prefixed query (RFC 1035 4.2.2),
/// asks the dns worker and writes the answer back.
struct DNSOutbound: Outbound {
    let name = BuiltinTarget.dns.rawValue
    let peer: DNSPeer

    var sendsNames: Bool { false }

    func planTCP(to target: FlowTarget) throws(OutboundError) -> TCPPlan { TCPPlan(hop: .endpoint(target.endpoint)) }

    /// The "connection" is one end of a socket pair (connected at once); a thread serves the other.
    func connectTCP(to destination: InetEndpoint) throws(SystemError) -> OwnedDescriptor {
        let (ours, theirs) = try UnixSocket.pair(.stream)
        try Descriptors.setNonBlocking(ours.rawValue)
        let session = theirs
        let peer = self.peer
        try OSThread.detached(name: "tun-dns-tcp") {
            defer { session.close() }
            let fd = session.rawValue
            while let lengthBytes = Self.readExactly(fd, 2) {
                let length = Int(lengthBytes[0]) << 8 | Int(lengthBytes[1])
                guard length >= 12, let query = Self.readExactly(fd, length),
                    let answer = peer.queryTCP(server: destination, message: query)
                else { return }
                let framed = [UInt8(answer.count >> 8), UInt8(answer.count & 0xFF)] + answer
                guard (try? Descriptors.writeAll(fd, framed)) != nil else { return }
            }
        }
        return ours
    }

    var udpUnsupportedReason: String? { "hijacked UDP DNS never reaches an outbound" }

    func openUDP(family: CInt) throws -> any UDPSession {
        throw OutboundError.udpUnsupported("the DNS outbound carries TCP only")
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

/// The router asks the peer which flows are hijacked DNS and which names stand behind their destinations.
extension DNSPeer: FlowNames {}
