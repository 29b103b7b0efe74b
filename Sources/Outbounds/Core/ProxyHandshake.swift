/// One step of a proxy handshake, seen from the client.
public enum HandshakeStep: Equatable, Sendable {
    /// Send these bytes (possibly none), then wait for more from the proxy.
    case send([UInt8])
    /// The tunnel is open. `leftover` arrived after the proxy's reply and belongs to the
    /// tunneled stream (a server that speaks first can beat our read of the reply).
    case established(leftover: [UInt8])
    /// The proxy refused or spoke nonsense; the text says which, for the log.
    case failed(String)
}

/// The client side of a proxy protocol's connection setup as a pure state machine: bytes
/// from the proxy in, bytes to send out, no I/O. The relay drives it on a non-blocking
/// socket; tests drive it with byte arrays.
public protocol ProxyHandshake: Sendable {
    /// The first bytes to send once connected to the proxy.
    mutating func start() -> HandshakeStep
    /// Bytes received from the proxy (any segmentation).
    mutating func receive(_ bytes: UnsafeRawBufferPointer) -> HandshakeStep
}

extension ProxyHandshake {
    /// Feeds an array (tests, and the blocking UDP-associate driver).
    public mutating func receive(_ bytes: [UInt8]) -> HandshakeStep {
        bytes.withUnsafeBytes { receive($0) }
    }
}
