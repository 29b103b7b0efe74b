import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceSystem
import SluiceTun
import Testing

/// Which DNS the tun worker hands to the dns worker.
@Suite("DNSHijacker")
struct DNSHijackerTests {
    static let upstream = InetEndpoint(IPAddress("10.77.200.2")!, 53)

    private func hijacker(_ entries: [DNSHijack], connected: Bool = true) throws -> (DNSHijacker, FrameChannel?) {
        let h = DNSHijacker(entries: entries, upstreams: [Self.upstream], tun: -1, logger: Logger(label: "test"))
        guard connected else { return (h, nil) }
        let (a, b) = try UnixSocket.pair(.stream)
        h.attach(FrameChannel(takingOwnershipOf: a))
        return (h, FrameChannel(takingOwnershipOf: b))
    }

    @Test("any:53 catches UDP and TCP DNS to any address, but not other ports")
    func anyAddress() throws {
        let (h, peer) = try hijacker([DNSHijack(transport: .both, address: nil, port: 53)])
        defer { peer?.close(); h.detach() }
        let elsewhere = InetEndpoint(IPAddress("10.77.200.9")!, 53)
        #expect(h.catches(udp: true, elsewhere))
        #expect(h.catches(udp: false, elsewhere))
        #expect(!h.catches(udp: true, InetEndpoint(IPAddress("10.77.200.9")!, 5353)))
    }

    @Test("transport and address restrict the entry")
    func restricted() throws {
        let (h, peer) = try hijacker([DNSHijack(transport: .tcp, address: IPAddress("1.1.1.1"), port: 53)])
        defer { peer?.close(); h.detach() }
        #expect(h.catches(udp: false, InetEndpoint(IPAddress("1.1.1.1")!, 53)))
        #expect(!h.catches(udp: true, InetEndpoint(IPAddress("1.1.1.1")!, 53)))
        #expect(!h.catches(udp: false, InetEndpoint(IPAddress("8.8.8.8")!, 53)))
    }

    @Test("the dns worker's own upstream is never hijacked (it would loop back to it)")
    func upstreamExcluded() throws {
        let (h, peer) = try hijacker([DNSHijack(transport: .both, address: nil, port: 53)])
        defer { peer?.close(); h.detach() }
        #expect(!h.catches(udp: true, Self.upstream))
        #expect(!h.catches(udp: false, Self.upstream))
    }

    @Test("without a connected dns worker nothing is hijacked, so DNS follows the rules")
    func disconnected() throws {
        let (h, _) = try hijacker([DNSHijack(transport: .both, address: nil, port: 53)], connected: false)
        #expect(!h.catches(udp: true, InetEndpoint(IPAddress("10.77.200.9")!, 53)))
    }
}
