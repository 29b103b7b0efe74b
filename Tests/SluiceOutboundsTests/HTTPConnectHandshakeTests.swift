import SluiceNet
import Testing

@testable import SluiceOutbounds

/// HTTP CONNECT requests and the parsing of the proxy's response.
@Suite("HTTP CONNECT handshake")
struct HTTPConnectHandshakeTests {
    static func request(_ h: inout HTTPConnectHandshake) -> String {
        guard case .send(let bytes) = h.start() else { return "" }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func requestWithBasicAuthenticationAndHeaders() {
        var h = HTTPConnectHandshake(
            target: SocketEndpoint(host: .name("a.example"), port: 443), username: "Aladdin", password: "open sesame",
            headers: [("User-Agent", "sluice")])
        #expect(
            Self.request(&h)
                == "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n"
                + "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\nUser-Agent: sluice\r\n\r\n")
    }

    @Test func ipv6AuthorityIsBracketed() {
        var h = HTTPConnectHandshake(target: SocketEndpoint(address: IPAddress("2001:db8::1")!, port: 80))
        #expect(Self.request(&h) == "CONNECT [2001:db8::1]:80 HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n")
    }

    @Test func establishedInPiecesWithLeftover() {
        var h = HTTPConnectHandshake(target: SocketEndpoint(address: IPAddress("10.0.0.1")!, port: 22))
        _ = h.start()
        #expect(h.receive(Array("HTTP/1.1 200 Connection established\r".utf8)) == .send([]))
        #expect(h.receive(Array("\nProxy-Agent: x\r\n\r".utf8)) == .send([]))
        #expect(h.receive(Array("\nSSH-2.0-OpenSSH".utf8)) == .established(leftover: Array("SSH-2.0-OpenSSH".utf8)))
    }

    @Test func refusals() {
        for (response, expected) in [
            (
                "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                "407 Proxy Authentication Required (proxy authentication required"
            ),
            ("HTTP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "403 Forbidden"),
            ("SSH-2.0-x\r\n\r\n", "not an HTTP response"),
        ] {
            var h = HTTPConnectHandshake(target: SocketEndpoint(address: IPAddress("10.0.0.1")!, port: 22))
            _ = h.start()
            guard case .failed(let text) = h.receive(Array(response.utf8)) else {
                Issue.record("\(response) accepted")
                continue
            }
            #expect(text.contains(expected), "\(text)")
        }
        var endless = HTTPConnectHandshake(target: SocketEndpoint(address: IPAddress("10.0.0.1")!, port: 22))
        _ = endless.start()
        _ = endless.receive(Array("HTTP/1.1 200 OK\r\n".utf8))
        guard case .failed = endless.receive(Array(repeating: UInt8(ascii: "a"), count: 17000)) else {
            Issue.record("an endless header was accepted")
            return
        }
    }
}
