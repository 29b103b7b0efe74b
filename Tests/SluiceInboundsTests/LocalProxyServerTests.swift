import Foundation
import SluiceNet
import Testing

@testable import SluiceInbounds
@testable import SluiceOutbounds

/// The server side of the local proxy ports: what a SOCKS4/4a, SOCKS5 or HTTP proxy client sends, in any
/// segmentation, becomes one request (or a refusal with the protocol's own answer).
@Suite("local proxy server handshakes")
struct LocalProxyServerTests {
    static let open = ProxyCredentials()
    static let alice = ProxyCredentials(users: ["alice": "wonderland"])

    /// Feeds `bytes` in pieces of `cut` and returns the final step, with every reply before it concatenated in front
    /// of its own (what the client receives in total).
    static func run(_ kind: LocalProxyServer.Kind, _ credentials: ProxyCredentials, _ bytes: [UInt8], cut: Int)
        -> (replies: [UInt8], last: LocalProxyStep)
    {
        var server = LocalProxyServer(kind: kind, credentials: credentials)
        var replies: [UInt8] = []
        var offset = 0
        var last = LocalProxyStep.reply([])
        while offset < bytes.count {
            last = server.receive(Array(bytes[offset..<min(bytes.count, offset + cut)]))
            offset += cut
            if case .reply(let r) = last { replies += r } else { break }
        }
        return (replies, last)
    }

    static let socks5ByName: [UInt8] = [5, 1, 0] + [5, 1, 0, 3, 8] + Array("www.test".utf8) + [0, 80]

    @Test func socks5ConnectByNameWithoutAuthentication() {
        guard case .connect(let request) = Self.run(.mixed, Self.open, Self.socks5ByName, cut: 1000).last else {
            Issue.record("no request")
            return
        }
        #expect(request.target == SocketEndpoint(host: .name("www.test"), port: 80))
        #expect(request.kind == .socks5)
        #expect(request.user == nil)
        // The method choice comes first (pipelined), then the success reply once relaying starts.
        #expect(request.accepted == [5, 0] + [5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
        #expect(request.refused == [5, 2, 0, 1, 0, 0, 0, 0, 0, 0])
        #expect(request.upstream.isEmpty)
    }

    @Test(arguments: [1, 2, 3, 5, 7])
    func anySegmentationGivesTheSameRequest(cut: Int) {
        let (replies, last) = Self.run(.socks, Self.open, Self.socks5ByName + Array("GET /".utf8), cut: cut)
        guard case .connect(let request) = last else {
            Issue.record("cut \(cut): \(last)")
            return
        }
        #expect(replies + request.accepted == [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
        #expect(request.target == SocketEndpoint(host: .name("www.test"), port: 80))
        // Whatever the client sent behind its request goes to the destination first (up to the cut's piece).
        #expect(Array("GET /".utf8).starts(with: request.upstream))
    }

    @Test func socks5WithUsernameAndPassword() {
        let auth: [UInt8] = [1, 5] + Array("alice".utf8) + [10] + Array("wonderland".utf8)
        let request: [UInt8] = [5, 1, 0, 1, 10, 77, 200, 2, 0, 80]
        let (_, last) = Self.run(.mixed, Self.alice, [5, 2, 0, 2] + auth + request, cut: 1000)
        guard case .connect(let r) = last else {
            Issue.record("\(last)")
            return
        }
        #expect(r.user == "alice")
        #expect(r.accepted.prefix(4) == [5, 2, 1, 0])
        #expect(r.target == SocketEndpoint(address: IPAddress("10.77.200.2")!, port: 80))
    }

    @Test func socks5WrongPasswordOrNoAuthenticationIsRefused() {
        let wrong: [UInt8] = [5, 1, 2] + [1, 5] + Array("alice".utf8) + [3] + Array("bad".utf8)
        guard case .refuse(let why, let reply) = Self.run(.mixed, Self.alice, wrong, cut: 1000).last else {
            Issue.record("accepted a wrong password")
            return
        }
        #expect(reply == [5, 2, 1, 1])
        #expect(why.contains("wrong username or password"))
        guard case .refuse(_, let none) = Self.run(.mixed, Self.alice, [5, 1, 0], cut: 1000).last else {
            Issue.record("accepted a client without credentials")
            return
        }
        #expect(none == [5, 0xFF])
    }

