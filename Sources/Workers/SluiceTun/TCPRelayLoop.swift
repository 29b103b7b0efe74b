import CSluice
import IPC
import Logging
import SluiceNet
import SluiceOutbounds
import SluiceRouting
import SluiceSniffing
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Accepts the NATed connections on the listeners and relays each to its outbound, on one
/// epoll thread that never blocks.
///
/// A connection goes through up to four phases: its first hop's name is resolved (off
/// this thread, the answer is posted back), the connect completes, a proxy handshake runs
/// (bytes in, bytes out, driven by non-blocking reads and writes), and then it relays.
/// Connect and handshake must finish within ``establishTimeout``.
///
/// There is one relay per shape of the outbound's plan (``TCPPlan/Shape``). A socket is relayed kernel to kernel
/// with splice(2) (DIRECT, SOCKS5, HTTP CONNECT; `TCPRelayLoop+Splice.swift`): per direction a pipe holds what was
/// read and not yet written. A stream (``OutboundStream``: Shadowsocks, TLS, and later multiplexed and QUIC
/// streams) is relayed through userspace buffers (`TCPRelayLoop+Stream.swift`), with the same bound per
/// direction. Either way interest masks follow
/// the buffers (read while there is room, write while there are bytes), so a slow side
/// applies backpressure instead of growing memory. EOF on one side becomes
/// shutdown(SHUT_WR) on the other once its buffer is drained (half-close); a reset or
/// error on one side resets the other (SO_LINGER 0), so RST propagates both ways.
final class TCPRelayLoop: @unchecked Sendable {
    /// Bytes a direction may hold; also the splice chunk.
    static let pipeSize = 256 * 1024
    /// What any pipe takes, even one of a user past `pipe-user-pages-soft` (two pages), whose F_SETPIPE_SZ failed.
    static let guaranteedPipeBytes = 8192
    /// Name lookup, connect and proxy handshake together, at most.
    static let establishTimeout: UInt64 = 10_000_000_000
    /// One read in userspace relays and handshakes.
    static let readChunk = 64 * 1024

    final class Side {
        let socket: OwnedDescriptor
        /// Read end closed (EOF seen).
        var readClosed = false
        /// We shut down its write side.
        var writeShut = false
        init(_ socket: OwnedDescriptor) { self.socket = socket }
    }

    /// One direction: bytes read from one side, waiting for the other. In a pipe for
    /// splice; for a stream, the server's opened bytes in a buffer (the client's wait in the stream).
    final class Direction {
        var pipeRead: OwnedDescriptor?
        var pipeWrite: OwnedDescriptor?
        var buffer: [UInt8] = []
        var start = 0
        /// Bytes held: in the pipe, or `buffer.count - start`.
        var pending = 0
        var bytes: UInt64 = 0
    }

    enum Phase {
        case connecting
        case handshaking
        case relaying
    }

    final class Connection {
        let id: UInt64
        let origin: Origin
        let client: Side
        let server: Side
        var phase = Phase.connecting
        /// A socket plan's handshake, until it is established.
        var handshake: (any ProxyHandshake)?
        /// Handshake bytes not yet written to the server.
        var handshakeOut: [UInt8] = []
        /// A stream plan's layers, until the connect is done and they become ``stream``.
        var layers: [any StreamLayer]?
        /// The stream shape's connection to the server (owning the server socket); nil for a spliced one.
        var stream: (any OutboundStream)?
        let up = Direction()  // client → server
        let down = Direction()  // server → client
        let label: String
        let outbound: String
        /// For the server first once the tunnel is open (``Route/upstream``).
        var upstream: [UInt8] = []
        /// When connect and handshake must be done (monotonic ns).
        let deadline: UInt64
        /// Its entry in the connections list, whose counters ``counted(_:_:from:connection:)`` bumps.
        var tracked: TrackedConnection?

        init(
            id: UInt64, origin: Origin, client: Side, server: Side, plan: TCPPlan, upstream: [UInt8], label: String,
            outbound: String, deadline: UInt64
        ) {
            self.id = id
            self.origin = origin
            self.client = client
            self.server = server
            self.upstream = upstream
            switch plan.shape {
            case .socket(let handshake) where upstream.count > TCPRelayLoop.guaranteedPipeBytes:
                // More first bytes than a pipe surely takes (a large plain HTTP request): the stream shape, the
                // handshake (if any) as its one layer, dropped once established, so the bytes pass as they are.
                layers = handshake.map { [ProxyHandshakeLayer($0)] } ?? []
            case .socket(let handshake):
                self.handshake = handshake
            case .stream(let layers):
                self.layers = layers
            }
            self.label = label
            self.outbound = outbound
            self.deadline = deadline
        }
    }

    /// Where an accepted connection goes (the router's answer).
    typealias Route = TCPRoute

    /// Where a connection came from: the TUN (by the NAT port the dispatcher gave it) or a local proxy port.
    enum Origin {
        case nat(port: UInt16, ipv4: Bool)
        case local
    }

    /// How long a client may take to send the bytes that name its destination.
    static let sniffWait = UInt64(SniffPolicy.waitMilliseconds) * 1_000_000

