import SluiceConfig
import SluiceNet
import SluiceProxy
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// An `ss` proxy (Shadowsocks AEAD): TCP relayed through userspace, every byte sealed;
/// UDP when `udp: true`, each datagram sealed on its own. Names of fake destinations go
/// to the server as names.
struct ShadowsocksOutbound: Outbound {
    let name: String
    let config: ShadowsocksProxy
    /// Derived once from the password (EVP_BytesToKey).
    let key: ShadowsocksKey
    let dial: DialSettings
    let resolver: NameResolver

    init(name: String, config: ShadowsocksProxy, dial: DialSettings, resolver: NameResolver) {
        self.name = name
        self.config = config
        self.key = ShadowsocksKey(method: Self.method(config.cipher), password: config.password)
        self.dial = dial
        self.resolver = resolver
    }

    static func method(_ cipher: ShadowsocksProxy.Cipher) -> ShadowsocksMethod {
        switch cipher {
        case .aes128GCM: .aes128GCM
        case .aes256GCM: .aes256GCM
        case .chacha20IETFPoly1305: .chacha20IETFPoly1305
        }
    }

    var server: ProxyServer { ProxyServer(endpoint: config.server) }
    var sendsNames: Bool { true }

    func planTCP(to target: FlowTarget) throws(SystemError) -> TCPPlan {
        TCPPlan(hop: server.hop, codec: ShadowsocksCodec(key: key, target: target.proxyTarget))
    }

    func connectTCP(to hop: InetEndpoint) throws(SystemError) -> OwnedDescriptor { try dial.connectTCP(to: hop) }

    var udpUnsupportedReason: String? { config.udp ? nil : "udp is off for this ss proxy (set udp: true)" }

    func openUDP(family: CInt) throws(SystemError) -> any UDPSession {
        ShadowsocksUDPSession(outbound: self)
    }
}

/// One Shadowsocks TCP connection's two directions: the target address leads the
/// client's stream (sent at once, so servers that speak first are reached).
final class ShadowsocksCodec: StreamCodec {
    private var sealer: ShadowsocksStreamSealer
    private var opener: ShadowsocksStreamOpener
    private let target: SocketEndpoint

    init(key: ShadowsocksKey, target: SocketEndpoint) {
        sealer = ShadowsocksStreamSealer(key: key)
        opener = ShadowsocksStreamOpener(key: key)
        self.target = target
    }

    func start(toServer out: inout [UInt8], toClient: inout [UInt8]) {
        var header: [UInt8] = []
        SOCKSAddress.encode(target, into: &header)
        sealer.seal(header, into: &out)
    }

    func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) { sealer.seal(bytes, into: &out) }

    func decode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(StreamCodecError) {
        do {
            try opener.open(bytes, into: &out)
        } catch {
            throw StreamCodecError(description: "Shadowsocks: \(error)")
        }
    }

    var decodeIncomplete: Bool { opener.hasPartialChunk }
}

/// One client endpoint's Shadowsocks UDP: one socket to the server, so the server keeps
/// one association (and one remote source port) for it: full cone end to end.
final class ShadowsocksUDPSession: UDPSession, @unchecked Sendable {
    private enum State {
        case starting(PendingDatagrams)
        case ready(server: InetEndpoint, socket: OwnedDescriptor)
        case closed
    }

    private let outbound: ShadowsocksOutbound
    private let state = Locked<State>(.starting(PendingDatagrams()))

    init(outbound: ShadowsocksOutbound) { self.outbound = outbound }

    var descriptor: CInt {
        state.withLock { if case .ready(_, let socket) = $0 { socket.rawValue } else { -1 } }
    }

    var controlDescriptor: CInt { -1 }

    func start(ready: @escaping @Sendable (Bool, String) -> Void) {
        if case .address(let a) = outbound.config.server.host {
            finish(InetEndpoint(a, outbound.config.server.port), problem: "", ready: ready)
            return
        }
        do {
            try OSThread.detached(name: "tun-ss-udp") { [self] in
                let (server, problem) = outbound.server.resolveBlocking(outbound.resolver, timeoutMilliseconds: 10_000)
                finish(server, problem: problem, ready: ready)
            }
        } catch {
            close()
            ready(false, "cannot start a resolver thread: \(error)")
        }
    }

    private func finish(_ server: InetEndpoint?, problem: String, ready: @escaping @Sendable (Bool, String) -> Void) {
        guard let server else {
            close()
            ready(false, problem)
            return
        }
        let socket: OwnedDescriptor
        do {
            socket = try outbound.dial.udpSocket(family: server.address.socketFamily)
        } catch {
            close()
            ready(false, "\(error)")
            return
        }
        let queued = state.withLock { s -> [([UInt8], DatagramAddress)]? in
            guard case .starting(var pending) = s else { return nil }
            s = .ready(server: server, socket: socket)
            return pending.take()
        }
        guard let queued else {
            socket.close()
            ready(false, "closed while starting")
            return
        }
        for (payload, destination) in queued { _ = payload.withUnsafeBytes { send($0, to: destination) } }
        ready(true, "")
    }

    func send(_ payload: UnsafeRawBufferPointer, to destination: DatagramAddress) -> Bool {
        let target = state.withLock { s -> (InetEndpoint, CInt)? in
            switch s {
            case .starting(var pending):
                _ = pending.append(payload, to: destination)
                s = .starting(pending)
                return nil
            case .ready(let server, let socket): return (server, socket.rawValue)
            case .closed: return nil
            }
        }
        guard let (server, socket) = target,
            let packet = ShadowsocksDatagram.seal(payload, to: destination.socketEndpoint, key: outbound.key)
        else { return false }
        return packet.withUnsafeBytes { (try? InetSocket.send(socket, $0, to: server)) ?? false }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> UDPReceive {
        guard case .ready(let server, let socket) = state.withLock({ $0 }) else { return .empty }
        let got: (Int, InetEndpoint)?
        do {
            got = try InetSocket.receive(socket.rawValue, into: buffer)
        } catch {
            return .skipped
        }
        guard let (n, source) = got else { return .empty }
        // Only the server speaks for this session.
        guard UDPFlowTable.mapped(source.address, toIPv4: server.address.isIPv4) == server.address else { return .skipped }
        guard let (from, payload) = try? ShadowsocksDatagram.open(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), key: outbound.key)
        else { return .skipped }
        payload.withUnsafeBytes { buffer.copyMemory(from: $0) }
        return .datagram(0..<payload.count, from: DatagramAddress(from))
    }

    func close() {
        let old = state.withLock { s -> State in
            defer { s = .closed }
            return s
        }
        if case .ready(_, let socket) = old { socket.close() }
    }
}
