import SluiceNet
import SluiceSystem
import Testing

@testable import SluiceOutbounds

#if canImport(Glibc)
import Glibc
#endif

/// Stream layers sans I/O, and stacks of them in a ``LayeredStream`` over a socket pair whose other end the test
/// plays by hand (no root, no network): the Shadowsocks layer against its own decoder, two transforming layers with
/// a proxy handshake on top, no layers at all, a truncated stream.
@Suite("Layered streams")
struct LayeredStreamTests {
    static let key = ShadowsocksKey(method: .chacha20IETFPoly1305, password: "layers")
    static let innerKey = ShadowsocksKey(method: .aes128GCM, password: "inner")

    /// A layered stream on one end of a socket pair; the test holds the other end (the server).
    final class Pair {
        let stream: LayeredStream
        let server: CInt
        private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

        init(layers: [any StreamLayer]) {
            var fds: [CInt] = [-1, -1]
            let made = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds)
            precondition(made == 0, "socketpair: errno \(errno)")
            _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
            _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
            stream = LayeredStream(
                takingOwnershipOf: OwnedDescriptor(takingOwnershipOfDescriptor: fds[0]), layers: layers,
                readBuffer: readBuffer)
            server = fds[1]
        }

        deinit {
            stream.close(reset: false)
            close(server)
            readBuffer.deallocate()
        }

