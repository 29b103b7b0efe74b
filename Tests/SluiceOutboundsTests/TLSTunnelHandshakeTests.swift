import SluiceTLS
import Foundation
import SluiceNet
import SluiceTestSupport
import Testing

@testable import SluiceOutbounds

#if canImport(Glibc)
import Glibc
#endif

/// The TLS client and the tunnel handshake against a real TLS server on loopback: the lab's
/// Python HTTPS proxy (and SOCKS5 over TLS), with a self-signed certificate made here, in
/// front of a server that speaks first.
@Suite("TLS tunnel handshake", .serialized)
struct TLSTunnelHandshakeTests {
    /// Two servers on 127.0.0.1 (the proxy, TLS; a banner server behind it), ended on deinit.
    final class Servers {
        let directory: String
        let proxyPort: UInt16
        let bannerPort: UInt16
        private var pids: [String] = []

        init(kind: String) throws {
            directory = NSTemporaryDirectory() + "sluice-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let (made, output) = Shell.run(
                "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=proxy.test "
                    + "-addext subjectAltName=DNS:proxy.test,IP:127.0.0.1 "
                    + "-keyout \(directory)/key.pem -out \(directory)/cert.pem 2>&1")
            guard made == 0 else { throw TLSError("openssl req: \(output)") }
            proxyPort = Self.freePort()
            bannerPort = Self.freePort()
            let servers = Shell.packageRoot() + "/Scripts/lab-servers.py"
            for command in [
                "python3 \(servers) banner 127.0.0.1 \(bannerPort)",
                "python3 \(servers) tls-proxy \(kind) 127.0.0.1 \(proxyPort) \(directory)/cert.pem \(directory)/key.pem",
            ] {
                let (status, pid) = Shell.run("\(command) >>\(directory)/proxy.log 2>&1 & echo $!")
                guard status == 0 else { throw TLSError("\(command): \(pid)") }
                pids.append(pid.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            let (ready, _) = Shell.run(
                "for i in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/\(proxyPort)) 2>/dev/null "
                    + "&& (exec 3<>/dev/tcp/127.0.0.1/\(bannerPort)) 2>/dev/null && exit 0; sleep 0.1; done; exit 1")
            guard ready == 0 else { throw TLSError("the servers did not start: \(log)") }
        }

        deinit {
            for pid in pids { _ = Shell.run("kill \(pid)") }
            try? FileManager.default.removeItem(atPath: directory)
        }

        var certificate: String { directory + "/cert.pem" }
        var log: String { (try? String(contentsOfFile: directory + "/proxy.log", encoding: .utf8)) ?? "" }

        static func freePort() -> UInt16 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
            }
            return UInt16(bigEndian: address.sin_port)
        }
    }

    /// A blocking TCP connection to 127.0.0.1 (reads time out after 5 s).
    struct Connection: ~Copyable {
        let fd: CInt

        init(port: UInt16) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                close(fd)
                throw TLSError("connect: errno \(errno)")
            }
        }

        deinit { close(fd) }

        func send(_ bytes: [UInt8]) {
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { return }
                offset += n
            }
        }

        /// Up to 16 KiB; empty at EOF, on error or after the timeout.
        func receive() -> [UInt8] {
            var buffer = [UInt8](repeating: 0, count: 16384)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return n > 0 ? Array(buffer[0..<n]) : []
        }

        /// Drives `handshake` to its end: the last step (established or failed).
        func run(_ handshake: inout some ProxyHandshake) -> HandshakeStep {
            var step = handshake.start()
            while case .send(let bytes) = step {
                send(bytes)
                let chunk = receive()
                if chunk.isEmpty { return .failed("the server closed the connection or did not answer") }
                step = handshake.receive(chunk)
            }
            return step
        }

        /// After the tunnel handshake: what the relay does, by hand. Sends `text` sealed and
        /// returns the plaintext that came back until it ends with `until` (or 5 s pass).
        func exchange(_ session: TLSClientSession, send text: String, until: String) throws -> String {
            var out: [UInt8] = []
            session.drainOutgoing(into: &out)
            try session.encrypt(Array(text.utf8))
            session.drainOutgoing(into: &out)
            send(out)
            var plaintext = session.takeEarly()
            while !String(decoding: plaintext, as: UTF8.self).hasSuffix(until) {
                let chunk = receive()
                guard !chunk.isEmpty else { break }
                try chunk.withUnsafeBytes { raw in
                    do throws(TLSError) { try session.decrypt(raw, into: &plaintext) } catch { throw error }
                }
            }
            return String(decoding: plaintext, as: UTF8.self)
        }
    }

    static func connect(_ servers: Servers) -> HTTPConnectHandshake {
        HTTPConnectHandshake(target: SocketEndpoint(address: IPAddress("127.0.0.1")!, port: servers.bannerPort))
    }

    @Test("skip-cert-verify: CONNECT inside TLS, the banner behind the reply, an echo through the session")
    func skipVerification() throws {
        let servers = try Servers(kind: "http")
        let session = try TLSClientSession(context: TLSClientContext(verification: .none), serverName: "proxy.test")
        var handshake = TLSTunnelHandshake(session: session, inner: Self.connect(servers))
        let connection = try Connection(port: servers.proxyPort)
        let step = connection.run(&handshake)
        #expect(step == .established(leftover: []), "\(step)")
        #expect(session.isEstablished)
        let text = try connection.exchange(session, send: "ping\n", until: "ping\n")
        #expect(text == "220 banner\r\nping\n")
        #expect(servers.log.contains("CONNECT 127.0.0.1:\(servers.bannerPort)"), "\(servers.log)")
    }

    @Test("a self-signed certificate fails against the system CA store, before any CONNECT")
    func systemStoreRejectsSelfSigned() throws {
        let servers = try Servers(kind: "http")
        let session = try TLSClientSession(context: TLSClientContext(verification: .system), serverName: "proxy.test")
        var handshake = TLSTunnelHandshake(session: session, inner: Self.connect(servers))
        let connection = try Connection(port: servers.proxyPort)
        let step = connection.run(&handshake)
        guard case .failed(let reason) = step else {
            Issue.record("expected a failure, got \(step)")
            return
        }
        #expect(reason.hasPrefix("TLS: certificate verify failed: self-signed certificate"), "\(reason)")
        #expect(!servers.log.contains("CONNECT"))
    }

    @Test("a trusted certificate verifies for its name and its address, not for another name")
    func nameChecks() throws {
        let servers = try Servers(kind: "http")
        let context = try TLSClientContext(verification: .caFile(servers.certificate))
        for (name, passes) in [("proxy.test", true), ("127.0.0.1", true), ("other.test", false)] {
            let session = try TLSClientSession(context: context, serverName: name)
            var handshake = TLSTunnelHandshake(session: session, inner: Self.connect(servers))
            let connection = try Connection(port: servers.proxyPort)
            let step = connection.run(&handshake)
            if passes {
                #expect(step == .established(leftover: []), "\(name): \(step)")
                #expect(try connection.exchange(session, send: "x\n", until: "x\n") == "220 banner\r\nx\n")
            } else {
                guard case .failed(let reason) = step else {
                    Issue.record("\(name): expected a failure, got \(step)")
                    continue
                }
                #expect(reason.contains("hostname mismatch"), "\(reason)")
            }
        }
    }

    @Test("SOCKS5 inside TLS")
    func socks5() throws {
        let servers = try Servers(kind: "socks5")
        let context = try TLSClientContext(verification: .caFile(servers.certificate))
        let session = try TLSClientSession(context: context, serverName: "proxy.test")
        var handshake = TLSTunnelHandshake(
            session: session,
            inner: SOCKS5Handshake(command: .connect, target: SocketEndpoint(host: .name("localhost"), port: servers.bannerPort)))
        let connection = try Connection(port: servers.proxyPort)
        #expect(connection.run(&handshake) == .established(leftover: []))
        #expect(try connection.exchange(session, send: "hi\n", until: "hi\n") == "220 banner\r\nhi\n")
        #expect(servers.log.contains("CONNECT localhost:\(servers.bannerPort)"), "\(servers.log)")
    }

    @Test("plaintext is not TLS: a server that answers in the clear fails the handshake")
    func notTLS() throws {
        let servers = try Servers(kind: "http")
        let session = try TLSClientSession(context: TLSClientContext(verification: .none), serverName: "proxy.test")
        var handshake = TLSTunnelHandshake(session: session, inner: Self.connect(servers))
        // The banner server says "220 banner" in the clear.
        let connection = try Connection(port: servers.bannerPort)
        guard case .failed(let reason) = connection.run(&handshake) else {
            Issue.record("expected a failure")
            return
        }
        #expect(reason.hasPrefix("TLS: handshake failed"), "\(reason)")
    }
}
