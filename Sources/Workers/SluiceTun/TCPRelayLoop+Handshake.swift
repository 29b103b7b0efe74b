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

// A proxy's handshake on the connected socket, driven by non-blocking reads and writes, until the tunnel opens.

extension TCPRelayLoop {
    func continueHandshake(_ c: Connection) {
        if !flushHandshake(c) { return }
        guard c.handshakeOut.isEmpty else { return }
        let n = csluice_read(c.server.socket.rawValue, scratch.baseAddress, scratch.count)
        if n == -EAGAIN { return }
        if n <= 0 {
            let why = n == 0 ? "the proxy closed the connection" : SystemError("read", errno: Int32(-n)).reason
            handshakeFailed(c, why)
            return
        }
        guard let step = c.handshake?.receive(UnsafeRawBufferPointer(rebasing: scratch[0..<n])) else { return }
        apply(step, to: c)
    }

    func apply(_ step: HandshakeStep, to c: Connection) {
        switch step {
        case .send(let bytes):
            c.handshakeOut += bytes
            guard flushHandshake(c) else { return }
            try? poll.modify(c.server.socket.rawValue, c.handshakeOut.isEmpty ? .readable : .writable, cookie: c.id + 1)
        case .established(let leftover):
            c.handshake = nil
            startRelaying(c, leftover: leftover)
        case .failed(let reason):
            handshakeFailed(c, reason)
        }
    }

    /// Writes pending handshake bytes; false when the connection was torn down.
    func flushHandshake(_ c: Connection) -> Bool {
        while !c.handshakeOut.isEmpty {
            let n = c.handshakeOut.withUnsafeBytes { csluice_write(c.server.socket.rawValue, $0.baseAddress, $0.count) }
            if n == -EAGAIN { return true }
            if n < 0 {
                handshakeFailed(c, SystemError("write", errno: Int32(-n)).reason)
                return false
            }
            c.handshakeOut.removeFirst(n)
        }
        return true
    }

    func handshakeFailed(_ c: Connection, _ reason: String) {
        logger.info("\(c.label): \(c.outbound): \(reason)")
        failed.add(1, ordering: .relaxed)
        close(c, reset: true)
    }

    /// The tunnel is open: set up the directions, hand over what the proxy sent early,
    /// and start moving bytes.
    func startRelaying(_ c: Connection, leftover: [UInt8]) {
        c.phase = .relaying
        if let stream = c.stream {
            guard startStreaming(c, stream) else { return }
        } else {
            guard startSplicing(c, leftover: leftover) else { return }
        }
        c.upstream = []
        _ = try? InetSocket.setOption(
            c.client.socket.rawValue, level: CInt(IPPROTO_TCP), name: TCP_NODELAY, value: 1, "TCP_NODELAY")
        egress.applyKeepAlive(c.client.socket.rawValue)
        relay(c)
    }
}