        /// Everything the stream sent so far.
        func serverReceives() -> [UInt8] {
            var all: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(server, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return all }
                all += chunk[0..<n]
            }
        }

        func serverSends(_ bytes: [UInt8]) {
            let n = bytes.withUnsafeBytes { send(server, $0.baseAddress, $0.count, 0) }
            precondition(n == bytes.count)
        }

        /// Reads the stream until it has nothing more now; the opened bytes, and how the last read ended.
        func clientReads() -> ([UInt8], StreamTransfer) {
            var out: [UInt8] = []
            while true {
                let result = stream.read(into: &out)
                guard case .progressed = result else { return (out, result) }
            }
        }

        func clientWrites(_ text: String) throws {
            try Array(text.utf8).withUnsafeBytes { raw in
                do throws(OutboundError) { try stream.write(raw) } catch { throw error }
            }
            _ = stream.flush()
        }
    }

    static func address(_ endpoint: SocketEndpoint) -> [UInt8] {
        var bytes: [UInt8] = []
        SOCKSAddress.encode(endpoint, into: &bytes)
        return bytes
    }

    @Test("the Shadowsocks layer: the sealed target address at start, sealing and opening against its own codec")
    func shadowsocksLayer() throws {
        let target = SocketEndpoint(host: .name("example.com"), port: 443)
        let layer = ShadowsocksLayer(key: Self.key, target: target)
        guard case .established(let header, let leftover) = layer.start() else {
            Issue.record("expected the layer established at start")
            return
        }
        #expect(leftover.isEmpty)
        var server = ShadowsocksStreamOpener(key: Self.key)
        var opened: [UInt8] = []
        try server.open(header, into: &opened)
        #expect(opened == Self.address(target))

        var sealed: [UInt8] = []
        Array("hello".utf8).withUnsafeBytes { layer.seal($0, into: &sealed) }
        opened = []
        try server.open(sealed, into: &opened)
        #expect(opened == Array("hello".utf8))

        var sealer = ShadowsocksStreamSealer(key: Self.key)
        var reply: [UInt8] = []
        sealer.seal(Array("world".utf8), into: &reply)
        var plaintext: [UInt8] = []
        let half = reply.count / 2
        try Array(reply[..<half]).withUnsafeBytes { raw in
            do throws(OutboundError) { try layer.open(raw, into: &plaintext) } catch { throw error }
        }
        #expect(plaintext.isEmpty && layer.openIncomplete)
        try Array(reply[half...]).withUnsafeBytes { raw in
            do throws(OutboundError) { try layer.open(raw, into: &plaintext) } catch { throw error }
        }
        #expect(plaintext == Array("world".utf8) && !layer.openIncomplete)
    }

    @Test("two transforming layers with a proxy handshake on top: setup bottom-up, the reply's leftover, relaying")
    func stackOfLayers() throws {
        let outerTarget = SocketEndpoint(host: .name("outer.test"), port: 8388)
        let innerTarget = SocketEndpoint(host: .name("inner.test"), port: 8389)
        let connect = HTTPConnectHandshake(target: SocketEndpoint(host: .name("destination.test"), port: 80))
        let pair = Pair(layers: [
            ShadowsocksLayer(key: Self.key, target: outerTarget),
            ShadowsocksLayer(key: Self.innerKey, target: innerTarget),
            ProxyHandshakeLayer(connect),
        ])
        #expect(pair.stream.establish() == .inProgress)
        #expect(!pair.stream.isEstablished)

        // The server opens the outer layer, then the inner one: each layer's header, then the CONNECT.
        var outer = ShadowsocksStreamOpener(key: Self.key)
        var inner = ShadowsocksStreamOpener(key: Self.innerKey)
        var opened: [UInt8] = []
        try outer.open(pair.serverReceives(), into: &opened)
        let outerHeader = Self.address(outerTarget)
        #expect(Array(opened.prefix(outerHeader.count)) == outerHeader)
        var innerOpened: [UInt8] = []
        try inner.open(Array(opened.dropFirst(outerHeader.count)), into: &innerOpened)
        let innerHeader = Self.address(innerTarget)
        #expect(Array(innerOpened.prefix(innerHeader.count)) == innerHeader)
        let request = String(decoding: innerOpened.dropFirst(innerHeader.count), as: UTF8.self)
        #expect(request.hasPrefix("CONNECT destination.test:80 HTTP/1.1\r\n"), "\(request)")

        // The reply, with the destination's first bytes behind it, sealed inner then outer.
        var innerSealer = ShadowsocksStreamSealer(key: Self.innerKey)
        var outerSealer = ShadowsocksStreamSealer(key: Self.key)
        func serverSends(_ text: String) {
            var innerSealed: [UInt8] = []
            innerSealer.seal(Array(text.utf8), into: &innerSealed)
            var outerSealed: [UInt8] = []
            outerSealer.seal(innerSealed, into: &outerSealed)
            pair.serverSends(outerSealed)
        }
        serverSends("HTTP/1.1 200 Connection established\r\n\r\n220 hello\r\n")
        #expect(pair.stream.establish() == .established)
        #expect(pair.stream.isEstablished)
        let (early, _) = pair.clientReads()
        #expect(String(decoding: early, as: UTF8.self) == "220 hello\r\n")

        try pair.clientWrites("ping")
        #expect(pair.stream.pendingWrite == 0)
        opened = []
        try outer.open(pair.serverReceives(), into: &opened)
        innerOpened = []
        try inner.open(opened, into: &innerOpened)
        #expect(String(decoding: innerOpened, as: UTF8.self) == "ping")

        serverSends("pong")
        let (pong, last) = pair.clientReads()
        #expect(String(decoding: pong, as: UTF8.self) == "pong")
        guard case .wouldBlock = last else {
            Issue.record("expected wouldBlock, got \(last)")
            return
        }
        shutdown(pair.server, Int32(SHUT_WR))
        guard case .ended = pair.clientReads().1 else {
            Issue.record("expected the end of the stream")
            return
        }
    }

    @Test("no layers: the bytes pass as they are, and half-close reaches the server")
    func noLayers() throws {
        let pair = Pair(layers: [])
        #expect(pair.stream.establish() == .established)
        try pair.clientWrites("as is")
        #expect(String(decoding: pair.serverReceives(), as: UTF8.self) == "as is")
        pair.serverSends(Array("back".utf8))
        #expect(String(decoding: pair.clientReads().0, as: UTF8.self) == "back")
        pair.stream.shutdownWrite()
        var byte: UInt8 = 0
        #expect(recv(pair.server, &byte, 1, 0) == 0)
    }

    @Test("a server stream cut inside a Shadowsocks chunk is a failure, not an end")
    func truncated() throws {
        let pair = Pair(layers: [
            ShadowsocksLayer(key: Self.key, target: SocketEndpoint(host: .name("a.test"), port: 1))
        ])
        #expect(pair.stream.establish() == .established)
        var sealer = ShadowsocksStreamSealer(key: Self.key)
        var sealed: [UInt8] = []
        sealer.seal(Array("cut short".utf8), into: &sealed)
        pair.serverSends(Array(sealed.dropLast(3)))
        shutdown(pair.server, Int32(SHUT_WR))
        guard case .failed(let error) = pair.clientReads().1 else {
            Issue.record("expected a failure")
            return
        }
        #expect(error == .streamTruncated)
        #expect(error.description == "the server's stream was cut inside a chunk")
    }

    @Test("a proxy that refuses inside a transforming layer fails the setup with the handshake's reason")
    func refusal() throws {
        let pair = Pair(layers: [
            ShadowsocksLayer(key: Self.key, target: SocketEndpoint(host: .name("a.test"), port: 1)),
            ProxyHandshakeLayer(HTTPConnectHandshake(target: SocketEndpoint(host: .name("b.test"), port: 2))),
        ])
        #expect(pair.stream.establish() == .inProgress)
        _ = pair.serverReceives()
        var sealer = ShadowsocksStreamSealer(key: Self.key)
        var sealed: [UInt8] = []
        sealer.seal(Array("HTTP/1.1 403 Forbidden\r\n\r\n".utf8), into: &sealed)
        pair.serverSends(sealed)
        guard case .failed(let reason) = pair.stream.establish() else {
            Issue.record("expected a failure")
            return
        }
        #expect(reason.contains("403"), "\(reason)")
    }
}
