import CSluice
import IPC
import Logging
import SluiceNet
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Accepts the NATed connections on the listeners and relays each to its outbound, on one
/// epoll thread, kernel to kernel with splice(2).
///
/// Per direction a pipe holds what was read and not yet written; interest masks follow the
/// pipes (read while the pipe has room, write while it has bytes), so a slow side applies
/// backpressure instead of growing buffers. EOF on one side becomes shutdown(SHUT_WR) on
/// the other once its pipe is drained (half-close); a reset or error on one side resets
/// the other (SO_LINGER 0), so RST propagates both ways.
final class TCPRelayLoop: @unchecked Sendable {
    /// Bytes a pipe may hold; also the splice chunk.
    static let pipeSize = 256 * 1024

    private final class Side {
        let socket: OwnedDescriptor
        /// Read end closed (EOF seen).
        var readClosed = false
        /// We shut down its write side.
        var writeShut = false
        init(_ socket: OwnedDescriptor) { self.socket = socket }
    }

    /// One direction: bytes read from `from`, waiting in the pipe for `to`.
    private struct Direction {
        var pipeRead: OwnedDescriptor
        var pipeWrite: OwnedDescriptor
        var pending = 0
        var bytes: UInt64 = 0
    }

    private final class Connection {
        let id: UInt64
        let natPort: UInt16
        let ipv4: Bool
        let client: Side
        let server: Side
        var connecting = true
        var up: Direction  // client → server
        var down: Direction  // server → client
        let label: String

        init(id: UInt64, natPort: UInt16, ipv4: Bool, client: Side, server: Side, up: Direction, down: Direction, label: String) {
            self.id = id
            self.natPort = natPort
            self.ipv4 = ipv4
            self.client = client
            self.server = server
            self.up = up
            self.down = down
            self.label = label
        }
    }

    /// Lookup for an accepted connection: its original endpoints and outbound.
    struct Route {
        var destination: InetEndpoint
        var outbound: any Outbound
        var label: String
        /// Set when `destination` is a fake address: the outbound connects to this name's
        /// real address (same port), which is looked up first.
        var name: String?
    }

    /// Resolves a name to real addresses (for fake destinations); the completion may run
    /// on any thread.
    typealias NameLookup = @Sendable (String, Bool, @escaping @Sendable ([IPAddress], String) -> Void) -> Void

    private let poll: EventPoll
    private let wakeup: OwnedDescriptor
    private let logger: Logger
    private var listeners: [UInt64: (OwnedDescriptor, Bool)] = [:]
    private var connections: [UInt64: Connection] = [:]
    private var nextID: UInt64 = 16
    private let stopping = Atomic<Bool>(false)
    /// A descriptor held in reserve for ``shedOneConnection(_:)``.
    private var spare: OwnedDescriptor?
    private var shedWarnings = 0
    private let resolve: (UInt16, Bool) -> Route?
    private let finished: (UInt16, Bool) -> Void
    private let lookupName: NameLookup
    /// Work handed to the loop's thread from elsewhere (connections whose name resolved).
    private let posted = Mutex<[@Sendable () -> Void]>([])

    let accepted = Atomic<UInt64>(0)
    let failed = Atomic<UInt64>(0)
    let active = Atomic<Int>(0)
    let bytesUp = Atomic<UInt64>(0)
    let bytesDown = Atomic<UInt64>(0)

    /// - Parameters:
    ///   - resolve: NAT port + family → where the connection goes (nil: unknown, reset it).
    ///   - finished: the relay for that NAT port ended.
    ///   - lookupName: real addresses of a fake destination's name.
    init(
        logger: Logger, resolve: @escaping (UInt16, Bool) -> Route?, finished: @escaping (UInt16, Bool) -> Void,
        lookupName: @escaping NameLookup
    ) throws(SystemError) {
        self.lookupName = lookupName
        self.poll = try EventPoll()
        self.wakeup = OwnedDescriptor(takingOwnershipOfDescriptor: try Posix.check("eventfd", csluice_eventfd()))
        self.logger = logger
        self.resolve = resolve
        self.finished = finished
        try poll.add(wakeup.rawValue, .readable, cookie: 1)
        spare = try? InetSocket.udp(AF_INET)
    }

    /// Listens on `endpoint` (the TUN's own address) and returns the bound endpoint.
    func listen(on endpoint: InetEndpoint) throws(SystemError) -> InetEndpoint {
        let socket = try InetSocket.tcp(endpoint.address.socketFamily)
        try InetSocket.bind(socket.rawValue, endpoint, freeBind: true, reuseAddress: true)
        try Posix.call("listen \(endpoint)") { Glibc.listen(socket.rawValue, 4096) }
        let bound = try InetSocket.address(socket.rawValue)
        let cookie = UInt64(2 + listeners.count)
        listeners[cookie] = (socket, endpoint.address.isIPv4)
        try poll.add(socket.rawValue, .readable, cookie: cookie)
        return bound
    }

