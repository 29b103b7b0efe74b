import SluiceSniffing
import SluiceTestSupport
import Testing

/// `Host` from HTTP/1 request heads.
@Suite("Sniffing: HTTP Host")
struct HTTPRequestHeadTests {
    static func host(_ text: String) -> SniffResult { HTTPRequestHead.host(in: Array(text.utf8)) }

    @Test func hosts() {
        #expect(
            Self.host("GET /small HTTP/1.1\r\nHost: blocked.test\r\nUser-Agent: curl/7.88.1\r\n\r\n")
                == .name("blocked.test"))
        #expect(Self.host("GET / HTTP/1.1\r\nUser-Agent: x\r\nhOsT:Example.COM:8080\r\n\r\n") == .name("example.com"))
        #expect(Self.host("POST /x HTTP/1.0\nhost: \t a.test. \t\n\n") == .name("a.test"))
        #expect(Self.host("GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n") == .name("2001:db8::1"))
        #expect(Self.host("GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n") == .name("::1"))
        #expect(Self.host("GET / HTTP/1.1\r\nHost: 10.77.200.2:80\r\n\r\n") == .name("10.77.200.2"))
        #expect(Self.host("GET / HTTP/1.1\r\nHost: a.test:\r\n\r\n") == .name("a.test"))
        #expect(Self.host("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n") == .name("a.test"))
        #expect(Self.host("PROPFIND /d HTTP/1.1\r\nX-Host: no\r\nHost: dav.test\r\n\r\n") == .name("dav.test"))
        // The name is known as soon as its line is complete: the rest of the head may follow later.
        #expect(Self.host("GET / HTTP/1.1\r\nHost: early.test\r\nAccept") == .name("early.test"))
    }

    @Test func noName() {
        #expect(Self.host("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n") == .noName)
        for bad in ["", "a b", "[::1", "[::1]x", "a.test:99999999", "a:b:c", "a..b", "[]", "[1.2.3.4]"] {
            #expect(Self.host("GET / HTTP/1.1\r\nHost: \(bad)\r\n\r\n") == .noName, "\(bad)")
        }
    }

    @Test func needMore() {
        let full = "GET /small HTTP/1.1\r\nAccept: */*\r\nHost: split.test\r\n\r\n"
        let bytes = Array(full.utf8)
        let hostLineEnd = Array(full.utf8).count - 2
        for n in 0..<hostLineEnd {
            #expect(HTTPRequestHead.host(in: Array(bytes[0..<n])) == .needMoreBytes, "\(n) bytes")
        }
        #expect(HTTPRequestHead.host(in: Array(bytes[0..<hostLineEnd])) == .name("split.test"))
    }

    @Test("not HTTP: a few bytes are enough to tell")
    func notHTTP() {
        for text in [
            "SSH-2.0-OpenSSH_9.2\r\n", "\u{16}\u{03}\u{01}", "get / HTTP/1.1\r\n", " GET", "GET  / HTTP/1.1",
            "GET / HTTP/2.0\r\n",
            "PRI * HTTP/2.0\r\n", "GET / HTTP/1.1 \r\n", "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n", "EHLO x\r\n", "GET /\u{7F} HTTP/1.1",
        ] {
            #expect(Self.host(text) == .notThisProtocol, "\(text.debugDescription)")
        }
    }

    @Test("bounded: a head without a Host within 16 KiB is given up")
    func bounded() {
        let head =
            "GET / HTTP/1.1\r\n" + String(repeating: "X-Pad: 0123456789012345678901234567890123456789\r\n", count: 400)
        #expect(head.utf8.count > Sniffing.maximumBytes)
        #expect(Self.host(head) == .noName)
        #expect(Self.host(head + "Host: late.test\r\n\r\n") == .noName)
        #expect(Self.host(String(head.prefix(4000))) == .needMoreBytes)
    }

    @Test("both sniffers together")
    func combined() {
        #expect(
            Sniffing.sniff(Array("GET / HTTP/1.1\r\nHost: h.test\r\n\r\n".utf8), kinds: [.tls, .http]) == (
                .name("h.test"), .http
            ))
        #expect(Sniffing.sniff(CapturedClientHellos.openssl, kinds: [.tls, .http]) == (.name("x.test"), .tls))
        #expect(Sniffing.sniff(CapturedClientHellos.openssl, kinds: [.http]) == (.notThisProtocol, nil))
        #expect(Sniffing.sniff(Array("GET / HT".utf8), kinds: [.tls, .http]) == (.needMoreBytes, nil))
        #expect(Sniffing.sniff(Array("SSH-2.0-x\r\n".utf8), kinds: [.tls, .http]) == (.notThisProtocol, nil))
        #expect(Sniffing.sniff(CapturedClientHellos.openSSLWithoutSNI, kinds: [.tls, .http]) == (.noName, nil))
        #expect(Sniffing.sniff([], kinds: [.tls, .http]) == (.needMoreBytes, nil))
    }

    @Test("hostile input: 20,000 random and mutated heads never trap")
    func fuzz() {
        var rng = SplitMix64(seed: 0x4077)
        let alphabet = Array("GET /HTTP1.0:\r\nHost[]:. ab9\t-".utf8)
        let seed = Array("GET /small HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\nAccept: */*\r\n\r\n".utf8)
        for round in 0..<20_000 {
            var bytes: [UInt8]
            switch round % 3 {
            case 0: bytes = (0..<Int.random(in: 0...200, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            case 1:
                bytes = seed
                for _ in 0..<Int.random(in: 1...5, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            default:
                bytes =
                    Array(seed.prefix(Int.random(in: 0...seed.count, using: &rng)))
                    + rng.bytes(Int.random(in: 0...20, using: &rng))
            }
            if case .name(let name) = HTTPRequestHead.host(in: bytes) {
                #expect(!name.isEmpty && name.utf8.count <= 253, "round \(round): \(name)")
                #expect(
                    name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && !($0 >= 65 && $0 <= 90) },
                    "round \(round): \(name)")
            }
        }
    }
}