    @Test func socks5UDPAssociateAndUnsupportedCommands() {
        // Pipelined: the method choice still reaches the client, in front of the association's reply.
        #expect(
            Self.run(.socks, Self.open, [5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0], cut: 1000).last
                == .udpAssociate(user: nil, pending: [5, 0]))
        #expect(
            Self.run(.socks, Self.open, [5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0], cut: 3).last
                == .udpAssociate(user: nil, pending: []))
        guard
            case .refuse(_, let reply) = Self.run(
                .socks, Self.open, [5, 1, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0], cut: 1000
            ).last
        else {
            Issue.record("BIND accepted")
            return
        }
        #expect(reply.suffix(10).prefix(2) == [5, 7])
        #expect(
            LocalProxyServer.socks5Reply(0, bound: SocketEndpoint(address: IPAddress("127.0.0.1")!, port: 7890))
                == [5, 0, 0, 1, 127, 0, 0, 1, 0x1E, 0xD2])
    }

    @Test func socks4aAndSocks4() {
        let socks4a: [UInt8] = [4, 1, 0, 80, 0, 0, 0, 1] + Array("me".utf8) + [0] + Array("www.test".utf8) + [0]
        guard case .connect(let a) = Self.run(.mixed, Self.open, socks4a, cut: 3).last else {
            Issue.record("SOCKS4a")
            return
        }
        #expect(a.target == SocketEndpoint(host: .name("www.test"), port: 80))
        #expect(a.accepted == [0, 0x5A, 0, 0, 0, 0, 0, 0])
        guard case .connect(let four) = Self.run(.socks, Self.open, [4, 1, 1, 187, 10, 0, 0, 1, 0], cut: 1000).last
        else {
            Issue.record("SOCKS4")
            return
        }
        #expect(four.target == SocketEndpoint(address: IPAddress("10.0.0.1")!, port: 443))
        // SOCKS4 cannot carry a password.
        guard case .refuse = Self.run(.socks, Self.alice, [4, 1, 1, 187, 10, 0, 0, 1, 0], cut: 1000).last else {
            Issue.record("SOCKS4 passed an authenticated port")
            return
        }
    }

    @Test func httpConnect() {
        let head = Array("CONNECT www.test:443 HTTP/1.1\r\nHost: www.test:443\r\n\r\n".utf8)
        guard case .connect(let r) = Self.run(.mixed, Self.open, head + [0x16, 3, 1], cut: 4).last else {
            Issue.record("CONNECT")
            return
        }
        #expect(r.kind == .httpConnect)
        #expect(r.target == SocketEndpoint(host: .name("www.test"), port: 443))
        #expect(String(decoding: r.accepted, as: UTF8.self) == "HTTP/1.1 200 Connection established\r\n\r\n")
        #expect(String(decoding: r.refused, as: UTF8.self).hasPrefix("HTTP/1.1 403 "))
        #expect([0x16, 3, 1].starts(with: r.upstream))
    }

    @Test func plainHTTPIsRewrittenToOriginFormWithoutProxyHeaders() {
        let token = Data("alice:wonderland".utf8).base64EncodedString()
        let head =
            "POST http://www.test:8080/upload?x=1 HTTP/1.1\r\nHost: www.test:8080\r\nProxy-Authorization: Basic \(token)\r\n"
            + "Proxy-Connection: keep-alive\r\nContent-Length: 4\r\n\r\nbody"
        guard case .connect(let r) = Self.run(.http, Self.alice, Array(head.utf8), cut: 1000).last else {
            Issue.record("plain request")
            return
        }
        #expect(r.kind == .http && r.user == "alice" && r.accepted.isEmpty)
        #expect(r.target == SocketEndpoint(host: .name("www.test"), port: 8080))
        #expect(
            String(decoding: r.upstream, as: UTF8.self)
                == "POST /upload?x=1 HTTP/1.1\r\nHost: www.test:8080\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"
        )
    }

    @Test func httpWithoutOrWithWrongCredentialsGets407() {
        for header in ["", "Proxy-Authorization: Basic \(Data("alice:nope".utf8).base64EncodedString())\r\n"] {
            let head = Array("GET http://www.test/ HTTP/1.1\r\nHost: www.test\r\n\(header)\r\n".utf8)
            guard case .refuse(_, let reply) = Self.run(.mixed, Self.alice, head, cut: 1000).last else {
                Issue.record("accepted: \(header)")
                return
            }
            let text = String(decoding: reply, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 407 ") && text.contains("Proxy-Authenticate: Basic"))
        }
    }

    @Test func malformedAndOversizedRequestsAreRefused() {
        for bad in [
            "GET / HTTP/1.1\r\n\r\n", "CONNECT nohost HTTP/1.1\r\n\r\n", "GARBAGE\r\n\r\n",
            "GET https://a/ HTTP/1.1\r\n\r\n",
        ] {
            guard case .refuse(_, let reply) = Self.run(.mixed, Self.open, Array(bad.utf8), cut: 1000).last else {
                Issue.record("accepted \(bad)")
                continue
            }
            #expect(String(decoding: reply, as: UTF8.self).hasPrefix("HTTP/1.1 400 "))
        }
        let flood = Array("GET http://a/ HTTP/1.1\r\n".utf8) + Array(repeating: UInt8(ascii: "x"), count: 20_000)
        guard case .refuse(_, let reply) = Self.run(.mixed, Self.open, flood, cut: 4096).last else {
            Issue.record("buffered without bound")
            return
        }
        #expect(String(decoding: reply, as: UTF8.self).hasPrefix("HTTP/1.1 431 "))
        // A SOCKS-only port does not speak HTTP.
        guard case .refuse = Self.run(.socks, Self.open, Array("GET http://a/ HTTP/1.1\r\n\r\n".utf8), cut: 1000).last
        else {
            Issue.record("socks port took HTTP")
            return
        }
    }

    @Test func randomBytesNeverCrashAndAlwaysEnd() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let count = Int.random(in: 0...300, using: &generator)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            for kind in [LocalProxyServer.Kind.mixed, .socks, .http] {
                _ = Self.run(kind, Self.alice, bytes, cut: Int.random(in: 1...64, using: &generator))
            }
        }
    }
}