    /// Runs the loop on the calling thread until ``stop()``.
    func run() {
        while !stopping.load(ordering: .relaxed) {
            do {
                try poll.wait(timeoutMilliseconds: 1000) { cookie, events in
                    if cookie == 1 {
                        var value: UInt64 = 0
                        _ = read(wakeup.rawValue, &value, 8)
                        for work in posted.withLock({ p in defer { p.removeAll() }; return p }) { work() }
                    } else if let (listener, ipv4) = listeners[cookie] {
                        acceptAll(listener.rawValue, ipv4: ipv4)
                    } else {
                        handle(cookie: cookie, events: events)
                    }
                }
            } catch {
                logger.error("relay loop: \(error)")
            }
        }
        for connection in connections.values { close(connection, reset: true) }
        posted.withLock { $0.removeAll() }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        var one: UInt64 = 1
        _ = write(wakeup.rawValue, &one, 8)
    }

    // MARK: Accept

    private func acceptAll(_ listener: CInt, ipv4: Bool) {
        while true {
            let accepted: (OwnedDescriptor, InetEndpoint)?
            do {
                accepted = try InetSocket.accept(listener)
            } catch {
                if error.errno == ECONNABORTED { continue }
                if error.errno == EMFILE || error.errno == ENFILE {
                    shedOneConnection(listener)
                } else {
                    logger.warning("accept: \(error)")
                }
                return
            }
            guard let (client, peer) = accepted else { return }
            self.accepted.add(1, ordering: .relaxed)
            guard let route = resolve(peer.port, ipv4) else {
                // A connection the NAT does not know (a stale SYN after a restart): refuse.
                InetSocket.setResetOnClose(client.rawValue)
                failed.add(1, ordering: .relaxed)
                continue
            }
            if let name = route.name {
                startResolved(client: client, natPort: peer.port, ipv4: ipv4, route: route, name: name)
            } else {
                start(client: client, natPort: peer.port, ipv4: ipv4, route: route)
            }
        }
    }

    /// A connection to a fake address: look up the name's real address (off this thread),
    /// then start it here. The client waits, accepted, in the meantime.
    private func startResolved(client: OwnedDescriptor, natPort: UInt16, ipv4: Bool, route: Route, name: String) {
        let box = UncheckedBox((client, route))
        lookupName(name, !ipv4) { [self] addresses, error in
            post { [self] in
                let (client, route) = box.value
                // The client's family first; over TCP either family serves.
                let address = addresses.first { $0.isIPv4 == ipv4 } ?? addresses.first
                guard let address else {
                    logger.info("\(route.label): cannot resolve \(name): \(error.isEmpty ? "no address" : error)")
                    InetSocket.setResetOnClose(client.rawValue)
                    client.close()
                    failed.add(1, ordering: .relaxed)
                    finished(natPort, ipv4)
                    return
                }
                var resolved = route
                resolved.destination = InetEndpoint(address, route.destination.port)
                resolved.name = nil
                start(client: client, natPort: natPort, ipv4: ipv4, route: resolved)
            }
        }
    }

    /// Runs `work` on the loop's thread.
    private func post(_ work: @escaping @Sendable () -> Void) {
        posted.withLock { $0.append(work) }
        var one: UInt64 = 1
        _ = write(wakeup.rawValue, &one, 8)
    }

    /// Out of descriptors: the pending connection would keep the listener readable and
    /// the loop spinning. Free the spare descriptor, accept and reset the connection (the
    /// client sees a refusal at once), and take the spare back.
    private func shedOneConnection(_ listener: CInt) {
        if shedWarnings % 1000 == 0 {
            logger.error("out of file descriptors (EMFILE): refusing new connections; raise LimitNOFILE or lower the load")
        }
        shedWarnings += 1
        spare?.close()
        if let (client, _) = try? InetSocket.accept(listener) {
            InetSocket.setResetOnClose(client.rawValue)
            client.close()
        }
        spare = try? InetSocket.udp(AF_INET)
        failed.add(1, ordering: .relaxed)
    }

    private func start(client: OwnedDescriptor, natPort: UInt16, ipv4: Bool, route: Route) {
        let server: OwnedDescriptor
        let up: Direction
        let down: Direction
        do {
            server = try route.outbound.openTCP(to: route.destination)
            up = try Self.makeDirection()
            down = try Self.makeDirection()
        } catch {
            logger.info("\(route.label): \(route.outbound.name) failed: \(error)")
            InetSocket.setResetOnClose(client.rawValue)
            failed.add(1, ordering: .relaxed)
            finished(natPort, ipv4)
            return
        }
        _ = try? InetSocket.setOption(client.rawValue, level: CInt(IPPROTO_TCP), name: TCP_NODELAY, value: 1, "TCP_NODELAY")
        let id = nextID
        nextID += 2
        let connection = Connection(
            id: id, natPort: natPort, ipv4: ipv4, client: Side(client), server: Side(server), up: up, down: down,
            label: route.label)
        connections[id] = connection
        active.add(1, ordering: .relaxed)
        do {
            // Client: nothing until the server connects. Server: writable = connected.
            try poll.add(client.rawValue, [], cookie: id)
            try poll.add(server.rawValue, .writable, cookie: id + 1)
        } catch {
            logger.error("\(route.label): epoll: \(error)")
            close(connection, reset: true)
        }
    }

