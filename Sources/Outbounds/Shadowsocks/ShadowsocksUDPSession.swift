import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// One client endpoint's Shadowsocks UDP: one socket to the server, so the server keeps
/// one association (and one remote source port) for it: full cone end to end.
package final class ShadowsocksUDPSession: UDPSession, @unchecked Sendable {
    private enum State {
        case starting(PendingDatagrams)
        case ready(server: InetEndpoint, socket: OwnedDescriptor)
        case closed
    }

    private let outbound: ShadowsocksOutbound
    private let state = Locked<State>(.starting(PendingDatagrams()))

    package init(outbound: ShadowsocksOutbound) { self.outbound = outbound }

    package var descriptor: CInt {
        state.withLock { if case .ready(_, let socket) = $0 { socket.rawValue } else { -1 } }
    }

    package var controlDescriptor: CInt { -1 }

    package func start(ready: @escaping @Sendable (Bool, String) -> Void) {
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

    package func send(_ payload: UnsafeRawBufferPointer, to destination: DatagramAddress) -> Bool {
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

    package func receive(into buffer: UnsafeMutableRawBufferPointer) -> UDPReceive {
        guard case .ready(let server, let socket) = state.withLock({ $0 }) else { return .empty }
        let got: (Int, InetEndpoint)?
        do {
            got = try InetSocket.receive(socket.rawValue, into: buffer)
        } catch {
            return .skipped
        }
        guard let (n, source) = got else { return .empty }
        // Only the server speaks for this session.
        guard source.address.mapped(toIPv4: server.address.isIPv4) == server.address else { return .skipped }
        guard
            let (from, payload) = try? ShadowsocksDatagram.open(
                UnsafeRawBufferPointer(rebasing: buffer[0..<n]), key: outbound.key)
        else { return .skipped }
        payload.withUnsafeBytes { buffer.copyMemory(from: $0) }
        return .datagram(0..<payload.count, from: DatagramAddress(from))
    }

    package func close() {
        let old = state.withLock { s -> State in
            defer { s = .closed }
            return s
        }
        if case .ready(_, let socket) = old { socket.close() }
    }
}
