import CSluice
import IPC
import Logging
import SluiceNet
import SluicePacket
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// UDP through the TUN with endpoint-independent ("full-cone") mapping.
///
/// Each client endpoint (address, port) gets one outbound socket per outbound, used for
/// every destination it talks to: remote servers all see the same source port, and a reply
/// from any remote reaches the client with that remote's own address as the source. Flows
/// idle for `udp-timeout` are closed.
final class UDPFlowTable: @unchecked Sendable {
    struct FlowKey: Hashable {
        var client: InetEndpoint
        var outbound: String
    }

    final class Flow: @unchecked Sendable {
        let key: FlowKey
        let socket: OwnedDescriptor
        let cookie: UInt64
        let lastActivity = Atomic<UInt64>(0)
        /// Real remote → the fake endpoint the client addressed it by (fake-IP flows), so
        /// replies come back from the address the client knows.
        let aliases = Mutex<[InetEndpoint: InetEndpoint]>([:])
        init(key: FlowKey, socket: OwnedDescriptor, cookie: UInt64) {
            self.key = key
            self.socket = socket
            self.cookie = cookie
        }
    }

    private let poll: EventPoll
    private let wakeup: OwnedDescriptor
    private let flows = Mutex<(byKey: [FlowKey: Flow], byCookie: [UInt64: Flow], nextCookie: UInt64)>(([:], [:], 16))
    private let stopping = Atomic<Bool>(false)
    private let tun: CInt
    private let logger: Logger
    let idleTimeout: UInt64
    let maxFlows: Int
    /// Told when a flow starts (true) or stops (false) using a fake address.
    let fakeAddressUse: (@Sendable (IPAddress, Bool) -> Void)?

    let datagramsOut = Atomic<UInt64>(0)
    let datagramsIn = Atomic<UInt64>(0)
    let dropped = Atomic<UInt64>(0)

    init(
        tun: CInt, idleTimeoutSeconds: Int, maxFlows: Int = 65536, logger: Logger,
        fakeAddressUse: (@Sendable (IPAddress, Bool) -> Void)? = nil
    ) throws(SystemError) {
        self.fakeAddressUse = fakeAddressUse
        self.poll = try EventPoll()
        self.wakeup = OwnedDescriptor(takingOwnershipOfDescriptor: try Posix.check("eventfd", csluice_eventfd()))
        self.tun = tun
        self.idleTimeout = UInt64(max(1, idleTimeoutSeconds)) * 1_000_000_000
        self.maxFlows = maxFlows
        self.logger = logger
        try poll.add(wakeup.rawValue, .readable, cookie: 1)
    }

    var count: Int { flows.withLock { $0.byKey.count } }

