import SluiceSystem

/// How far a stream's setup got.
package enum StreamSetup: Equatable {
    /// Wait for ``OutboundStream/interest(reading:)`` on ``OutboundStream/descriptor``, then call again.
    case inProgress
    /// The stream carries the client's bytes now.
    case established
    /// The server refused, spoke nonsense or went away; the text says which, for the log.
    case failed(String)
}

/// What one read or flush of a stream did.
package enum StreamTransfer {
    /// Bytes moved (a read may have completed nothing for the client yet: part of a record came).
    case progressed
    /// Nothing to move now: wait for the descriptor.
    case wouldBlock
    /// The server's stream ended cleanly (reads only).
    case ended
    /// The connection failed below the protocol (a reset, a failed call): end it, passing the reset on.
    case reset
    /// The server's bytes do not decode or were cut inside a unit: say so in the log, then reset.
    case failed(OutboundError)
}

/// The user-space byte-stream shape of the outbound contract, as the relay sees it: one connection to the server
/// that takes the client's bytes and gives the server's, whatever runs underneath.
///
/// ``LayeredStream`` implements it over a socket and a stack of ``StreamLayer``s (TLS, a proxy handshake,
/// Shadowsocks). A stream inside a multiplexed or QUIC session implements it too: its ``descriptor`` is then an
/// eventfd the session signals, and the relay needs no change. Everything is non-blocking and runs on one thread
/// (the relay's).
package protocol OutboundStream: AnyObject {
    /// What the relay polls for readiness: the socket for a layered stream; an eventfd for a stream inside a
    /// multiplexed or QUIC session.
    var descriptor: CInt { get }
    /// The events to wait for on ``descriptor``; `reading` says whether the relay wants the server's bytes now.
    func interest(reading: Bool) -> EventPoll.Events
    /// Advances the setup once the connection is up (handshakes, in the order the protocol needs them).
    func establish() -> StreamSetup
    /// Appends what the server sent, opened, to `out`.
    func read(into out: inout [UInt8]) -> StreamTransfer
    /// Takes all of the client's `bytes` (sealed at once); they leave with ``flush()``.
    func write(_ bytes: UnsafeRawBufferPointer) throws(OutboundError)
    /// Bytes ``write(_:)`` took that have not left yet: the relay reads no more from the client while it holds
    /// plenty (backpressure).
    var pendingWrite: Int { get }
    /// Sends what it can of ``pendingWrite``.
    func flush() -> StreamTransfer
    /// The client is done sending: end the stream's sending side (half-close), once ``pendingWrite`` is 0.
    func shutdownWrite()
    /// Ends the stream; `reset` aborts it (the server sees RST, as the client's reset is passed on).
    func close(reset: Bool)
}