    /// Resolves a name to real addresses (for fake destinations and proxy servers); the
    /// completion may run on any thread.
    typealias NameLookup = @Sendable (String, Bool, @escaping @Sendable ([IPAddress], String) -> Void) -> Void

    let poll: EventPoll
    private let wakeup: OwnedDescriptor
    let logger: Logger
    var listeners: [UInt64: (OwnedDescriptor, Bool)] = [:]
    var connections: [UInt64: Connection] = [:]
    var nextID: UInt64 = 16
    private let stopping = Atomic<Bool>(false)
    /// A descriptor held in reserve for ``shedOneConnection(_:)``.
    var spare: OwnedDescriptor?
    /// Out of descriptors: one line per few seconds, with the count.
    let descriptorsExhausted: LimitWarning
    /// Where accepted connections go; it never calls back into the loop (its answers to deferred decisions come in
    /// completions this loop posts to itself).
    let router: FlowRouter
    /// The TUN's NAT: an accepted connection's peer port finds its entry (endpoints and the router's verdict).
    let nat: TCPNATTable
    /// Clients being sniffed, by cookie (loop thread only).
    var sniffing: [UInt64: DeferredClient] = [:]
    let lookupName: NameLookup
    let egress: EgressPolicy
    /// The connections list (external controller); nil in tests that need none.
    let registry: ConnectionRegistry?
    /// Work handed to the loop's thread from elsewhere (connections whose name resolved).
    private let posted = Locked<[@Sendable () -> Void]>([])
    /// Local proxy ports' listeners by cookie (``localCookieBase`` + their index).
    var proxyListeners: [UInt64: (socket: OwnedDescriptor, index: Int)] = [:]
    static let localCookieBase: UInt64 = 1 << 62
    /// Local proxy clients in their handshake, waiting for their route, or holding a SOCKS5 UDP association, by
    /// cookie (loop thread only).
    var proxyClients: [UInt64: LocalProxyClient] = [:]
    /// The local proxy ports' settings and associations.
    let ports: LocalProxyPorts?
    /// Reads of userspace relays and handshakes land here (loop thread only).
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: readChunk, alignment: 16)

    let accepted = Atomic<UInt64>(0)
    let failed = Atomic<UInt64>(0)
    let active = Atomic<Int>(0)
    let bytesUp = Atomic<UInt64>(0)
    let bytesDown = Atomic<UInt64>(0)

    /// - Parameters:
    ///   - router: where accepted connections go (and local proxy clients' requests).
    ///   - nat: the TUN's NAT table: the verdicts of accepted connections; told when their relay ends.
    ///   - lookupName: real addresses of a name (a fake destination's, a proxy server's).
    ///   - egress: keep-alive settings for the client side (outbounds set their own side).
    ///   - registry: where each dialled connection is listed until it closes.
    init(
        logger: Logger, router: FlowRouter, nat: TCPNATTable, lookupName: @escaping NameLookup, egress: EgressPolicy,
        registry: ConnectionRegistry? = nil, ports: LocalProxyPorts? = nil
    ) throws(SystemError) {
        self.ports = ports
        self.egress = egress
        self.registry = registry
        self.router = router
        self.nat = nat
        self.lookupName = lookupName
        self.poll = try EventPoll()
        self.wakeup = OwnedDescriptor(takingOwnershipOfDescriptor: try Posix.check("eventfd", csluice_eventfd()))
        self.logger = logger
        descriptorsExhausted = LimitWarning(logger: logger, level: .error)
        try poll.add(wakeup.rawValue, .readable, cookie: 1)
        spare = try? InetSocket.udp(AF_INET)
    }

    deinit { scratch.deallocate() }

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
        var lastSweep = MonotonicClock.now
        while !stopping.load(ordering: .relaxed) {
            var timeout: Int32 = 1000
            if !sniffing.isEmpty {
                // Wake for the first sniffing deadline.
                let now = MonotonicClock.now
                let first = sniffing.values.lazy.map(\.deadline).min() ?? now
                timeout = first <= now ? 0 : Int32(min(1000, (first - now) / 1_000_000 + 1))
            }
            do {
                try poll.wait(timeoutMilliseconds: timeout) { cookie, events in
                    if cookie == 1 {
                        var value: UInt64 = 0
                        _ = read(wakeup.rawValue, &value, 8)
                        for work in posted.withLock({ p in
                            defer { p.removeAll() }
                            return p
                        }) { work() }
                    } else if let (listener, ipv4) = listeners[cookie] {
                        acceptAll(listener.rawValue, ipv4: ipv4)
                    } else if cookie >= Self.localCookieBase, let port = proxyListeners[cookie] {
                        acceptLocal(port.socket.rawValue, index: port.index)
                    } else {
                        handle(cookie: cookie, events: events)
                    }
                }
            } catch {
                logger.error("relay loop: \(error)")
            }
            let now = MonotonicClock.now
            if !sniffing.isEmpty { expireSniffing(now: now) }
            if now - lastSweep >= 1_000_000_000 {
                lastSweep = now
                expireEstablishing(now: now)
                if !proxyClients.isEmpty { expireLocal(now: now) }
            }
        }
        for connection in connections.values { close(connection, reset: true) }
        for waiting in sniffing.values { endSniffing(waiting, route: nil) }
        for (cookie, client) in proxyClients { dropLocal(cookie, client) }
        posted.withLock { $0.removeAll() }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        var one: UInt64 = 1
        _ = write(wakeup.rawValue, &one, 8)
    }

    /// Runs `work` on the loop's thread.
    func post(_ work: @escaping @Sendable () -> Void) {
        posted.withLock { $0.append(work) }
        var one: UInt64 = 1
        _ = write(wakeup.rawValue, &one, 8)
    }

    // MARK: Events

    private func handle(cookie: UInt64, events: EventPoll.Events) {
        if !sniffing.isEmpty, let waiting = sniffing[cookie] {
            sniff(cookie, waiting, final: false)
            return
        }
        if !proxyClients.isEmpty, let client = proxyClients[cookie] {
            serveLocal(cookie, client)
            return
        }
        let id = cookie & ~1
        guard let c = connections[id] else { return }
        let isServer = cookie & 1 == 1
        if !isServer && c.phase != .relaying {
            // The client is polled for nothing until relaying, but epoll reports errors and
            // hangups regardless: a client that gave up meanwhile ends the connection.
            if events.contains(.error) || events.contains(.hangup) {
                logger.info("\(c.label): the client went away while \(c.outbound) was being set up")
                close(c, reset: true)
            }
            return
        }
        switch c.phase {
        case .connecting:
            let err = InetSocket.pendingError(c.server.socket.rawValue)
            if err != 0 || events.contains(.error) {
                logger.info(
                    "\(c.label): \(c.outbound): connect failed: \(SystemError("connect", errno: err == 0 ? ECONNREFUSED : err).reason)"
                )
                failed.add(1, ordering: .relaxed)
                close(c, reset: true)
                return
            }
            if let layers = c.layers {
                c.layers = nil
                c.phase = .handshaking
                // The stream owns the server socket from here on.
                let socket = OwnedDescriptor(takingOwnershipOfDescriptor: c.server.socket.takeDescriptorOwnership())
                c.stream = LayeredStream(takingOwnershipOf: socket, layers: layers, readBuffer: scratch)
                continueSetup(c)
            } else if c.handshake != nil {
                c.phase = .handshaking
                guard let step = c.handshake?.start() else { return }
                apply(step, to: c)
            } else {
                startRelaying(c, leftover: [])
            }
        case .handshaking:
            if c.stream != nil { continueSetup(c) } else { continueHandshake(c) }
        case .relaying:
            relay(c)
        }
    }

    /// The reading side ended and everything it sent is out: end the other side's writing
    /// (half-close).
    func propagateEOF(from: Side, to: Side, _ d: Direction) {
        guard from.readClosed && d.pending == 0 && !to.writeShut else { return }
        InetSocket.shutdownWrite(to.socket.rawValue)
        to.writeShut = true
    }

    // MARK: Relay

    /// Moves what can move in both directions, then sets interest from the new state: the relay of the
    /// connection's shape.
    func relay(_ c: Connection) {
        if let stream = c.stream { relayStream(c, stream) } else { relaySpliced(c) }
    }

    /// One relaxed atomic add per splice or write batch (up to 256 KiB) for the worker's counter and one for the
    /// connection's own: no lock on the data path.
    func counted(_ n: Int, _ d: Direction, from: Side, connection c: Connection) {
        d.bytes += UInt64(n)
        if from === c.client {
            bytesUp.add(UInt64(n), ordering: .relaxed)
            c.tracked?.upload.add(UInt64(n), ordering: .relaxed)
        } else {
            bytesDown.add(UInt64(n), ordering: .relaxed)
            c.tracked?.download.add(UInt64(n), ordering: .relaxed)
        }
    }

    func close(_ c: Connection, reset: Bool) {
        poll.remove(c.client.socket.rawValue)
        if reset { InetSocket.setResetOnClose(c.client.socket.rawValue) }
        c.client.socket.close()
        if let stream = c.stream {
            poll.remove(stream.descriptor)
            stream.close(reset: reset)
        } else {
            poll.remove(c.server.socket.rawValue)
            if reset { InetSocket.setResetOnClose(c.server.socket.rawValue) }
            c.server.socket.close()
        }
        for d in [c.up, c.down] {
            d.pipeRead?.close()
            d.pipeWrite?.close()
        }
        connections[c.id] = nil
        active.add(-1, ordering: .relaxed)
        if let tracked = c.tracked { registry?.remove(tracked) }
        finish(c.origin)
    }

    /// Closes connection `id` on the loop's thread (the external controller's `DELETE /connections/:id`): both
    /// sockets are reset, so the client sees a RST through the TUN at once, whatever phase the connection is in.
    func requestClose(_ id: UInt64) {
        post { [self] in
            guard let c = connections[id] else { return }
            logger.info("\(c.label): \(c.outbound): closed on request (external controller)")
            close(c, reset: true)
        }
    }
}

/// Carries a value that is not Sendable to the one thread that will use it next.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
