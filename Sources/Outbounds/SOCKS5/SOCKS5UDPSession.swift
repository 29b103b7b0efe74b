import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// One SOCKS5 UDP association (RFC 1928 section 7): a TCP control connection that must
/// stay open for as long as the association lives, and a UDP socket exchanging
/// header-wrapped datagrams with the relay endpoint the proxy named.
///
/// The association is set up on a thread of its own (connect, authentication, UDP
/// ASSOCIATE: a few round trips); datagrams sent meanwhile wait in a short queue.
package final class SOCKS5UDPSession: UDPSession, @unchecked Sendable {
    /// Connect and handshake must finish within this.
    package static let setupMilliseconds: Int32 = 10_000

    private enum State {
        /// Setting up; `control` once its connect started (closing it aborts the setup).
        case starting(PendingDatagrams, control: OwnedDescriptor?)
        case ready(relay: InetEndpoint, udp: OwnedDescriptor, control: OwnedDescriptor)
        case closed
    }

    private let outbound: SOCKS5Outbound
    private let state = Locked<State>(.starting(PendingDatagrams(), control: nil))

    package init(outbound: SOCKS5Outbound) { self.outbound = outbound }

    package var descriptor: CInt {
        state.withLock { if case .ready(_, let udp, _) = $0 { udp.rawValue } else { -1 } }
    }

    package var controlDescriptor: CInt {
        state.withLock { if case .ready(_, _, let control) = $0 { control.rawValue } else { -1 } }
    }

    package func start(ready: @escaping @Sendable (Bool, String) -> Void) {
        do {
            try OSThread.detached(name: "tun-socks-udp") { [self] in
                if let problem = associate() {
                    close()
                    ready(false, problem)
                } else {
                    ready(true, "")
                }
            }
        } catch {
            close()
            ready(false, "cannot start the association thread: \(error)")
        }
    }

    /// Connects, authenticates and asks for the association; nil on success.
    private func associate() -> String? {
        let deadline = MonotonicClock.now + UInt64(Self.setupMilliseconds) * 1_000_000
        let (server, problem) = outbound.server.resolveBlocking(
            outbound.resolver, timeoutMilliseconds: Self.setupMilliseconds)
        guard let server else { return problem }
        let control: OwnedDescriptor
        do {
            control = try outbound.dial.connectTCP(to: server)
        } catch {
            return "\(error)"
        }
        let open = state.withLock { s -> Bool in
            guard case .starting(let pending, .none) = s else { return false }
            s = .starting(pending, control: control)
            return true
        }
        guard open else {
            control.close()
            return "closed while starting"
        }
        // DST.ADDR/PORT: where our datagrams will come from, unknown before we send (RFC 1928 allows zeros).
        let unspecified: IPAddress = server.address.isIPv4 ? .v4(IPv4Address(rawValue: 0)) : .v6(.any)
        var handshake = SOCKS5Handshake(
            command: .udpAssociate, target: SocketEndpoint(address: unspecified, port: 0),
            username: outbound.config.username, password: outbound.config.password)
        if let failure = BlockingHandshake.run(&handshake, on: control.rawValue, deadline: deadline) {
            return "UDP ASSOCIATE with \(server): \(failure)"
        }
        // The relay endpoint; an unspecified address means "the server's own address".
        guard let bound = handshake.boundEndpoint, case .address(var relayAddress) = bound.host else {
            return "UDP ASSOCIATE with \(server): the proxy named no relay address"
        }
        if relayAddress == .v4(IPv4Address(rawValue: 0)) || relayAddress == .v6(.any) { relayAddress = server.address }
        let relay = InetEndpoint(relayAddress, bound.port)
        let udp: OwnedDescriptor
        do {
            udp = try outbound.dial.udpSocket(family: relay.address.socketFamily)
        } catch {
            return "\(error)"
        }
        let queued = state.withLock { s -> [([UInt8], DatagramAddress)]? in
            guard case .starting(var pending, _) = s else { return nil }
            s = .ready(relay: relay, udp: udp, control: control)
            return pending.take()
        }
        guard let queued else {
            udp.close()
            return "closed while starting"
        }
        for (payload, destination) in queued { _ = payload.withUnsafeBytes { send($0, to: destination) } }
        return nil
    }

    package func send(_ payload: UnsafeRawBufferPointer, to destination: DatagramAddress) -> Bool {
        let target = state.withLock { s -> (InetEndpoint, CInt)? in
            switch s {
            case .starting(var pending, let control):
                _ = pending.append(payload, to: destination)
                s = .starting(pending, control: control)
                return nil
            case .ready(let relay, let udp, _): return (relay, udp.rawValue)
            case .closed: return nil
            }
        }
        guard let (relay, udp) = target else { return false }
        var packet: [UInt8] = []
        packet.reserveCapacity(payload.count + 22)
        guard SOCKS5Datagram.encodeHeader(destination.socketEndpoint, into: &packet) else { return false }
        packet.append(contentsOf: payload)
        return packet.withUnsafeBytes { (try? InetSocket.send(udp, $0, to: relay)) ?? false }
    }

    package func receive(into buffer: UnsafeMutableRawBufferPointer) -> UDPReceive {
        guard case .ready(let relay, let udp, _) = state.withLock({ $0 }) else { return .empty }
        let got: (Int, InetEndpoint)?
        do {
            got = try InetSocket.receive(udp.rawValue, into: buffer)
        } catch {
            return .skipped
        }
        guard let (n, source) = got else { return .empty }
        // Only the relay speaks for the association (RFC 1928: drop other senders).
        guard source.address.mapped(toIPv4: relay.address.isIPv4) == relay.address else { return .skipped }
        guard let (from, offset) = SOCKS5Datagram.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) else {
            return .skipped
        }
        return .datagram(offset..<n, from: DatagramAddress(from))
    }

    package func close() {
        let old = state.withLock { s -> State in
            defer { s = .closed }
            return s
        }
        switch old {
        case .starting(_, let control): control?.close()
        case .ready(_, let udp, let control):
            udp.close()
            control.close()
        case .closed: break
        }
    }
}
