import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Drives an ``OutboundStream`` with blocking waits on its descriptor, until a deadline (monotonic ns): a proxy
/// group's health check on its own thread, and tests. The relay loop drives streams without blocking instead.
package enum BlockingStream {
    /// Runs the stream's setup until it is established (nil) or fails or the deadline passes (why).
    package static func establish(_ stream: any OutboundStream, deadline: UInt64) -> String? {
        while true {
            switch stream.establish() {
            case .established: return nil
            case .failed(let reason): return reason
            case .inProgress:
                guard wait(stream, stream.interest(reading: true), deadline) else {
                    return "the proxy did not answer in time"
                }
            }
        }
    }

    /// Sends `bytes` whole (none: what the stream holds, e.g. a Shadowsocks header). Returns why it could not, or nil.
    package static func write(_ bytes: [UInt8], to stream: any OutboundStream, deadline: UInt64) -> String? {
        if !bytes.isEmpty {
            let taken = bytes.withUnsafeBytes { raw in Result { () throws(OutboundError) in try stream.write(raw) } }
            if case .failure(let error) = taken { return error.description }
        }
        while stream.pendingWrite > 0 {
            switch stream.flush() {
            case .progressed, .ended: continue
            case .wouldBlock: guard wait(stream, .writable, deadline) else { return "timed out" }
            case .reset: return "the connection failed"
            case .failed(let error): return error.description
            }
        }
        return nil
    }

    /// What the server sends next, opened (waits for at least one byte); empty when its stream ended; nil when the
    /// stream failed or the deadline passed.
    package static func read(from stream: any OutboundStream, deadline: UInt64) -> [UInt8]? {
        var out: [UInt8] = []
        while true {
            switch stream.read(into: &out) {
            case .progressed: if !out.isEmpty { return out }
            case .ended: return out
            case .wouldBlock: guard wait(stream, .readable, deadline) else { return nil }
            case .reset, .failed: return nil
            }
        }
    }

    /// Waits for `events` (readable or writable) on the stream's descriptor; false on timeout.
    private static func wait(_ stream: any OutboundStream, _ events: EventPoll.Events, _ deadline: UInt64) -> Bool {
        let now = MonotonicClock.now
        let remaining = now >= deadline ? 0 : Int32(clamping: (deadline - now) / 1_000_000)
        let ready =
            events.contains(.writable)
            ? try? Descriptors.waitWritable(stream.descriptor, timeoutMilliseconds: remaining)
            : try? Descriptors.waitReadable(stream.descriptor, timeoutMilliseconds: remaining)
        return ready == true
    }
}
