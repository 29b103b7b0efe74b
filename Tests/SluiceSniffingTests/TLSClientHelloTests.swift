import SluiceSniffing
import SluiceTestSupport
import Testing

/// SNI from real and hand-made ClientHellos, whole, split and cut.
@Suite("Sniffing: TLS ClientHello")
struct TLSClientHelloTests {
    @Test func realClientHellos() {
        #expect(TLSClientHello.serverName(in: CapturedClientHellos.openssl) == .name("x.test"))
        #expect(TLSClientHello.serverName(in: CapturedClientHellos.curl) == .name("www.example.test"))
        #expect(TLSClientHello.serverName(in: CapturedClientHellos.openSSLWithoutSNI) == .noName)
        #expect(HTTPRequestHead.host(in: CapturedClientHellos.curl) == .notThisProtocol)
    }

    @Test("every proper prefix needs more bytes; the whole hello gives the name")
    func everyPrefixNeedsMore() {
        for hello in [CapturedClientHellos.openssl, CapturedClientHellos.curl] {
            for n in 0..<hello.count {
                let result = TLSClientHello.serverName(in: Array(hello[0..<n]))
                #expect(result == .needMoreBytes, "prefix of \(n) bytes: \(result)")
                if result != .needMoreBytes { break }
            }
        }
        // Trailing bytes (the client's next record) change nothing.
        #expect(
            TLSClientHello.serverName(in: CapturedClientHellos.curl + [0x17, 3, 3, 0, 1, 0])
                == .name("www.example.test"))
    }

    @Test("a ClientHello fragmented over several records (RFC 8446 5.1)")
    func fragmentedOverRecords() {
        let hello = CapturedClientHellos.curl
        let handshake = Array(hello[5...])
        for cuts in [[1], [3], [4], [40], [100, 200, 300], Array(stride(from: 7, to: handshake.count, by: 7))] {
            var records: [UInt8] = []
            var start = 0
            for end in cuts + [handshake.count] {
                let piece = handshake[start..<end]
                records += [22, 3, 1, UInt8(piece.count >> 8), UInt8(piece.count & 0xFF)] + piece
                start = end
            }
            #expect(TLSClientHello.serverName(in: records) == .name("www.example.test"), "cuts \(cuts)")
            #expect(TLSClientHello.serverName(in: Array(records.dropLast())) == .needMoreBytes)
        }
    }

    @Test func notTLS() {
        for text in ["GET / HTTP/1.1\r\n", "SSH-2.0-OpenSSH_9.2\r\n", "\u{16}\u{02}", "\u{16}\u{03}\u{09}"] {
            #expect(TLSClientHello.serverName(in: Array(text.utf8)) == .notThisProtocol, "\(text)")
        }
        // A handshake record that is not a ClientHello (a ServerHello), a zero-length record,
        // an application-data record in the middle.
        #expect(TLSClientHello.serverName(in: [22, 3, 3, 0, 4, 2, 0, 0, 0]) == .notThisProtocol)
        #expect(TLSClientHello.serverName(in: [22, 3, 3, 0, 0]) == .notThisProtocol)
        var split = Array(CapturedClientHellos.curl[0..<5]) + CapturedClientHellos.curl[5..<105]
        split[3] = 0
        split[4] = 100
        #expect(TLSClientHello.serverName(in: split + [23, 3, 3, 0, 1, 0]) == .notThisProtocol)
        #expect(TLSClientHello.serverName(in: []) == .needMoreBytes)
        #expect(TLSClientHello.serverName(in: [22]) == .needMoreBytes)
    }

    /// A minimal ClientHello with `extensions` (already encoded).
    static func hello(extensions: [UInt8]?) -> [UInt8] {
        var body: [UInt8] = [3, 3] + Array(repeating: 7, count: 32) + [0] + [0, 2, 0x13, 0x01] + [1, 0]
        if let extensions { body += [UInt8(extensions.count >> 8), UInt8(extensions.count & 0xFF)] + extensions }
        let handshake: [UInt8] = [1, 0, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
        return [22, 3, 1, UInt8(handshake.count >> 8), UInt8(handshake.count & 0xFF)] + handshake
    }

    static func sni(_ name: [UInt8], type: UInt8 = 0) -> [UInt8] {
        let entry: [UInt8] = [type, UInt8(name.count >> 8), UInt8(name.count & 0xFF)] + name
        let list: [UInt8] = [UInt8(entry.count >> 8), UInt8(entry.count & 0xFF)] + entry
        return [0, 0, UInt8(list.count >> 8), UInt8(list.count & 0xFF)] + list
    }

    @Test func handMadeHellos() {
        #expect(TLSClientHello.serverName(in: Self.hello(extensions: nil)) == .noName)
        #expect(TLSClientHello.serverName(in: Self.hello(extensions: [])) == .noName)
        #expect(
            TLSClientHello.serverName(in: Self.hello(extensions: Self.sni(Array("Mixed.Case.Test.".utf8))))
                == .name("mixed.case.test"))
        // Another extension first.
        let alpn: [UInt8] = [0, 16, 0, 5, 0, 3, 2, 0x68, 0x32]
        #expect(
            TLSClientHello.serverName(in: Self.hello(extensions: alpn + Self.sni(Array("a.test".utf8))))
                == .name("a.test"))
        // Names sluice does not take: odd bytes, empty labels, too long, empty, not host_name.
        for bad in ["a b.test", "a..test", ".a", String(repeating: "a", count: 254), "", "x\u{0}y"] {
            #expect(
                TLSClientHello.serverName(in: Self.hello(extensions: Self.sni(Array(bad.utf8)))) == .noName, "\(bad)")
        }
        #expect(
            TLSClientHello.serverName(in: Self.hello(extensions: Self.sni(Array("a.test".utf8), type: 1))) == .noName)
        // An extension length that runs past the end.
        #expect(TLSClientHello.serverName(in: Self.hello(extensions: [0, 0, 0, 9, 0])) == .notThisProtocol)
    }

    @Test("bounded: a hello claiming more than 16 KiB is given up, never waited for")
    func bounded() {
        // Records of 16 KiB each, a handshake that claims 64 KiB.
        var bytes: [UInt8] = [22, 3, 1, 0x40, 0x00, 1, 0x01, 0x00, 0x00] + Array(repeating: 0, count: 16380)
        bytes += [22, 3, 1, 0x40, 0x00] + Array(repeating: 0, count: 16384)
        #expect(TLSClientHello.serverName(in: bytes) == .noName)
        #expect(TLSClientHello.serverName(in: Array(bytes[0..<100])) == .needMoreBytes)
    }

    @Test("hostile input: 20,000 random and mutated inputs never trap")
    func fuzz() {
        var rng = SplitMix64(seed: 0x5_11CE)
        let seeds = [CapturedClientHellos.curl, CapturedClientHellos.openssl, CapturedClientHellos.openSSLWithoutSNI]
        var named = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            switch round % 4 {
            case 0:
                bytes = rng.bytes(Int.random(in: 0...600, using: &rng))
                if !bytes.isEmpty { bytes[0] = 22 }
                if bytes.count > 2 { (bytes[1], bytes[2]) = (3, 1) }
            case 1:
                // Flip a few bytes of a real hello.
                bytes = seeds[round % 3]
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 2:
                // Cut a real hello anywhere and append noise.
                bytes = Array(seeds[round % 3].prefix(Int.random(in: 0...600, using: &rng)))
                bytes += rng.bytes(Int.random(in: 0...40, using: &rng))
            default:
                bytes = rng.bytes(Int.random(in: 0...64, using: &rng))
            }
            let result = TLSClientHello.serverName(in: bytes)
            if case .name(let name) = result {
                named += 1
                #expect(!name.isEmpty && name.utf8.count <= 253 && name == name.lowercased(), "round \(round): \(name)")
            }
            _ = HTTPRequestHead.host(in: bytes)
            _ = Sniffing.sniff(bytes, kinds: [.tls, .http])
        }
        #expect(named > 100, "mutations of real hellos mostly still carry their name")
    }
}
