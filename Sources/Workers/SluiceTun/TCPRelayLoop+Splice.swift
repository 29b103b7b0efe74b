import CSluice
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// The socket shape's relay: kernel to kernel with splice(2) through one pipe per direction (DIRECT, and SOCKS5 and
/// HTTP CONNECT once their handshake is done). The bytes never reach userspace; no allocation per read.
extension TCPRelayLoop {
    /// Makes the pipes and queues what goes first: a local client's request to the server, the proxy's leftover to
    /// the client. Returns false when the connection was torn down.
    func startSplicing(_ c: Connection, leftover: [UInt8]) -> Bool {
        do {
            try Self.makePipe(c.up)
            try Self.makePipe(c.down)
        } catch {
            handshakeFailed(c, "\(error)")
            return false
        }
        for (bytes, d) in [(c.upstream, c.up), (leftover, c.down)] where !bytes.isEmpty {
            // A fresh pipe takes a handshake's leftover (one read) or a local client's request whole.
            let n = bytes.withUnsafeBytes { csluice_write(d.pipeWrite!.rawValue, $0.baseAddress, $0.count) }
            guard n == bytes.count else {
                handshakeFailed(c, "cannot queue the first \(bytes.count) bytes")
                return false
            }
            d.pending = n
        }
        return true
    }

    private static func makePipe(_ d: Direction) throws(SystemError) {
        var fds: [CInt] = [-1, -1]
        try Posix.check("pipe2", csluice_splice_pipe(&fds, CInt(pipeSize)))
        d.pipeRead = OwnedDescriptor(takingOwnershipOfDescriptor: fds[0])
        d.pipeWrite = OwnedDescriptor(takingOwnershipOfDescriptor: fds[1])
    }

    /// Moves what can move in both directions, then sets interest from the new state.
    func relaySpliced(_ c: Connection) {
        guard splice(c.up, from: c.client, to: c.server, connection: c) else { return }
        guard splice(c.down, from: c.server, to: c.client, connection: c) else { return }
        if c.client.readClosed && c.up.pending == 0 && c.server.readClosed && c.down.pending == 0 {
            close(c, reset: false)
            return
        }
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

    /// Reads from `from` into the pipe and splices the pipe to `to`. Returns false when
    /// the connection was torn down.
    private func splice(_ d: Direction, from: Side, to: Side, connection c: Connection) -> Bool {
        guard let pipeWrite = d.pipeWrite?.rawValue, let pipeRead = d.pipeRead?.rawValue else { return false }
        while true {
            var progressed = false
            if !from.readClosed && d.pending < Self.pipeSize {
                let n = csluice_splice(from.socket.rawValue, pipeWrite, Self.pipeSize - d.pending, 0)
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
                let n = csluice_splice(pipeRead, to.socket.rawValue, d.pending, 0)
                if n > 0 {
                    d.pending -= n
                    counted(n, d, from: from, connection: c)
                    progressed = true
                } else if n != -EAGAIN {
                    close(c, reset: true)
                    return false
                }
            }
            propagateEOF(from: from, to: to, d)
            if !progressed { return true }
        }
    }
}
