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
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// UDP through the TUN with endpoint-independent ("full-cone") mapping.
///
/// Each client endpoint (address, port) gets one session per outbound (a plain socket for
/// DIRECT, a proxy's association otherwise), used for every destination it talks to:
/// remote servers all see the same source port, and a reply from any remote reaches the
/// client with that remote's own address as the source. Flows idle for `udp-timeout` are
/// closed; with the table nine tenths full (`limits.udp-max-flows`), those idle for a tenth of it.
final class UDPFlowTable: @unchecked Sendable {
    struct FlowKey: Hashable {
        var client: InetEndpoint
        var outbound: String
        /// The local proxy port whose SOCKS5 client this is (replies go back through its socket); nil: the TUN's.
        var via: Int?
    }

    /// A local proxy port's UDP socket (SOCKS5 UDP ASSOCIATE), polled by this loop.
    private struct LocalPort {
        let socket: OwnedDescriptor
        let index: Int
        /// Its bound address, for the rules and the connections list.
        let local: InetEndpoint
    }

    final class Flow: @unchecked Sendable {
        let key: FlowKey
        let session: any UDPSession
        let cookie: UInt64
        let lastActivity = Atomic<UInt64>(0)
        /// Set when the session could not be set up: the flow drops datagrams until the
        /// sweep removes it (a dead proxy is not asked again for every datagram).
        let failed = Atomic<Bool>(false)
        /// Real remote → the fake endpoint the client addressed it by (fake-IP flows), so
        /// replies come back from the address the client knows.
        let aliases = Locked<[InetEndpoint: InetEndpoint]>([:])
        /// Fake-IP flows through a proxy: (name, port) → the fake endpoint the client used.
        /// The proxy resolves the name, so the remote that answers is learned from the
        /// first reply on that port (`learned`, not pinned: the name holds the pin).
        let names = Locked<
            (
                byName: [DatagramAddress: InetEndpoint], recent: [UInt16: InetEndpoint],
                learned: [InetEndpoint: InetEndpoint]
            )
        >(
            ([:], [:], [:]))
        /// Its entry in the connections list (the first datagram's destination and rule).
        let tracked: TrackedConnection?
        init(key: FlowKey, session: any UDPSession, cookie: UInt64, tracked: TrackedConnection? = nil) {
            self.key = key
            self.session = session
            self.cookie = cookie
            self.tracked = tracked
        }
    }

    private let poll: EventPoll
    private let wakeup: OwnedDescriptor
    /// Cookies go in pairs: even for the session's socket, odd for its control connection.
    private let flows = Locked<(byKey: [FlowKey: Flow], byCookie: [UInt64: Flow], nextCookie: UInt64)>(([:], [:], 16))
    /// Flows taken out of the table whose session closes at the next sweep: a sender that
    /// found the flow just before must not write to a descriptor number reused meanwhile.
    private let retired = Locked<[Flow]>([])
    private let stopping = Atomic<Bool>(false)
    private let tun: TunWriter
    private let logger: Logger
    let idleTimeout: UInt64
    /// `limits.udp-max-flows`; a reload changes it in place.
    var maxFlows: Int {
        get { maxFlowsValue.load(ordering: .relaxed) }
        set { maxFlowsValue.store(max(1, newValue), ordering: .relaxed) }
    }
    private let maxFlowsValue: Atomic<Int>
    private let limitWarning: LimitWarning
    /// Told when a flow starts (true) or stops (false) using a fake address.
    let fakeAddressUse: (@Sendable (IPAddress, Bool) -> Void)?
    /// The connections list (external controller); nil in tests that need none.
    private let registry: ConnectionRegistry?
    /// Flows (by cookie) to close, asked from other threads; the loop closes them (``requestClose(_:)``).
    private let closeRequests = Locked<[UInt64]>([])
    /// Local proxy ports' UDP sockets by cookie (``localCookieBase`` + their index); set before ``run()``.
    private var localPorts: [UInt64: LocalPort] = [:]
    private static let localCookieBase: UInt64 = 1 << 62
    /// Who may send through the local ports (their associations).
    private let ports: LocalProxyPorts?
    /// Routes and sends one datagram a local port's client sent: (port index, its settings, its address, client,
    /// target, payload, user). Set once the dispatcher exists, before ``run()``.
    var localDatagram:
        (
            (
                Int, InboundConfiguration.Listener, InetEndpoint, InetEndpoint, SocketEndpoint, UnsafeRawBufferPointer,
                String?
            ) -> Void
        )?