    private static func makeDirection() throws(SystemError) -> Direction {
        var fds: [CInt] = [-1, -1]
        try Posix.check("pipe2", csluice_splice_pipe(&fds, CInt(pipeSize)))
        return Direction(
            pipeRead: OwnedDescriptor(takingOwnershipOfDescriptor: fds[0]),
            pipeWrite: OwnedDescriptor(takingOwnershipOfDescriptor: fds[1]))
    }

    // MARK: Relay

    private func handle(cookie: UInt64, events: EventPoll.Events) {
        let id = cookie & ~1
        guard let c = connections[id] else { return }
        let isServer = cookie & 1 == 1
        if c.connecting {
            guard isServer else { return }
            let err = InetSocket.pendingError(c.server.socket.rawValue)
            if err != 0 || events.contains(.error) {
                logger.info("\(c.label): connect failed: \(SystemError("connect", errno: err == 0 ? ECONNREFUSED : err).reason)")
                failed.add(1, ordering: .relaxed)
                close(c, reset: true)
                return
            }
            c.connecting = false
        }
        // Move what can move in both directions, then set interest from the new state.
        if !pump(&c.up, from: c.client, to: c.server, connection: c) { return }
        if !pump(&c.down, from: c.server, to: c.client, connection: c) { return }
        if (c.client.readClosed && c.up.pending == 0 && c.server.readClosed && c.down.pending == 0) {
            close(c, reset: false)
            return
        }
        updateInterest(c)
    }

    /// Reads from `from` into the pipe and writes the pipe to `to`. Returns false when the
    /// connection was torn down.
    private func pump(_ d: inout Direction, from: Side, to: Side, connection c: Connection) -> Bool {
        while true {
            var progressed = false
            if !from.readClosed && d.pending < Self.pipeSize {
                let n = csluice_splice(from.socket.rawValue, d.pipeWrite.rawValue, Self.pipeSize - d.pending, 0)
                if n > 0 {
                    d.pending += n
                    progressed = true
                } else if n == 0 {
                    from.readClosed = true
                    progressed = true
                } else if n != -EAGAIN {
                    // ECONNRESET and friends: pass the reset on.
                    close(c, reset: true)
                    return false
                }
            }
            if d.pending > 0 {
                let n = csluice_splice(d.pipeRead.rawValue, to.socket.rawValue, d.pending, 0)
                if n > 0 {
                    d.pending -= n
                    d.bytes += UInt64(n)
                    if from === c.client { bytesUp.add(UInt64(n), ordering: .relaxed) } else { bytesDown.add(UInt64(n), ordering: .relaxed) }
                    progressed = true
                } else if n != -EAGAIN {
                    close(c, reset: true)
                    return false
                }
            }
            if from.readClosed && d.pending == 0 && !to.writeShut {
                InetSocket.shutdownWrite(to.socket.rawValue)
                to.writeShut = true
            }
            if !progressed { return true }
        }
    }

    private func updateInterest(_ c: Connection) {
        func mask(reading side: Side, outgoing: Direction, incoming: Direction) -> EventPoll.Events {
            var m: EventPoll.Events = []
            if !side.readClosed && outgoing.pending < Self.pipeSize { m.insert(.readable) }
            if incoming.pending > 0 { m.insert(.writable) }
            return m
        }
        let clientMask = mask(reading: c.client, outgoing: c.up, incoming: c.down)
        let serverMask = mask(reading: c.server, outgoing: c.down, incoming: c.up)
        try? poll.modify(c.client.socket.rawValue, clientMask, cookie: c.id)
        try? poll.modify(c.server.socket.rawValue, serverMask, cookie: c.id + 1)
    }

    private func close(_ c: Connection, reset: Bool) {
        poll.remove(c.client.socket.rawValue)
        poll.remove(c.server.socket.rawValue)
        if reset {
            InetSocket.setResetOnClose(c.client.socket.rawValue)
            InetSocket.setResetOnClose(c.server.socket.rawValue)
        }
        c.client.socket.close()
        c.server.socket.close()
        connections[c.id] = nil
        active.add(-1, ordering: .relaxed)
        finished(c.natPort, c.ipv4)
    }
}

/// Carries a value that is not Sendable to the one thread that will use it next.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
