import Foundation
import SluiceNet
import SluiceSystem
import SluiceTLS
import SluiceTestSupport
import Testing

@testable import SluiceOutbounds

#if canImport(Glibc)
import Glibc
#endif

/// The TLS client and the TLS layer with a proxy handshake layer on top, in a layered stream, against a real TLS
/// server on loopback: the lab's Python HTTPS proxy (and SOCKS5 over TLS), with a self-signed certificate made here,
/// in front of a server that speaks first (its banner arrives behind the proxy's reply).
@Suite("TLS layer", .serialized)
struct TLSLayerTests {
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
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
                }
            }
            return UInt16(bigEndian: address.sin_port)
        }
    }

    /// A layered stream over a TCP connection to 127.0.0.1, driven with blocking waits (5 s at most per step).
    final class Client {
        let stream: LayeredStream
        private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

        init(port: UInt16, layers: [any StreamLayer]) throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0 else {
                close(fd)
                throw TLSError("connect: errno \(errno)")
            }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            stream = LayeredStream(
                takingOwnershipOf: OwnedDescriptor(takingOwnershipOfDescriptor: fd), layers: layers,
                readBuffer: readBuffer)
        }

        deinit {
            stream.close(reset: false)
            readBuffer.deallocate()
        }

        var deadline: UInt64 { MonotonicClock.now + 5_000_000_000 }

        /// Runs the layers' setup: nil when established, else why not.
        func establish() -> String? { BlockingStream.establish(stream, deadline: deadline) }

        /// After setup: what the relay does, with blocking waits. Sends `text` through the layers and returns what
        /// came back until it ends with `until` (or 5 s pass).
        func exchange(send text: String, until: String) -> String {
            #expect(BlockingStream.write(Array(text.utf8), to: stream, deadline: deadline) == nil)
            var received: [UInt8] = []
            while !String(decoding: received, as: UTF8.self).hasSuffix(until) {
                guard let chunk = BlockingStream.read(from: stream, deadline: deadline), !chunk.isEmpty else { break }
                received += chunk
            }
            return String(decoding: received, as: UTF8.self)
        }
    }

    static func connect(_ servers: Servers) -> ProxyHandshakeLayer {
        ProxyHandshakeLayer(
            HTTPConnectHandshake(target: SocketEndpoint(address: IPAddress("127.0.0.1")!, port: servers.bannerPort)))
    }

    @Test("skip-cert-verify: CONNECT inside TLS, the banner behind the reply, an echo through the session")
    func skipVerification() throws {
        let servers = try Servers(kind: "http")
        let session = try TLSClientSession(context: TLSClientContext(verification: .none), serverName: "proxy.test")
        let client = try Client(port: servers.proxyPort, layers: [TLSLayer(session), Self.connect(servers)])
        let failure = client.establish()
        #expect(failure == nil, "\(failure ?? "")")
        #expect(session.isEstablished)
        #expect(client.exchange(send: "ping\n", until: "ping\n") == "220 banner\r\nping\n")
        #expect(servers.log.contains("CONNECT 127.0.0.1:\(servers.bannerPort)"), "\(servers.log)")
    }

    @Test("a self-signed certificate fails against the system CA store, before any CONNECT")
    func systemStoreRejectsSelfSigned() throws {
        let servers = try Servers(kind: "http")
        let session = try TLSClientSession(context: TLSClientContext(verification: .system), serverName: "proxy.test")
        let client = try Client(port: servers.proxyPort, layers: [TLSLayer(session), Self.connect(servers)])
        guard let reason = client.establish() else {
            Issue.record("expected a failure")
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
            let client = try Client(port: servers.proxyPort, layers: [TLSLayer(session), Self.connect(servers)])
            let failure = client.establish()
            if passes {
                #expect(failure == nil, "\(name): \(failure ?? "")")
                #expect(client.exchange(send: "x\n", until: "x\n") == "220 banner\r\nx\n")
            } else {
                guard let reason = failure else {
                    Issue.record("\(name): expected a failure")
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
        let socks5 = ProxyHandshakeLayer(
            SOCKS5Handshake(
                command: .connect, target: SocketEndpoint(host: .name("localhost"), port: servers.bannerPort)))
        let client = try Client(port: servers.proxyPort, layers: [TLSLayer(session), socks5])
        #expect(client.establish() == nil)
        #expect(client.exchange(send: "hi\n", until: "hi\n") == "220 banner\r\nhi\n")
        #expect(servers.log.contains("CONNECT localhost:\(servers.bannerPort)"), "\(servers.log)")
    }

    @Test("a tls: true proxy's plan: a TLS layer under the handshake layer, relayed as a stream")
    func plan() throws {
        let servers = try Servers(kind: "socks5")
        let tls = ProxyTLS(
            server: SocketEndpoint(host: .name("proxy.test"), port: servers.proxyPort), sni: nil, skipCertVerify: true)
        let plan = try tls.plan(
            hop: .endpoint(InetEndpoint(IPAddress("127.0.0.1")!, servers.proxyPort)),
            inner: SOCKS5Handshake(
                command: .connect, target: SocketEndpoint(address: IPAddress("127.0.0.1")!, port: servers.bannerPort)))
        guard case .stream(let layers) = plan.shape else {
            Issue.record("expected the stream shape, got \(plan.shape)")
            return
        }
        #expect(layers.count == 2 && layers[0] is TLSLayer && layers[1] is ProxyHandshakeLayer)
        let client = try Client(port: servers.proxyPort, layers: layers)
        #expect(client.establish() == nil)
        #expect(client.exchange(send: "plan\n", until: "plan\n") == "220 banner\r\nplan\n")
    }

    @Test("plaintext is not TLS: a server that answers in the clear fails the handshake")
    func notTLS() throws {
        let servers = try Servers(kind: "http")
        let session = try TLSClientSession(context: TLSClientContext(verification: .none), serverName: "proxy.test")
        // The banner server says "220 banner" in the clear.
        let client = try Client(port: servers.bannerPort, layers: [TLSLayer(session), Self.connect(servers)])
        guard let reason = client.establish() else {
            Issue.record("expected a failure")
            return
        }
        #expect(reason.hasPrefix("TLS: handshake failed"), "\(reason)")
    }
}
