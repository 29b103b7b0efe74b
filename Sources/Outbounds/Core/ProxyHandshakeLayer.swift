/// A proxy handshake (SOCKS5, HTTP CONNECT) as a stream layer, to run it inside the layers below it: SOCKS5 or HTTP
/// CONNECT inside TLS to the proxy (`tls: true`). Transparent once established: the tunnel carries bytes as they are.
package final class ProxyHandshakeLayer: StreamLayer {
    /// The handshake (what it learned, e.g. a SOCKS5 UDP relay endpoint, stays readable).
    package private(set) var handshake: any ProxyHandshake

    package init(_ handshake: any ProxyHandshake) { self.handshake = handshake }

    package func start() -> StreamLayerStep { Self.step(handshake.start()) }

    package func receive(_ bytes: UnsafeRawBufferPointer) -> StreamLayerStep { Self.step(handshake.receive(bytes)) }

    private static func step(_ step: HandshakeStep) -> StreamLayerStep {
        switch step {
        case .send(let bytes): .send(bytes)
        case .established(let leftover): .established(send: [], leftover: leftover)
        case .failed(let reason): .failed(reason)
        }
    }

    package var isTransparent: Bool { true }

    package func seal(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) { out.append(contentsOf: bytes) }

    package func open(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) { out.append(contentsOf: bytes) }

    package var openIncomplete: Bool { false }
}