    /// Sends one client datagram to `destination` through `outbound` (the TUN reader thread,
    /// or the dns peer's for datagrams that waited for a fake name's address).
    /// `seenAs` is the fake endpoint the client sent to, when `destination` is its real one.
    func send(
        from client: InetEndpoint, to destination: InetEndpoint, seenAs: InetEndpoint? = nil, payload: UnsafeRawBufferPointer,
        outbound: any Outbound
    ) {
        let key = FlowKey(client: client, outbound: outbound.name)
        let now = MonotonicClock.now
        let flow: Flow
        // Look up and stamp under one lock: the idle sweep decides under the same lock, so
        // it cannot close a socket between our lookup and our send.
        if let existing = flows.withLock({ s -> Flow? in
            let f = s.byKey[key]
            f?.lastActivity.store(now, ordering: .relaxed)
            return f
        }) {
            flow = existing
        } else {
            guard count < maxFlows else {
                dropped.add(1, ordering: .relaxed)
                logger.warning("UDP flow limit (\(maxFlows)) reached; dropping a datagram from \(client)")
                return
            }
            do {
                let socket = try outbound.openUDP(family: client.address.socketFamily)
                // Another thread (a datagram that waited for a fake name's address) may
                // have made this flow meanwhile: use that one.
                var made = false
                flow = flows.withLock { s in
                    if let existing = s.byKey[key] {
                        existing.lastActivity.store(now, ordering: .relaxed)
                        return existing
                    }
                    made = true
                    let f = Flow(key: key, socket: socket, cookie: s.nextCookie)
                    f.lastActivity.store(now, ordering: .relaxed)
                    s.nextCookie += 1
                    s.byKey[key] = f
                    s.byCookie[f.cookie] = f
                    return f
                }
                if made { try poll.add(socket.rawValue, .readable, cookie: flow.cookie) } else { socket.close() }
            } catch {
                dropped.add(1, ordering: .relaxed)
                logger.warning("UDP \(client) -> \(destination): \(outbound.name) failed: \(error)")
                return
            }
        }
        if let seenAs {
            let key = Self.normalized(destination, client: client)
            let added = flow.aliases.withLock { aliases -> Bool in
                guard aliases[key] != seenAs else { return false }
                aliases[key] = seenAs
                return true
            }
            // The flow holds the fake address until it expires, so it is not recycled.
            if added { fakeAddressUse?(seenAs.address, true) }
        }
        do {
            if try InetSocket.send(flow.socket.rawValue, payload, to: destination) {
                datagramsOut.add(1, ordering: .relaxed)
            } else {
                dropped.add(1, ordering: .relaxed)
            }
        } catch {
            dropped.add(1, ordering: .relaxed)
        }
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
                        return
                    }
                    guard let flow = flows.withLock({ $0.byCookie[cookie] }) else { return }
                    drain(flow, receive: receive, packet: packet)
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
        flows.withLock { s in
            for flow in s.byKey.values {
                flow.socket.close()
                releaseAliases(flow)
            }
            s = ([:], [:], s.nextCookie)
        }
    }

    private func drain(_ flow: Flow, receive: UnsafeMutableRawBufferPointer, packet: UnsafeMutableRawBufferPointer) {
        while true {
            let got: (Int, InetEndpoint)?
            do {
                got = try InetSocket.receive(flow.socket.rawValue, into: receive)
            } catch {
                // ICMP errors for earlier sends surface here (ECONNREFUSED...); the flow lives on.
                continue
            }
            guard let (n, remote) = got else { return }
            flow.lastActivity.store(MonotonicClock.now, ordering: .relaxed)
            // A v4 remote on a v6 flow socket arrives v4-mapped; answer in the client's family.
            var shown = Self.normalized(remote, client: flow.key.client)
            if let alias = flow.aliases.withLock({ $0.isEmpty ? nil : $0[shown] }) { shown = alias }
            let length = PacketBuilder.udp(
                into: packet, source: shown.address, sourcePort: shown.port, destination: flow.key.client.address,
                destinationPort: flow.key.client.port, payload: UnsafeRawBufferPointer(rebasing: receive[0..<n]))
            guard length > 0 else {
                dropped.add(1, ordering: .relaxed)
                continue
            }
            if csluice_write(tun, packet.baseAddress, length) > 0 {
                datagramsIn.add(1, ordering: .relaxed)
            } else {
                dropped.add(1, ordering: .relaxed)
            }
        }
    }

    /// `remote` in the client's address family (v4-mapped on a v6 flow and back).
    static func normalized(_ remote: InetEndpoint, client: InetEndpoint) -> InetEndpoint {
        remote.address.isIPv4 == client.address.isIPv4
            ? remote : InetEndpoint(mapped(remote.address, toIPv4: client.address.isIPv4), remote.port)
    }

    static func mapped(_ address: IPAddress, toIPv4: Bool) -> IPAddress {
        switch address {
        case .v6(let v6): if toIPv4, let v4 = v6.ipv4Mapped { return .v4(v4) }
        case .v4(let v4): if !toIPv4 { return .v6(IPv6Address(high: 0, low: 0xFFFF_0000_0000 | UInt64(v4.rawValue))) }
        }
        return address
    }

    private func expire(now: UInt64) {
        let idle = flows.withLock { s -> [Flow] in
            let old = s.byKey.values.filter { now - min(now, $0.lastActivity.load(ordering: .relaxed)) > idleTimeout }
            for flow in old {
                s.byKey[flow.key] = nil
                s.byCookie[flow.cookie] = nil
            }
            return old
        }
        for flow in idle {
            poll.remove(flow.socket.rawValue)
            flow.socket.close()
            releaseAliases(flow)
        }
    }

    private func releaseAliases(_ flow: Flow) {
        guard let use = fakeAddressUse else { return }
        for fake in flow.aliases.withLock({ $0.values }) { use(fake.address, false) }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        var one: UInt64 = 1
        _ = write(wakeup.rawValue, &one, 8)
    }
}
