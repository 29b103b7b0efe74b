import CSluice
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// An ``OutboundStream`` over a socket and a stack of ``StreamLayer``s, bottom first (TLS under a SOCKS5
/// handshake; Shadowsocks alone). Setup runs the layers bottom-up, each through the established ones below it;
/// transparent layers (proxy handshakes) are dropped once everything is established, so relaying costs what the
/// transforming layers need and no more: a read from the socket opened straight into the caller's buffer, the
/// client's bytes sealed straight into the outgoing buffer (with two or more transforming layers, through two
/// reused buffers between them). With no layers at all, bytes pass as they are.
///
/// A stream inside a multiplexed or QUIC session is another ``OutboundStream``, not a layered one: the relay treats
/// both alike.
///
/// - Note: Takes ownership of the socket (``close(reset:)`` closes it). `readBuffer` is borrowed: a buffer shared by
///   the streams of one thread (the relay's scratch), holding bytes only during one ``read(into:)`` or
///   ``establish()``.
package final class LayeredStream: OutboundStream {
    /// Outgoing bytes are moved down once this many have left (as the relay compacts its buffers).
    static let compactionThreshold = 256 * 1024

    private let socket: OwnedDescriptor
    /// `socket`'s number, read once (not through its lock on every call).
    private let fd: CInt
    private var layers: [any StreamLayer]
    /// The layer in setup; `layers.count` once established.
    private var settingUp = 0
    private var started = false
    /// Sealed bytes for the server, from `outgoingStart` on.
    private var outgoing: [UInt8] = []
    private var outgoingStart = 0
    /// What the server sent behind the setup, opened: the first read hands it out.
    private var early: [UInt8] = []
    /// Between transforming layers, when there are two or more.
    private var stageA: [UInt8] = []
    private var stageB: [UInt8] = []
    private let readBuffer: UnsafeMutableRawBufferPointer

    package init(
        takingOwnershipOf socket: OwnedDescriptor, layers: [any StreamLayer], readBuffer: UnsafeMutableRawBufferPointer
    ) {
        self.socket = socket
        self.fd = socket.rawValue
        self.layers = layers
        self.readBuffer = readBuffer
    }

    package var descriptor: CInt { fd }

    package var isEstablished: Bool { started && settingUp == layers.count }

    package func interest(reading: Bool) -> EventPoll.Events {
        // In setup, as a proxy handshake: send what is queued, then wait for the answer.
        if settingUp < layers.count { return pendingWrite > 0 ? .writable : .readable }
        var events: EventPoll.Events = reading ? .readable : []
        if pendingWrite > 0 { events.insert(.writable) }
        return events
    }

    package var pendingWrite: Int { outgoing.count - outgoingStart }

    // MARK: Setup

    package func establish() -> StreamSetup {
        if !started {
            started = true
            if settingUp < layers.count, let reason = advance(layers[settingUp].start()) { return .failed(reason) }
        }
        while true {
            let written = writeQueued()
            if written < 0 { return .failed(SystemError("write", errno: Int32(-written)).reason) }
            if settingUp == layers.count { return .established }
            if pendingWrite > 0 { return .inProgress }
            let n = csluice_read(fd, readBuffer.baseAddress, readBuffer.count)
            if n == -EAGAIN || n == -EINTR { return .inProgress }
            if n <= 0 {
                return .failed(
                    n == 0 ? "the proxy closed the connection" : SystemError("read", errno: Int32(-n)).reason)
            }
            let bytes = UnsafeRawBufferPointer(rebasing: readBuffer[0..<n])
            let step: StreamLayerStep
            if settingUp == 0 {
                step = layers[0].receive(bytes)
            } else {
                var opened: [UInt8] = []
                do {
                    try pass(bytes, sealing: false, layers: settingUp, into: &opened)
                } catch {
                    return .failed(error.description)
                }
                // Nothing complete yet (part of a record): still send what the layers below queued.
                step = opened.isEmpty ? .send([]) : opened.withUnsafeBytes { layers[settingUp].receive($0) }
            }
            if let reason = advance(step) { return .failed(reason) }
        }
    }

    /// Follows the layer in setup from `step`: queues what it sends (sealed by the layers below), and when it is
    /// established starts the next one with what arrived behind. Returns why setup failed, or nil.
    private func advance(_ first: StreamLayerStep) -> String? {
        var step = first
        // Opened bytes waiting for the layer in setup.
        var carry: [UInt8] = []
        while true {
            switch step {
            case .failed(let reason):
                return reason
            case .send(let bytes):
                if let reason = queue(bytes, below: settingUp) { return reason }
                if carry.isEmpty { return nil }
                step = carry.withUnsafeBytes { layers[settingUp].receive($0) }
                carry = []
            case .established(let send, let leftover):
                if let reason = queue(send, below: settingUp) { return reason }
                carry = leftover
                settingUp += 1
                if settingUp == layers.count {
                    early += carry
                    layers.removeAll { $0.isTransparent }
                    settingUp = layers.count
                    return nil
                }
                step = layers[settingUp].start()
            }
        }
    }

    /// Seals `bytes` through the layers below `top` into the outgoing buffer (with none, the layers below still
    /// get to send what they hold). Returns why sealing failed, or nil.
    private func queue(_ bytes: [UInt8], below top: Int) -> String? {
        if top == 0 {
            outgoing += bytes
            return nil
        }
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(OutboundError) in try pass(raw, sealing: true, layers: top, into: &outgoing) }
        }
        if case .failure(let error) = result { return error.description }
        return nil
    }

    // MARK: Relaying

    package func read(into out: inout [UInt8]) -> StreamTransfer {
        if !early.isEmpty {
            out += early
            early = []
            return .progressed
        }
        let n = csluice_read(fd, readBuffer.baseAddress, readBuffer.count)
        if n > 0 {
            do {
                try pass(
                    UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]), sealing: false, layers: layers.count,
                    into: &out)
            } catch {
                return .failed(error)
            }
            return .progressed
        }
        if n == 0 { return layers.contains { $0.openIncomplete } ? .failed(.streamTruncated) : .ended }
        return n == -EAGAIN || n == -EINTR ? .wouldBlock : .reset
    }

    package func write(_ bytes: UnsafeRawBufferPointer) throws(OutboundError) {
        try pass(bytes, sealing: true, layers: layers.count, into: &outgoing)
    }

    package func flush() -> StreamTransfer {
        let before = pendingWrite
        if writeQueued() < 0 { return .reset }
        return pendingWrite < before ? .progressed : .wouldBlock
    }

    package func shutdownWrite() { InetSocket.shutdownWrite(fd) }

    package func close(reset: Bool) {
        if reset && socket.isOpen { InetSocket.setResetOnClose(fd) }
        socket.close()
    }

    /// Writes queued bytes until none are left or the socket is full. Returns -errno on failure, else 0.
    private func writeQueued() -> Int {
        while outgoingStart < outgoing.count {
            let start = outgoingStart
            // send, not write: no SIGPIPE where nobody ignores it (a health check, tests).
            let n = outgoing.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + start, $0.count - start, CInt(MSG_NOSIGNAL))
            }
            if n < 0 {
                let error = errno
                if error == EAGAIN || error == EINTR { break }
                return -Int(error)
            }
            outgoingStart += n
        }
        if outgoingStart == outgoing.count {
            outgoing.removeAll(keepingCapacity: true)
            outgoingStart = 0
        } else if outgoingStart >= Self.compactionThreshold {
            outgoing.removeFirst(outgoingStart)
            outgoingStart = 0
        }
        return 0
    }

    /// Runs `bytes` through layers `0..<count`: sealing top-down (the last seals into `out`), or opening bottom-up
    /// (the last opens into `out`). With no layer, appends `bytes` as they are.
    private func pass(
        _ bytes: UnsafeRawBufferPointer, sealing: Bool, layers count: Int, into out: inout [UInt8]
    ) throws(OutboundError) {
        func layer(_ k: Int) -> any StreamLayer { layers[sealing ? count - 1 - k : k] }
        switch count {
        case 0:
            out.append(contentsOf: bytes)
        case 1:
            if sealing { try layers[0].seal(bytes, into: &out) } else { try layers[0].open(bytes, into: &out) }
        default:
            // Two reused buffers between the layers, taken out of the properties (no exclusivity conflict, no
            // allocation once they have grown).
            var input: [UInt8] = []
            var output: [UInt8] = []
            swap(&input, &stageA)
            swap(&output, &stageB)
            defer {
                swap(&input, &stageA)
                swap(&output, &stageB)
            }
            input.removeAll(keepingCapacity: true)
            try Self.apply(layer(0), sealing, bytes, into: &input)
            for k in 1..<count {
                let last = k == count - 1
                if !last { output.removeAll(keepingCapacity: true) }
                let result = input.withUnsafeBytes { raw in
                    Result { () throws(OutboundError) in
                        if last {
                            try Self.apply(layer(k), sealing, raw, into: &out)
                        } else {
                            try Self.apply(layer(k), sealing, raw, into: &output)
                        }
                    }
                }
                try result.get()
                if !last { swap(&input, &output) }
            }
        }
    }

    private static func apply(
        _ layer: any StreamLayer, _ sealing: Bool, _ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]
    ) throws(OutboundError) {
        if sealing { try layer.seal(bytes, into: &out) } else { try layer.open(bytes, into: &out) }
    }
}