    let datagramsOut = Atomic<UInt64>(0)
    let datagramsIn = Atomic<UInt64>(0)
    let dropped = Atomic<UInt64>(0)
    /// Datagrams dropped because they would have started a flow past `maxFlows`.
    let droppedAtLimit = Atomic<UInt64>(0)

    init(
        tun: TunWriter, idleTimeoutSeconds: Int, maxFlows: Int = 65536, logger: Logger,
        fakeAddressUse: (@Sendable (IPAddress, Bool) -> Void)? = nil, registry: ConnectionRegistry? = nil,
        ports: LocalProxyPorts? = nil
    ) throws(SystemError) {
        self.ports = ports
        self.fakeAddressUse = fakeAddressUse
        self.registry = registry
        self.poll = try EventPoll()
        self.wakeup = OwnedDescriptor(takingOwnershipOfDescriptor: try Posix.check("eventfd", csluice_eventfd()))
        self.tun = tun
        self.idleTimeout = UInt64(max(1, idleTimeoutSeconds)) * 1_000_000_000
        self.maxFlowsValue = Atomic(max(1, maxFlows))
        self.limitWarning = LimitWarning(logger: logger)
        self.logger = logger
        try poll.add(wakeup.rawValue, .readable, cookie: 1)
    }

    var count: Int { flows.withLock { $0.byKey.count } }

    /// Sends one client datagram to `destination` through `outbound` (the TUN reader thread,
    /// or the dns peer's for datagrams that waited for a fake name's address).
    /// `seenAs` is the fake endpoint the client sent to, when `destination` is its real
    /// endpoint or its name. `facts`: what the connections list shows for a flow this datagram starts (borrowed:
    /// copied only when a flow is made).
    func send(
        from client: InetEndpoint, to destination: DatagramAddress, seenAs: InetEndpoint? = nil,
        payload: UnsafeRawBufferPointer, outbound: any Outbound, facts: ConnectionFacts, via: Int? = nil
    ) {
        let key = FlowKey(client: client, outbound: outbound.name, via: via)
        let now = MonotonicClock.now
        let flow: Flow
        // Look up and stamp under one lock: the idle sweep decides under the same lock, so
        // it cannot close a socket between our lookup and our send.
        if let existing = flows.withLock({ s -> Flow? in
            let f = s.byKey[key]
            if let f, !f.failed.load(ordering: .relaxed) { f.lastActivity.store(now, ordering: .relaxed) }
            return f
        }) {
            flow = existing
        } else {
            let limit = maxFlows
            guard count < limit else {
                dropped.add(1, ordering: .relaxed)
                droppedAtLimit.add(1, ordering: .relaxed)
                limitWarning.hit { n in
                    "udp \(client) -> \(destination): dropped: limits.udp-max-flows (\(limit)) flows are open (\(n) datagrams of new flows dropped since the last line); flows idle for udp-timeout close, or raise limits.udp-max-flows"
                }
                return
            }
            do {
                let session = try outbound.openUDP(family: client.address.socketFamily)
                // Another thread (a datagram that waited for a fake name's address) may
                // have made this flow meanwhile: use that one.
                var made = false
                flow = flows.withLock { s in
                    if let existing = s.byKey[key] {
                        existing.lastActivity.store(now, ordering: .relaxed)
                        return existing
                    }
                    made = true
                    let cookie = s.nextCookie
                    var facts = facts
                    if case .endpoint(let remote) = destination { facts.remoteDestination = remote.address }
                    let tracked = registry?.register(facts) { [weak self] in self?.requestClose(cookie) }
                    let f = Flow(key: key, session: session, cookie: cookie, tracked: tracked)
                    f.lastActivity.store(now, ordering: .relaxed)
                    s.nextCookie += 2
                    s.byKey[key] = f
                    s.byCookie[f.cookie] = f
                    return f
                }
                if made {
                    let made = flow
                    session.start { [self] ok, problem in
                        activate(made, ok: ok, problem: problem, outbound: outbound.name)
                    }
                } else {
                    session.close()
                }
            } catch {
                dropped.add(1, ordering: .relaxed)
                logger.warning("UDP \(client) -> \(destination): \(outbound.name) failed: \(error)")
                return
            }
        }
        if flow.failed.load(ordering: .relaxed) {
            dropped.add(1, ordering: .relaxed)
            return
        }
        if let seenAs { remember(seenAs, for: destination, in: flow) }
        if flow.session.send(payload, to: destination) {
            datagramsOut.add(1, ordering: .relaxed)
            flow.tracked?.upload.add(UInt64(payload.count), ordering: .relaxed)
        } else {
            dropped.add(1, ordering: .relaxed)
        }
    }

