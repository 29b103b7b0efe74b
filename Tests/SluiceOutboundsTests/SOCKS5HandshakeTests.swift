import SluiceNet
import Testing

@testable import SluiceOutbounds

/// SOCKS5 client handshakes (RFC 1928, RFC 1929) byte by byte, and the UDP header.
@Suite("SOCKS5 handshake")
struct SOCKS5HandshakeTests {
    static let ipTarget = SocketEndpoint(address: IPAddress("10.77.200.2")!, port: 80)
    static let nameTarget = SocketEndpoint(host: .name("a.example"), port: 443)

    @Test func connectWithoutAuthenticationToAnIPv4Address() {
        var h = SOCKS5Handshake(command: .connect, target: Self.ipTarget)
        #expect(h.start() == .send([5, 1, 0]))
        #expect(h.receive([5, 0]) == .send([5, 1, 0, 1, 10, 77, 200, 2, 0, 80]))
        #expect(h.receive([5, 0, 0, 1, 127, 0, 0, 1, 0x1F, 0x90]) == .established(leftover: []))
        #expect(h.boundEndpoint == SocketEndpoint(address: IPAddress("127.0.0.1")!, port: 8080))
    }

    @Test func connectByNameWithUsernameAndPassword() {
        var h = SOCKS5Handshake(command: .connect, target: Self.nameTarget, username: "alice", password: "pw")
        #expect(h.start() == .send([5, 2, 0, 2]))
        #expect(h.receive([5, 2]) == .send([1, 5] + Array("alice".utf8) + [2] + Array("pw".utf8)))
        #expect(h.receive([1, 0]) == .send([5, 1, 0, 3, 9] + Array("a.example".utf8) + [1, 187]))
        // The reply in pieces, with the first bytes of the tunneled stream behind it.
        #expect(h.receive([5, 0, 0, 4]) == .send([]))
        #expect(h.receive(Array(repeating: 0, count: 10)) == .send([]))
        #expect(
            h.receive(Array(repeating: 0, count: 6) + [0, 0] + Array("SSH-2.0".utf8))
                == .established(leftover: Array("SSH-2.0".utf8)))
        #expect(h.boundEndpoint == SocketEndpoint(address: IPAddress("::")!, port: 0))
    }

    @Test func serverThatNeedsNoAuthenticationAlthoughWeHaveCredentials() {
        var h = SOCKS5Handshake(command: .connect, target: Self.ipTarget, username: "u", password: "p")
        _ = h.start()
        #expect(h.receive([5, 0]) == .send([5, 1, 0, 1, 10, 77, 200, 2, 0, 80]))
    }

    @Test func ipv6Target() {
        var h = SOCKS5Handshake(command: .connect, target: SocketEndpoint(address: IPAddress("fd77:200::2")!, port: 7))
        _ = h.start()
        #expect(
            h.receive([5, 0]) == .send([5, 1, 0, 4, 0xFD, 0x77, 2, 0] + Array(repeating: 0, count: 11) + [2, 0, 7]))
    }

    @Test func udpAssociateReportsTheRelayEndpoint() {
        var h = SOCKS5Handshake(command: .udpAssociate, target: SocketEndpoint(address: IPAddress("0.0.0.0")!, port: 0))
        _ = h.start()
        #expect(h.receive([5, 0]) == .send([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]))
        #expect(h.receive([5, 0, 0, 1, 10, 77, 200, 2, 0x04, 0x38]) == .established(leftover: []))
        #expect(h.boundEndpoint?.description == "10.77.200.2:1080")
    }

    @Test func failures() {
        var noMethod = SOCKS5Handshake(command: .connect, target: Self.ipTarget)
        _ = noMethod.start()
        guard case .failed(let text) = noMethod.receive([5, 0xFF]) else {
            Issue.record("accepted")
            return
        }
        #expect(text.contains("username and password"))

        var needsAuth = SOCKS5Handshake(command: .connect, target: Self.ipTarget)
        _ = needsAuth.start()
        guard case .failed(let text2) = needsAuth.receive([5, 2]) else {
            Issue.record("accepted")
            return
        }
        #expect(text2.contains("none are configured"))

        var wrongPassword = SOCKS5Handshake(command: .connect, target: Self.ipTarget, username: "u", password: "bad")
        _ = wrongPassword.start()
        _ = wrongPassword.receive([5, 2])
        guard case .failed(let text3) = wrongPassword.receive([1, 1]) else {
            Issue.record("accepted")
            return
        }
        #expect(text3.contains("rejected the username or password"))

        var refused = SOCKS5Handshake(command: .connect, target: Self.ipTarget)
        _ = refused.start()
        _ = refused.receive([5, 0])
        #expect(refused.receive([5, 5, 0, 1, 0, 0, 0, 0, 0, 0]) == .failed("SOCKS5: connection refused (5)"))

        var notSOCKS = SOCKS5Handshake(command: .connect, target: Self.ipTarget)
        _ = notSOCKS.start()
        guard case .failed = notSOCKS.receive(Array("HTTP/1.1 400".utf8)) else {
            Issue.record("accepted")
            return
        }

        var longName = SOCKS5Handshake(
            command: .connect, target: SocketEndpoint(host: .name(String(repeating: "a", count: 256)), port: 1))
        _ = longName.start()
        guard case .failed = longName.receive([5, 0]) else {
            Issue.record("accepted")
            return
        }
    }

    @Test func addressesRoundTrip() {
        for endpoint in [
            Self.ipTarget, Self.nameTarget, SocketEndpoint(address: IPAddress("2001:db8::1")!, port: 65535),
        ] {
            var bytes: [UInt8] = []
            #expect(SOCKSAddress.encode(endpoint, into: &bytes))
            #expect(SOCKSAddress.decode(bytes) == .complete(endpoint, length: bytes.count))
            for cut in 0..<bytes.count { #expect(SOCKSAddress.decode(Array(bytes.prefix(cut))) == .incomplete) }
        }
        guard case .invalid = SOCKSAddress.decode([2, 0, 0]) else {
            Issue.record("ATYP 2 accepted")
            return
        }
        guard case .invalid = SOCKSAddress.decode([3, 0, 0, 0]) else {
            Issue.record("empty name accepted")
            return
        }
    }

    @Test func udpHeader() {
        var packet: [UInt8] = []
        #expect(SOCKS5Datagram.encodeHeader(Self.nameTarget, into: &packet))
        #expect(packet == [0, 0, 0, 3, 9] + Array("a.example".utf8) + [1, 187])
        packet += Array("data".utf8)
        let decoded = packet.withUnsafeBytes { SOCKS5Datagram.decode($0) }
        #expect(decoded?.source == Self.nameTarget)
        #expect(decoded.map { Array(packet[$0.payloadOffset...]) } == Array("data".utf8))
        packet[2] = 1  // a fragment: dropped
        #expect(packet.withUnsafeBytes { SOCKS5Datagram.decode($0) } == nil)
        #expect([0, 0, 0].withUnsafeBytes { SOCKS5Datagram.decode($0) } == nil)
    }
}
