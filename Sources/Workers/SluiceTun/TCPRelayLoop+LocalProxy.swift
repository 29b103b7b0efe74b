import CSluice
import SluiceConfig
import SluiceInbounds
import SluiceNet
import SluiceOutbounds
import SluiceRouting
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// A local proxy port's client before its connection relays: in its handshake, waiting for its route, or holding
/// a SOCKS5 UDP association (its TCP connection then only says when the association ends).
final class LocalProxyClient {
    let socket: OwnedDescriptor
    /// The client, as an IPv4 address when it came over IPv4 to a dual-stack port.
    let peer: InetEndpoint
    /// The address and port it reached.
    let local: InetEndpoint
    let index: Int
    let listener: InboundConfiguration.Listener
    var server: LocalProxyServer
    /// When the handshake must be done (monotonic ns).
    let deadline: UInt64
    var associated = false

    init(
        socket: OwnedDescriptor, peer: InetEndpoint, local: InetEndpoint, index: Int,
        listener: InboundConfiguration.Listener,
        server: LocalProxyServer, deadline: UInt64
    ) {
        self.socket = socket
        self.peer = peer
        self.local = local
        self.index = index
        self.listener = listener
        self.server = server
        self.deadline = deadline
    }
}

/// The local proxy ports (`mixed-port`, `socks-port`, `port`, `listeners:`): their clients are accepted here, speak
/// SOCKS or HTTP (``LocalProxyServer``), and once the rules decided their route (off this thread) relay like the
/// TUN's connections. Listening sockets come from sluiced, which keeps them across this worker's restarts.
extension TCPRelayLoop {
    /// Accepts on local proxy port `index` (sluiced bound it).
    func listenLocal(_ socket: OwnedDescriptor, index: Int) throws(SystemError) {
        try Descriptors.setNonBlocking(socket.rawValue)
        let cookie = Self.localCookieBase + UInt64(index)
        proxyListeners[cookie] = (socket, index)
        try poll.add(socket.rawValue, .readable, cookie: cookie)
    }

    func acceptLocal(_ listener: CInt, index: Int) {
        guard let ports else { return }
        // Bounded per wake-up, so that a flood on one port does not starve the relays.
        for _ in 0..<256 {
            guard let (socket, raw) = acceptNext(listener) else { return }
            // One snapshot per client: the port's settings and the access lists agree.
            let settings = ports.settings
            guard settings.listeners.indices.contains(index) else {
                socket.close()
                continue
            }
            let port = settings.listeners[index]
            let peer = InetEndpoint(raw.address.unmapped, raw.port)
            guard settings.admits(peer.address, on: port) else {
                logger.info("\(port.name): refused \(peer): not in lan-allowed-ips, or in lan-disallowed-ips")
                InetSocket.setResetOnClose(socket.rawValue)
                socket.close()
                failed.add(1, ordering: .relaxed)
                continue
            }
            let bound = (try? InetSocket.address(socket.rawValue)) ?? InetEndpoint(port.address, port.port)
            let kind: LocalProxyServer.Kind =
                switch port.kind {
                case .mixed: .mixed
                case .socks: .socks
                case .http: .http
                }
            let client = LocalProxyClient(
                socket: socket, peer: peer, local: InetEndpoint(bound.address.unmapped, bound.port), index: index,
                listener: port,
                server: LocalProxyServer(
                    kind: kind, credentials: ProxyCredentials(users: settings.credentials(for: peer.address, on: port))),
                deadline: MonotonicClock.now + Self.establishTimeout)
            let id = nextID
            nextID += 2
            proxyClients[id] = client
            do {
                try poll.add(socket.rawValue, .readable, cookie: id)
            } catch {
                logger.error("\(port.name): epoll: \(error)")
                proxyClients[id] = nil
                socket.close()
            }
        }
    }