    /// Records that the client knows `destination` as the fake endpoint `seenAs`.
    private func remember(_ seenAs: InetEndpoint, for destination: DatagramAddress, in flow: Flow) {
        let added: Bool
        switch destination {
        case .endpoint(let real):
            let key = Self.normalized(real, client: flow.key.client)
            added = flow.aliases.withLock { aliases -> Bool in
                guard aliases[key] != seenAs else { return false }
                aliases[key] = seenAs
                return true
            }
        case .name(_, let port):
            added = flow.names.withLock { n -> Bool in
                n.recent[port] = seenAs
                guard n.byName[destination] != seenAs else { return false }
                n.byName[destination] = seenAs
                return true
            }
        }
        // The flow holds the fake address until it expires, so it is not recycled.
        if added { fakeAddressUse?(seenAs.address, true) }
    }

    /// A session finished its setup (any thread): poll its descriptors, or mark the flow
    /// failed so that the sweep removes it.
    private func activate(_ flow: Flow, ok: Bool, problem: String, outbound: String) {
        if ok {
            do {
                try poll.add(flow.session.descriptor, .readable, cookie: flow.cookie)
                if flow.session.controlDescriptor >= 0 {
                    try poll.add(flow.session.controlDescriptor, .readable, cookie: flow.cookie + 1)
                }
                return
            } catch {
                logger.warning("UDP \(flow.key.client) via \(outbound): \(error)")
            }
        } else {
            logger.warning("UDP \(flow.key.client) via \(outbound): \(problem)")
        }
        flow.failed.store(true, ordering: .relaxed)
    }

