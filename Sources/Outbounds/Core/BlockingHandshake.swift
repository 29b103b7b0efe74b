import CSluice
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Runs a proxy handshake on a socket with blocking waits (a session's own thread: the
/// SOCKS5 UDP association). The relay loop drives TCP handshakes without blocking instead.
package enum BlockingHandshake {
    /// Waits for the connect started on `fd`, then runs `handshake` until it is
    /// established, fails, or `deadline` (monotonic ns) passes. Returns nil on success,
    /// else what went wrong.
    package static func run(_ handshake: inout some ProxyHandshake, on fd: CInt, deadline: UInt64) -> String? {
        func remaining() -> Int32 {
            Int32(clamping: MonotonicClock.elapsed(from: MonotonicClock.now, to: deadline) / 1_000_000)
        }
        guard (try? Descriptors.waitWritable(fd, timeoutMilliseconds: remaining())) == true else {
            return "connect timed out"
        }
        let error = InetSocket.pendingError(fd)
        if error != 0 { return "connect: \(SystemError("connect", errno: error).reason)" }
        var step = handshake.start()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            switch step {
            case .failed(let reason):
                return reason
            case .established:
                return nil
            case .send(let bytes):
                var offset = 0
                while offset < bytes.count {
                    guard (try? Descriptors.waitWritable(fd, timeoutMilliseconds: remaining())) == true else {
                        return "timed out"
                    }
                    let n = bytes.withUnsafeBytes { csluice_write(fd, $0.baseAddress! + offset, $0.count - offset) }
                    if n < 0 && n != -EAGAIN { return "write: \(SystemError("write", errno: Int32(-n)).reason)" }
                    if n > 0 { offset += n }
                }
                guard (try? Descriptors.waitReadable(fd, timeoutMilliseconds: remaining())) == true else {
                    return "the proxy did not answer in time"
                }
                let n = buffer.withUnsafeMutableBytes { csluice_read(fd, $0.baseAddress, $0.count) }
                if n == -EAGAIN {
                    step = .send([])
                    continue
                }
                if n < 0 { return "read: \(SystemError("read", errno: Int32(-n)).reason)" }
                if n == 0 { return "the proxy closed the connection during the handshake" }
                step = buffer.withUnsafeBytes { handshake.receive(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
        }
    }
}
