import SluiceNet

/// One Shadowsocks AEAD TCP connection as a stream layer: its setup sends the sealed target address at once (no
/// answer awaited, so servers that speak first are reached), then every byte is sealed into chunks and the server's
/// chunks opened.
package final class ShadowsocksLayer: StreamLayer {
    private var sealer: ShadowsocksStreamSealer
    private var opener: ShadowsocksStreamOpener
    private let target: SocketEndpoint

    /// - Parameter salt: the session salt; random unless a test fixes it.
    package init(key: ShadowsocksKey, target: SocketEndpoint, salt: [UInt8]? = nil) {
        sealer = ShadowsocksStreamSealer(key: key, salt: salt)
        opener = ShadowsocksStreamOpener(key: key)
        self.target = target
    }

    package func start() -> StreamLayerStep {
        var header: [UInt8] = []
        SOCKSAddress.encode(target, into: &header)
        var out: [UInt8] = []
        sealer.seal(header, into: &out)
        return .established(send: out, leftover: [])
    }

    /// Not called by ``LayeredStream``: the layer is established at ``start()``. Opens the bytes for the layer above.
    package func receive(_ bytes: UnsafeRawBufferPointer) -> StreamLayerStep {
        var out: [UInt8] = []
        do {
            try open(bytes, into: &out)
        } catch {
            return .failed(error.description)
        }
        return .established(send: [], leftover: out)
    }

    package var isTransparent: Bool { false }

    package func seal(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) { sealer.seal(bytes, into: &out) }

    package func open(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(OutboundError) {
        do {
            try opener.open(bytes, into: &out)
        } catch {
            throw .streamUndecodable("Shadowsocks", "\(error)")
        }
    }

    package var openIncomplete: Bool { opener.hasPartialChunk }
}