    /// Receives replies and writes them into the TUN; expires idle flows. Runs until ``stop()``.
    func run() {
        let receive = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        let packet = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536 + 64, alignment: 8)
        defer {
            receive.deallocate()
            packet.deallocate()
        }
        var lastSweep = MonotonicClock.now
        while !stopping.load(ordering: .relaxed) {
            do {
                try poll.wait(timeoutMilliseconds: 1000) { cookie, _ in
                    if cookie == 1 {
                        var value: UInt64 = 0
                        _ = read(wakeup.rawValue, &value, 8)
                        closeRequested()
                        return
                    }
                    if cookie >= Self.localCookieBase, let port = localPorts[cookie] {
                        receiveLocal(port, receive: receive)
                        return
                    }
                    guard let flow = flows.withLock({ $0.byCookie[cookie & ~1] }) else { return }
                    if cookie & 1 == 1 {
                        // The control connection spoke or closed: the association is over.
                        logger.info("UDP \(flow.key.client) via \(flow.key.outbound): the proxy ended the association")
                        retire(flow)
                    } else {
                        drain(flow, receive: receive, packet: packet)
                    }
                }
            } catch {
                logger.error("UDP loop: \(error)")
            }
            let now = MonotonicClock.now
            if now - lastSweep >= 1_000_000_000 {
                lastSweep = now
                expire(now: now)
            }
        }
        let ended = flows.withLock { s -> [Flow] in
            let ended = Array(s.byKey.values)
            for flow in ended {
                flow.session.close()
                releaseAliases(flow)
            }
            s = ([:], [:], s.nextCookie)
            return ended
        }
        for flow in ended { if let tracked = flow.tracked { registry?.remove(tracked) } }
        for flow in retired.withLock({ r in
            defer { r = [] }
            return r
        }) { flow.session.close() }
    }

    private func drain(_ flow: Flow, receive: UnsafeMutableRawBufferPointer, packet: UnsafeMutableRawBufferPointer) {
        while true {
            let range: Range<Int>
            let from: DatagramAddress
            switch flow.session.receive(into: receive) {
            case .empty: return
            case .skipped: continue
            case .datagram(let r, let f): (range, from) = (r, f)
            }
            flow.lastActivity.store(MonotonicClock.now, ordering: .relaxed)
            guard let shown = shownSource(from, flow: flow) else {
                dropped.add(1, ordering: .relaxed)
                continue
            }
            if let via = flow.key.via {
                replyLocal(
                    via, flow: flow, from: shown, payload: UnsafeRawBufferPointer(rebasing: receive[range]),
                    packet: packet)
                continue
            }
            let length = PacketBuilder.udp(
                into: packet, source: shown.address, sourcePort: shown.port, destination: flow.key.client.address,
                destinationPort: flow.key.client.port, payload: UnsafeRawBufferPointer(rebasing: receive[range]))
            guard length > 0 else {
                dropped.add(1, ordering: .relaxed)
                continue
            }
            if tun.write(packet.baseAddress, length) > 0 {
                datagramsIn.add(1, ordering: .relaxed)
                flow.tracked?.download.add(UInt64(range.count), ordering: .relaxed)
            } else {
                dropped.add(1, ordering: .relaxed)
            }
        }
    }

    // MARK: Local proxy ports

    /// Polls local proxy port `index`'s UDP socket (before ``run()``).
    func addLocalPort(_ socket: OwnedDescriptor, index: Int) throws(SystemError) {
        try Descriptors.setNonBlocking(socket.rawValue)
        let cookie = Self.localCookieBase + UInt64(index)
        localPorts[cookie] = LocalPort(socket: socket, index: index, local: try InetSocket.address(socket.rawValue))
        try poll.add(socket.rawValue, .readable, cookie: cookie)
    }

    /// Datagrams on a local port: from a client holding a SOCKS5 association there, unfragmented, with a header that
    /// names the target; anything else is dropped.
    private func receiveLocal(_ port: LocalPort, receive: UnsafeMutableRawBufferPointer) {
        // Bounded per wake-up, so that one busy port cannot starve the flows' replies.
        for _ in 0..<256 {
            let received: (Int, InetEndpoint)?
            do {
                received = try InetSocket.receive(port.socket.rawValue, into: receive)
            } catch {
                continue  // an ICMP error for an earlier reply; reported once
            }
            guard let (n, client) = received else { return }
            guard let association = ports?.association(port.index, client.address),
                let (target, offset) = SOCKS5Datagram.decode(UnsafeRawBufferPointer(rebasing: receive[0..<n]))
            else {
                dropped.add(1, ordering: .relaxed)
                continue
            }
            localDatagram?(
                port.index, association.listener, port.local, client, target,
                UnsafeRawBufferPointer(rebasing: receive[offset..<n]),
                association.user)
        }
    }

    /// A reply for a local port's client: the SOCKS5 UDP header naming the remote, then the payload, sent from the
    /// port's socket.
    private func replyLocal(
        _ via: Int, flow: Flow, from shown: InetEndpoint, payload: UnsafeRawBufferPointer,
        packet: UnsafeMutableRawBufferPointer
    ) {
        guard let port = localPorts[Self.localCookieBase + UInt64(via)] else { return }
        var header: [UInt8] = []
        SOCKS5Datagram.encodeHeader(SocketEndpoint(address: shown.address.unmapped, port: shown.port), into: &header)
        guard header.count + payload.count <= packet.count else {
            dropped.add(1, ordering: .relaxed)
            return
        }
        header.withUnsafeBytes { packet.copyMemory(from: $0) }
        if payload.count > 0 {
            UnsafeMutableRawBufferPointer(rebasing: packet[header.count...]).copyMemory(from: payload)
        }
        let sent =
            (try? InetSocket.send(
                port.socket.rawValue, UnsafeRawBufferPointer(rebasing: packet[0..<(header.count + payload.count)]),
                to: flow.key.client)) ?? false
        if sent {
            datagramsIn.add(1, ordering: .relaxed)
            flow.tracked?.download.add(UInt64(payload.count), ordering: .relaxed)
        } else {
            dropped.add(1, ordering: .relaxed)
        }
    }

    /// The source a reply is written into the TUN with: the remote itself in the
    /// client's family, or the fake endpoint the client knows it by. Nil when a reply
    /// names a remote the client cannot be shown (a name it never sent to).
    private func shownSource(_ from: DatagramAddress, flow: Flow) -> InetEndpoint? {
        switch from {
        case .endpoint(let remote):
            // A v4 remote on a v6 flow socket arrives v4-mapped; answer in the client's family.
            let shown = Self.normalized(remote, client: flow.key.client)
            if let alias = flow.aliases.withLock({ $0.isEmpty ? nil : $0[shown] }) { return alias }
            // Through a proxy by name: the first reply from a new remote on a port the
            // client sent to by name is that name's (the most recent name on the port).
            return flow.names.withLock { n -> InetEndpoint in
                if n.recent.isEmpty { return shown }
                if let learned = n.learned[shown] { return learned }
                guard let fake = n.recent[shown.port] else { return shown }
                n.learned[shown] = fake
                return fake
            }
        case .name:
            return flow.names.withLock { $0.byName[from] }
        }
    }

    /// `remote` in the client's address family (v4-mapped on a v6 flow and back).
    static func normalized(_ remote: InetEndpoint, client: InetEndpoint) -> InetEndpoint {
        remote.address.isIPv4 == client.address.isIPv4
            ? remote : InetEndpoint(remote.address.mapped(toIPv4: client.address.isIPv4), remote.port)
    }

    /// Takes `flow` out of the table now; its session closes at the next sweep.
    private func retire(_ flow: Flow) {
        let removed = flows.withLock { s -> Bool in
            guard s.byCookie[flow.cookie] === flow else { return false }
            s.byKey[flow.key] = nil
            s.byCookie[flow.cookie] = nil
            return true
        }
        guard removed else { return }
        poll.remove(flow.session.descriptor)
        if flow.session.controlDescriptor >= 0 { poll.remove(flow.session.controlDescriptor) }
        releaseAliases(flow)
        if let tracked = flow.tracked { registry?.remove(tracked) }
        retired.withLock { $0.append(flow) }
    }

    /// Closes the flow with `cookie` on the loop's thread (the external controller's `DELETE /connections/:id`):
    /// it leaves the table at once, so the client's next datagram starts a new flow, and its socket closes at the
    /// next sweep (within a second), as for any retired flow.
    func requestClose(_ cookie: UInt64) {
        closeRequests.withLock { $0.append(cookie) }
        var one: UInt64 = 1
        _ = write(wakeup.rawValue, &one, 8)
    }

    private func closeRequested() {
        for cookie in closeRequests.withLock({ r in
            defer { r = [] }
            return r
        }) {
            guard let flow = flows.withLock({ $0.byCookie[cookie] }) else { continue }
            logger.info("UDP \(flow.key.client) via \(flow.key.outbound): closed on request (external controller)")
            retire(flow)
        }
    }

    private func expire(now: UInt64) {
        // Sessions retired at the previous sweep close now.
        for flow in retired.withLock({ r in
            defer { r = [] }
            return r
        }) { flow.session.close() }
        let idle = flows.withLock { s -> [Flow] in
            // Nine tenths full: flows idle for a tenth of udp-timeout (30 s by default) close too, so that a burst
            // of short-lived flows (DNS-like, or a flood of new source ports) does not shut out new ones for the
            // whole timeout. Nothing is closed while it is in use.
            let timeout = s.byKey.count * 10 >= maxFlows * 9 ? max(idleTimeout / 10, 1_000_000_000) : idleTimeout
            let old = s.byKey.values.filter {
                $0.failed.load(ordering: .relaxed)
                    ? now - min(now, $0.lastActivity.load(ordering: .relaxed)) > 2_000_000_000
                    : now - min(now, $0.lastActivity.load(ordering: .relaxed)) > timeout
            }
            for flow in old {
                s.byKey[flow.key] = nil
                s.byCookie[flow.cookie] = nil
            }
            return old
        }
        for flow in idle {
            if flow.session.descriptor >= 0 { poll.remove(flow.session.descriptor) }
            if flow.session.controlDescriptor >= 0 { poll.remove(flow.session.controlDescriptor) }
            flow.session.close()
            releaseAliases(flow)
            if let tracked = flow.tracked { registry?.remove(tracked) }
        }
    }

    private func releaseAliases(_ flow: Flow) {
        guard let use = fakeAddressUse else { return }
        for fake in flow.aliases.withLock({ $0.values }) { use(fake.address, false) }
        for fake in flow.names.withLock({ $0.byName.values }) { use(fake.address, false) }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        var one: UInt64 = 1
        _ = write(wakeup.rawValue, &one, 8)
    }
}