    /// The client spoke (or went away).
    func serveLocal(_ cookie: UInt64, _ c: LocalProxyClient) {
        let n = csluice_read(c.socket.rawValue, scratch.baseAddress, scratch.count)
        if n == -EAGAIN || n == -EINTR { return }
        if n <= 0 {
            if c.associated { logger.info("\(c.listener.name): \(c.peer): UDP association closed") }
            dropLocal(cookie, c)
            return
        }
        // Whatever comes on an association's connection means nothing (RFC 1928: it only keeps it alive).
        if c.associated { return }
        switch c.server.receive(UnsafeRawBufferPointer(rebasing: scratch[0..<n])) {
        case .reply(let bytes):
            if !Self.writeAll(c.socket, bytes) { dropLocal(cookie, c) }
        case .refuse(let why, let reply):
            logger.info("\(c.listener.name): \(c.peer): \(why)")
            _ = Self.writeAll(c.socket, reply)
            failed.add(1, ordering: .relaxed)
            dropLocal(cookie, c)
        case .udpAssociate(let user, let pending):
            guard c.listener.udp else {
                logger.info("\(c.listener.name): \(c.peer): UDP ASSOCIATE refused (udp: false)")
                _ = Self.writeAll(c.socket, pending + LocalProxyServer.socks5Reply(7, bound: nil))
                dropLocal(cookie, c)
                return
            }
            // The port's UDP socket shares its number and takes the datagrams of this client's address. The
            // association exists before the reply leaves: a client sends its first datagram as soon as it reads it.
            c.associated = true
            ports?.associate(c.index, c.peer.address, user: user)
            let reply =
                pending
                + LocalProxyServer.socks5Reply(0, bound: SocketEndpoint(address: c.local.address, port: c.local.port))
            guard Self.writeAll(c.socket, reply) else {
                dropLocal(cookie, c)
                return
            }
            logger.info("\(c.listener.name): \(c.peer): UDP association opened")
        case .connect(let request):
            // Decided on a lookup lane (the rules may wait for a name or a process); the client is not polled meanwhile.
            poll.remove(c.socket.rawValue)
            proxyClients[cookie] = nil
            let asked = LocalRequest(
                network: .tcp, client: c.peer, local: c.local, target: request.target, listener: c.listener,
                kind: request.kind, user: request.user)
            let box = UncheckedBox((c, request))
            router.decideLocal(asked) { [self] route in
                post { [self] in proceed(box.value.0, box.value.1, route) }
            }
        }
    }

    /// Goes on with a client whose route is decided: relays it, or tells it no and closes.
    private func proceed(_ c: LocalProxyClient, _ request: LocalProxyRequest, _ decided: LocalRoute) {
        guard let outbound = decided.outbound else {
            _ = Self.writeAll(c.socket, request.refused)
            failed.add(1, ordering: .relaxed)
            c.socket.close()
            return
        }
        // mihomo answers a local client before it dials; a dial that fails then resets it.
        guard Self.writeAll(c.socket, request.accepted) else {
            failed.add(1, ordering: .relaxed)
            c.socket.close()
            return
        }
        begin(
            client: c.socket, origin: .local,
            route: Route(
                destination: decided.destination, outbound: outbound, label: decided.label, name: decided.name,
                facts: decided.facts, upstream: request.upstream))
    }

    /// Clients whose handshake outlived ``establishTimeout``.
    func expireLocal(now: UInt64) {
        for (cookie, c) in proxyClients where !c.associated && now > c.deadline {
            logger.info("\(c.listener.name): \(c.peer): handshake timed out")
            failed.add(1, ordering: .relaxed)
            dropLocal(cookie, c)
        }
    }

    func dropLocal(_ cookie: UInt64, _ c: LocalProxyClient) {
        poll.remove(c.socket.rawValue)
        if c.associated { ports?.dissociate(c.index, c.peer.address) }
        c.socket.close()
        proxyClients[cookie] = nil
    }

    /// Writes a handshake answer whole (a few hundred bytes at most, into a fresh socket's empty buffer); false
    /// when the client is gone.
    static func writeAll(_ socket: OwnedDescriptor, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes {
                csluice_write(socket.rawValue, $0.baseAddress! + offset, $0.count - offset)
            }
            if n == -EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}
