/// One step of a stream layer's setup, seen from the client.
package enum StreamLayerStep {
    /// Send these bytes (possibly none) towards the server, then wait for more from it. They are in this layer's
    /// wire form: the layers below seal them on the way.
    case send([UInt8])
    /// Setup is done. `send` goes towards the server first (in this layer's wire form, like ``send(_:)``: a
    /// Shadowsocks header, TLS's last handshake flight); `leftover` arrived behind the setup and belongs to the layer
    /// above, already opened by this one (a server that speaks first can beat our read of a proxy's reply).
    case established(send: [UInt8], leftover: [UInt8])
    /// The server refused or spoke nonsense; the text says which, for the log.
    case failed(String)
}

/// One layer of a user-space byte stream to a server (TLS, a proxy handshake, Shadowsocks AEAD; WebSocket, gRPC and
/// multiplexers later), sans-I/O like ``ProxyHandshake``: bytes in, bytes out, no socket. A protocol stacks layers
/// the way NIO stacks channel handlers; ``LayeredStream`` drives a stack over a socket, tests drive a layer with byte
/// arrays.
///
/// A layer has two phases. Setup runs bottom-up, each layer once the ones below it are established (TLS first, then
/// the SOCKS5 handshake through TLS): ``start()`` and ``receive(_:)`` exchange bytes with the server through the
/// layers below until the layer is established. Then the transform phase: ``seal(_:into:)`` turns bytes from above
/// into this layer's wire form, ``open(_:into:)`` the reverse.
///
/// A class: the stream mutates it in place on every read and write; one thread uses it at a time (planned on one,
/// then relayed on the relay's).
package protocol StreamLayer: AnyObject {
    /// The first step once the layers below are established.
    func start() -> StreamLayerStep
    /// Bytes from the server during setup, opened by the layers below (any segmentation).
    func receive(_ bytes: UnsafeRawBufferPointer) -> StreamLayerStep
    /// Whether the layer leaves bytes as they are once established (a proxy handshake): the stream then drops it, so
    /// it costs no copy while relaying.
    var isTransparent: Bool { get }
    /// Appends the wire form of `bytes` (from the layer above) to `out`; with no bytes, whatever the layer holds for
    /// the server (TLS: a KeyUpdate answer, records queued while reading).
    func seal(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(OutboundError)
    /// Appends what `bytes` (from the server, opened by the layers below) complete to `out`; a partial unit waits
    /// for the rest.
    func open(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(OutboundError)
    /// Whether the layer holds part of a unit: the server's stream ending now is truncated, not a clean end.
    var openIncomplete: Bool { get }
}

extension StreamLayer {
    /// Feeds an array (tests).
    package func receive(_ bytes: [UInt8]) -> StreamLayerStep { bytes.withUnsafeBytes { receive($0) } }
}
