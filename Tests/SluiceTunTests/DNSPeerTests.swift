import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceSystem
import Synchronization
import Testing

@testable import SluiceTun

#if canImport(Glibc)
import Glibc
#endif

/// Which DNS the tun worker hands to the dns worker.
@Suite("DNSPeer")
struct DNSPeerTests {
    static let upstream = InetEndpoint(IPAddress("10.77.200.2")!, 53)

    private func hijacker(_ entries: [DNSHijack], connected: Bool = true) throws -> (DNSPeer, FrameChannel?) {
        let h = DNSPeer(
            entries: entries, upstreams: [Self.upstream], fakeRanges: [IPPrefix("198.18.0.1/16")!],
            tun: TunWriter(fd: -1, vnetHeader: false),
            logger: Logger(label: "test"))
        guard connected else { return (h, nil) }
        let (a, b) = try UnixSocket.pair(.stream)
        h.attach(FrameChannel(takingOwnershipOf: a))
        return (h, FrameChannel(takingOwnershipOf: b))
    }

    @Test("any:53 catches UDP and TCP DNS to any address, but not other ports")
    func anyAddress() throws {
        let (h, peer) = try hijacker([DNSHijack(transport: .both, address: nil, port: 53)])
        defer {
            peer?.close()
            h.detach()
        }
        let elsewhere = InetEndpoint(IPAddress("10.77.200.9")!, 53)
        #expect(h.catches(udp: true, elsewhere))
        #expect(h.catches(udp: false, elsewhere))
        #expect(!h.catches(udp: true, InetEndpoint(IPAddress("10.77.200.9")!, 5353)))
    }

    @Test("transport and address restrict the entry")
    func restricted() throws {
        let (h, peer) = try hijacker([DNSHijack(transport: .tcp, address: IPAddress("1.1.1.1"), port: 53)])
        defer {
            peer?.close()
            h.detach()
        }
        #expect(h.catches(udp: false, InetEndpoint(IPAddress("1.1.1.1")!, 53)))
        #expect(!h.catches(udp: true, InetEndpoint(IPAddress("1.1.1.1")!, 53)))
        #expect(!h.catches(udp: false, InetEndpoint(IPAddress("8.8.8.8")!, 53)))
    }

    @Test("the dns worker's own upstream is never hijacked (it would loop back to it)")
    func upstreamExcluded() throws {
        let (h, peer) = try hijacker([DNSHijack(transport: .both, address: nil, port: 53)])
        defer {
            peer?.close()
            h.detach()
        }
        #expect(!h.catches(udp: true, Self.upstream))
        #expect(!h.catches(udp: false, Self.upstream))
    }

    @Test("without a connected dns worker nothing is hijacked, so DNS follows the rules")
    func disconnected() throws {
        let (h, _) = try hijacker([DNSHijack(transport: .both, address: nil, port: 53)], connected: false)
        #expect(!h.catches(udp: true, InetEndpoint(IPAddress("10.77.200.9")!, 53)))
    }

    @Test("fake addresses: names come from the mirror fed by mapping events, a miss asks the dns worker once")
    func fakeMirror() throws {
        let (h, peer) = try hijacker([])
        let dns = try #require(peer)
        defer {
            dns.close()
            h.detach()
        }
        let a = IPAddress("198.18.0.5")!
        #expect(h.isFake(a) && !h.isFake(IPAddress("10.0.0.1")!))
        try dns.send(.mappingEvent(MappingEvent(kind: .assigned, address: a, name: "a.test")))
        try dns.send(
            .mappingEvent(MappingEvent(kind: .assigned, address: IPAddress("10.77.200.2")!, name: "real.test")))
        // The reader applies events in order; wait for it.
        var named: String?
        for _ in 0..<100 where named == nil {
            named = h.name(forReal: IPAddress("10.77.200.2")!)
            usleep(10_000)
        }
        #expect(named == "real.test")
        #expect(h.name(forFake: a) == "a.test")
        #expect(h.lookups.load(ordering: .relaxed) == 0, "answered from the mirror")
        // A miss: the dns worker (played by the test) is asked.
        let answered = Atomic<Bool>(false)
        let server = try OSThread.start(name: "fake-dns") {
            guard let frame = try? dns.receive(timeoutMilliseconds: 10_000),
                case .fakeIPLookup(let lookup)? = try? frame.frame.message()
            else { return }
            try? dns.send(
                .fakeIPAnswer(FakeIPAnswer(address: lookup.address, name: "b.test")), requestID: frame.header.requestID,
                isReply: true)
            answered.store(true, ordering: .relaxed)
        }
        #expect(h.name(forFake: IPAddress("198.18.0.6")!) == "b.test")
        server.join()
        let didAnswer = answered.load(ordering: .relaxed)
        #expect(didAnswer)
        #expect(h.name(forFake: IPAddress("198.18.0.6")!) == "b.test", "remembered")
        #expect(h.lookups.load(ordering: .relaxed) == 1)
        // Released: the mirror forgets it (and a dead dns worker makes lookups fail fast).
        try dns.send(.mappingEvent(MappingEvent(kind: .released, address: a, name: "a.test")))
        dns.close()
        usleep(100_000)
        #expect(h.name(forFake: a) == nil)
    }

    @Test("resolve: the answer comes back to the caller; a closed channel answers with an error, never silence")
    func resolve() throws {
        let (h, peer) = try hijacker([])
        let dns = try #require(peer)
        defer { h.detach() }
        let server = try OSThread.start(name: "fake-dns") {
            guard let frame = try? dns.receive(timeoutMilliseconds: 10_000),
                case .resolveRequest(let request)? = try? frame.frame.message(), request.name == "a.test"
            else { return }
            try? dns.send(
                .resolveAnswer(ResolveAnswer(addresses: [IPAddress("10.77.200.2")!])),
                requestID: frame.header.requestID, isReply: true)
            // The next request is left unanswered and the channel closed.
            _ = try? dns.receive(timeoutMilliseconds: 10_000)
            dns.close()
        }
        let results = Locked<[([IPAddress], String)]>([])
        h.resolve("a.test", ipv6: false) { a, e in results.withLock { $0.append((a, e)) } }
        for _ in 0..<1000 where results.withLock({ $0.count }) < 1 { usleep(10_000) }
        h.resolve("b.test", ipv6: false) { a, e in results.withLock { $0.append((a, e)) } }
        server.join()
        for _ in 0..<1000 where results.withLock({ $0.count }) < 2 { usleep(10_000) }
        let got = results.withLock { $0 }
        #expect(got.count == 2)
        #expect(got.first?.0 == [IPAddress("10.77.200.2")!], "\(got)")
        #expect(got.last?.0 == [] && got.last?.1.isEmpty == false)
    }
}
