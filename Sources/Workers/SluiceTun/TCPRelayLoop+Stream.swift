import CSluice
import SluiceOutbounds
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// The stream shape's relay: the client's kernel socket to an ``OutboundStream`` (a ``LayeredStream`` today:
/// Shadowsocks, TLS; a stream inside a multiplexed or QUIC session later, with no change here). The client's bytes
/// are read into the loop's scratch buffer and handed to the stream, which seals them into its own outgoing buffer;
/// the server's are opened by the stream into the direction's buffer and written to the client: no more copies
/// than the transformation needs. The same bound per direction as the splice relay: no reading from the client
/// while the stream holds ``TCPRelayLoop/pipeSize`` bytes, none from the stream while the client's buffer does.
extension TCPRelayLoop {
    /// Advances the stream's setup (its layers' handshakes) after a connect or on readiness.
    func continueSetup(_ c: Connection) {
        guard let stream = c.stream else { return }
        switch stream.establish() {
        case .inProgress:
            try? poll.modify(stream.descriptor, stream.interest(reading: true), cookie: c.id + 1)
        case .established:
            startRelaying(c, leftover: [])
        case .failed(let reason):
            handshakeFailed(c, reason)
        }
    }

    /// Hands a local client's request to the stream. Returns false when the connection was torn down.
    func startStreaming(_ c: Connection, _ stream: any OutboundStream) -> Bool {
        guard !c.upstream.isEmpty else { return true }
        // withUnsafeBytes rethrows untyped errors: carry the typed one out in a Result.
        let written = c.upstream.withUnsafeBytes { bytes in
            Result { () throws(OutboundError) in try stream.write(bytes) }
        }
        if case .failure(let error) = written {
            handshakeFailed(c, error.description)
            return false
        }
        counted(c.upstream.count, c.up, from: c.client, connection: c)
        return true
    }

    /// Moves what can move in both directions, then sets interest from the new state.
    func relayStream(_ c: Connection, _ stream: any OutboundStream) {
        guard streamUp(c, stream), streamDown(c, stream) else { return }
        if c.client.readClosed && stream.pendingWrite == 0 && c.server.readClosed && c.down.pending == 0 {
            close(c, reset: false)
            return
        }
        var clientMask: EventPoll.Events = []
        if !c.client.readClosed && stream.pendingWrite < Self.pipeSize { clientMask.insert(.readable) }
        if c.down.pending > 0 { clientMask.insert(.writable) }
        try? poll.modify(c.client.socket.rawValue, clientMask, cookie: c.id)
        let reading = !c.server.readClosed && c.down.pending < Self.pipeSize
        try? poll.modify(stream.descriptor, stream.interest(reading: reading), cookie: c.id + 1)
    }

    /// Client to stream: reads into the scratch buffer, the stream seals and sends. Counts the client's bytes (as
    /// the splice relay does; the stream's overhead is not the client's traffic). Returns false when the
    /// connection was torn down.
    private func streamUp(_ c: Connection, _ stream: any OutboundStream) -> Bool {
        while true {
            var progressed = false
            if !c.client.readClosed && stream.pendingWrite < Self.pipeSize {
                let n = csluice_read(c.client.socket.rawValue, scratch.baseAddress, scratch.count)
                if n > 0 {
                    do {
                        try stream.write(UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                    } catch {
                        logger.info("\(c.label): \(c.outbound): \(error)")
                        close(c, reset: true)
                        return false
                    }
                    counted(n, c.up, from: c.client, connection: c)
                    progressed = true
                } else if n == 0 {
                    c.client.readClosed = true
                    progressed = true
                } else if n != -EAGAIN {
                    close(c, reset: true)
                    return false
                }
            }
            if stream.pendingWrite > 0 {
                switch stream.flush() {
                case .progressed:
                    progressed = true
                case .wouldBlock, .ended:
                    break
                case .reset:
                    close(c, reset: true)
                    return false
                case .failed(let error):
                    logger.info("\(c.label): \(c.outbound): \(error)")
                    close(c, reset: true)
                    return false
                }
            }
            if c.client.readClosed && stream.pendingWrite == 0 && !c.server.writeShut {
                // Half-close: the client is done and everything it sent is out.
                stream.shutdownWrite()
                c.server.writeShut = true
            }
            if !progressed { return true }
        }
    }

    /// Stream to client: the stream opens into the direction's buffer, which is written to the client. Reading
    /// stops while the buffer holds ``pipeSize`` bytes. Returns false when the connection was torn down.
    private func streamDown(_ c: Connection, _ stream: any OutboundStream) -> Bool {
        let d = c.down
        while true {
            var progressed = false
            if !c.server.readClosed && d.pending < Self.pipeSize {
                switch stream.read(into: &d.buffer) {
                case .progressed:
                    d.pending = d.buffer.count - d.start
                    progressed = true
                case .ended:
                    c.server.readClosed = true
                    progressed = true
                case .wouldBlock:
                    break
                case .reset:
                    close(c, reset: true)
                    return false
                case .failed(let error):
                    // Undecodable, or the server's stream stopped inside a sealed chunk: not a clean end.
                    logger.info("\(c.label): \(c.outbound): \(error)")
                    close(c, reset: true)
                    return false
                }
            }
            if d.pending > 0 {
                let n = d.buffer.withUnsafeBytes {
                    csluice_write(c.client.socket.rawValue, $0.baseAddress! + d.start, d.pending)
                }
                if n > 0 {
                    d.start += n
                    d.pending -= n
                    if d.pending == 0 {
                        d.buffer.removeAll(keepingCapacity: true)
                        d.start = 0
                    } else if d.start >= Self.pipeSize {
                        d.buffer.removeFirst(d.start)
                        d.start = 0
                    }
                    counted(n, d, from: c.server, connection: c)
                    progressed = true
                } else if n != -EAGAIN {
                    close(c, reset: true)
                    return false
                }
            }
            propagateEOF(from: c.server, to: c.client, d)
            if !progressed { return true }
        }
    }
}
