import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceDNSWire
import SluiceNet
import SluiceSystem
import SluiceTestSupport
import Testing

@testable import SluiceDNS

/// A server over `configuration` with its upstream receive loop running.
final class RunningServer {
    let server: DNSServer
    let sockets: UDPUpstreamSockets
    let thread: OSThread
    let recorder = EventRecorder()

    init(_ configuration: SluiceConfiguration, storePath: String? = nil) throws {
        sockets = try UDPUpstreamSockets(handed: [:])
        server = DNSServer(configuration, sockets: sockets, storePath: storePath, logger: Logger(label: "dns-test"))
        let sockets = self.sockets
        thread = try OSThread.start(name: "test-upstream") { sockets.run() }
        let recorder = self.recorder
        server.setEventSink { event in recorder.events.withLock { $0.append(event) } }
    }

    /// Asks and waits (5 s at most) for the answer.
    func ask(_ query: [UInt8], udp: Bool = true) -> [UInt8]? {
        let done = DispatchSemaphore(value: 0)
        let box = Locked<[UInt8]?>(nil)
        query.withUnsafeBytes { raw in
            server.handle(raw, udp: udp) { reply in
                box.withLock { $0 = reply }
                done.signal()
            }
        }
        guard done.wait(timeout: .now() + 5) == .success else { return nil }
        return box.withLock { $0 }
    }

    func addresses(_ name: String, type: UInt16 = 1) -> [String]? {
        guard let reply = ask(wireQuery(name: name, type: type)),
            let parsed = try? DNSResponse.parseUpstream(reply).get()
        else { return nil }
        return parsed.addresses.map(\.description)
    }

    deinit {
        sockets.stop()
        thread.join()
    }
}

/// Mapping events the server sent (the tun worker's side, played by the test).
final class EventRecorder: Sendable {
    let events = Locked<[MappingEvent]>([])
}

/// The resolver against real upstreams (dnsmasq on loopback) and a hand-driven one.
@Suite("DNS server", .serialized)
struct DNSServerTests {
    static let logger = Logger(label: "dns-test")

    static func configuration(mode: DNSConfiguration.EnhancedMode, nameserver: [String]) -> SluiceConfiguration {
        var c = SluiceConfiguration()
        c.dns.enable = true
        c.dns.enhancedMode = mode
        c.dns.useSystemHosts = false
        c.dns.nameserver = nameserver.map { text in
            let tcp = text.hasPrefix("tcp://")
            let rest = text.replacingOccurrences(of: "tcp://", with: "").replacingOccurrences(of: "udp://", with: "")
            return DNSUpstream(transport: tcp ? .tcp : .udp, endpoint: SocketEndpoint.parse(rest, defaultPort: 53)!)
        }
        return c
    }

    @Test(
        "fake-ip: names get repeatable pool addresses with TTL 1; filtered names and hosts get real answers; AAAA is empty"
    )
    func fakeIP() throws {
        let upstream = try Dnsmasq(options: ["--address=/test/10.77.200.2", "--address=/lan/10.1.1.1"])
        defer { upstream.stop() }
        var c = Self.configuration(mode: .fakeIP, nameserver: ["127.0.0.1:\(upstream.port)"])
        c.dns.fakeIPFilter = [.wildcard("*.lan"), .suffix("real.test")]
        c.hosts = [HostEntry(name: "fixed.test", value: .addresses([IPAddress("10.9.9.9")!]))]
        // A WireGuard peer's endpoint name: the keepalive worker must get its real address.
        var link = WireGuardLink(
            name: "wg0", privateKey: .key(WireGuardKey(base64: String(repeating: "A", count: 43) + "=")!))
        var peer = WireGuardPeer(publicKey: WireGuardKey(base64: String(repeating: "B", count: 43) + "=")!)
        peer.endpoint = SocketEndpoint(host: .name("VPN.Endpoint.test"), port: 51820)
        link.peers = [peer]
        c.wireguard = [link]
        let s = try RunningServer(c)
        #expect(s.addresses("vpn.endpoint.test") == ["10.77.200.2"], "a WireGuard endpoint name is answered for real")
        let a = try #require(s.addresses("a.test")?.first)
        #expect(IPPrefix("198.18.0.0/16")!.contains(IPAddress(a)!))
        #expect(s.addresses("A.TEST") == [a], "same name (any case), same address")
        #expect(s.addresses("b.test") != [a])
        let reply = try #require(s.ask(wireQuery(name: "a.test")))
        #expect(try DNSResponse.parseUpstream(reply).get().minimumAnswerTTL == 1)
        #expect(s.addresses("printer.lan") == ["10.1.1.1"], "*.lan: one label")
        #expect(
            IPPrefix("198.18.0.0/16")!.contains(IPAddress(s.addresses("a.b.lan")!.first!)!),
            "*.lan does not match two labels")
        #expect(s.addresses("real.test") == ["10.77.200.2"])
        #expect(s.addresses("deep.down.real.test") == ["10.77.200.2"], "+. matches any depth")
        #expect(s.addresses("fixed.test") == ["10.9.9.9"], "hosts")
        let aaaa = try #require(s.ask(wireQuery(name: "a.test", type: 28)))
        #expect(aaaa[3] & 0xF == 0 && aaaa[7] == 0, "AAAA without ipv6: NOERROR, no answers")
        // The tun worker heard of each new mapping before the answer went out.
        #expect(
            s.recorder.events.withLock { $0 }.contains {
                $0.kind == .assigned && $0.name == "a.test" && $0.address.description == a
            })
        #expect(s.server.name(forFake: IPAddress(a)!) == "a.test")
    }

    @Test("cache: a repeated query does not reach the upstream; NXDOMAIN is cached too; TTLs age")
    func cache() throws {
        let upstream = try Dnsmasq(options: ["--address=/test/10.77.200.2", "--address=/nx.test/", "--local-ttl=300"])
        defer { upstream.stop() }
        let s = try RunningServer(Self.configuration(mode: .normal, nameserver: ["127.0.0.1:\(upstream.port)"]))
        #expect(s.addresses("c.test") == ["10.77.200.2"])
        #expect(s.addresses("C.test") == ["10.77.200.2"])
        #expect(s.server.upstreamQueries.load(ordering: .relaxed) == 1)
        #expect(s.server.cacheHits.load(ordering: .relaxed) == 1)
        let nx1 = try #require(s.ask(wireQuery(name: "x.nx.test")))
        let nx2 = try #require(s.ask(wireQuery(name: "x.nx.test")))
        #expect(nx1[3] & 0xF == 3 && nx2[3] & 0xF == 3)
        #expect(s.server.upstreamQueries.load(ordering: .relaxed) == 2)
        Thread.sleep(forTimeInterval: 1.1)
        let aged = try #require(s.ask(wireQuery(name: "c.test")))
        #expect(try DNSResponse.parseUpstream(aged).get().minimumAnswerTTL! < 300)
    }

    @Test("flushing the answer cache sends the next query upstream again")
    func flushAnswers() throws {
        let upstream = try Dnsmasq(options: ["--address=/test/10.77.200.2", "--local-ttl=300"])
        defer { upstream.stop() }
        let s = try RunningServer(Self.configuration(mode: .normal, nameserver: ["127.0.0.1:\(upstream.port)"]))
        #expect(s.addresses("c.test") == ["10.77.200.2"] && s.addresses("c.test") == ["10.77.200.2"])
        #expect(s.server.upstreamQueries.load(ordering: .relaxed) == 1)
        #expect(s.server.flushAnswers() == 1)
        #expect(s.server.cacheCount == 0)
        #expect(s.addresses("c.test") == ["10.77.200.2"])
        #expect(s.server.upstreamQueries.load(ordering: .relaxed) == 2, "asked upstream again after the flush")
    }

    @Test(
        "flushing the fake-IP pool empties the store, releases every mapping to the tun worker, gives fresh addresses")
    func flushFakeIPs() throws {
        let directory = "/tmp/sluice-flush-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = directory + "/fake-ip.store"
        let s = try RunningServer(Self.configuration(mode: .fakeIP, nameserver: []), storePath: store)
        let before = ["a.test", "b.test", "c.test"].map { s.addresses($0)?.first ?? "" }
        #expect(((try FakeIPStore.readFile(store))?.count ?? 0) > FakeIPStore.headerSize)
        let flushed = s.server.flushFakeIPs()
        #expect(flushed.removed == 3 && flushed.problem == nil)
        #expect((try FakeIPStore.readFile(store))?.count == FakeIPStore.headerSize, "the store holds its header alone")
        let released = s.recorder.events.withLock { $0 }.filter { $0.kind == .released }
        #expect(
            Set(released.map { "\($0.name) \($0.address)" })
                == Set(zip(["a.test", "b.test", "c.test"], before).map { "\($0) \($1)" }))
        #expect(s.server.name(forFake: IPAddress(before[0])!) == nil)
        let after = ["c.test", "b.test", "a.test"].map { s.addresses($0)?.first ?? "" }
        #expect(Set(after).isDisjoint(with: before), "fresh addresses: \(before) then \(after)")
        let numbers = after.compactMap { IPAddress($0) }.compactMap { address -> UInt32? in
            if case .v4(let v4) = address { return v4.rawValue }
            return nil
        }
        #expect(numbers.count == 3 && numbers == numbers.sorted(), "handed out in the order asked: \(after)")
        // Another server on the same store (a restart) finds only what came after the flush.
        let restarted = try RunningServer(Self.configuration(mode: .fakeIP, nameserver: []), storePath: store)
        #expect(restarted.server.fakeIPCount == 3 && restarted.server.name(forFake: IPAddress(after[0])!) == "c.test")
        // dns off: nothing to flush.
        let normal = try RunningServer(Self.configuration(mode: .normal, nameserver: []))
        #expect(normal.server.flushFakeIPs().removed == 0)
    }

    @Test("identical queries in flight share one upstream exchange; the answer reaches every client with its own ID")
    func inflight() throws {
        // A hand-driven upstream: it answers only when the test says so.
        let socket = try InetSocket.udp(AF_INET)
        try InetSocket.bind(socket.rawValue, InetEndpoint(IPAddress("127.0.0.1")!, 0))
        let port = try InetSocket.address(socket.rawValue).port
        let s = try RunningServer(Self.configuration(mode: .normal, nameserver: ["127.0.0.1:\(port)"]))
        let replies = Locked<[UInt16: [UInt8]]>([:])
        for id in UInt16(1)...20 {
            wireQuery(id: id, name: "same.test").withUnsafeBytes { raw in
                s.server.handle(raw, udp: true) { r in replies.withLock { $0[id] = r } }
            }
        }
        #expect(try Descriptors.waitReadable(socket.rawValue, timeoutMilliseconds: 2000))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 8)
        defer { buffer.deallocate() }
        var received: [([UInt8], InetEndpoint)] = []
        usleep(100_000)
        while let (n, from) = try InetSocket.receive(socket.rawValue, into: buffer) {
            received.append((Array(buffer[0..<n]), from))
        }
        #expect(received.count == 1, "20 identical queries, \(received.count) upstream queries")
        let (upstreamQuery, from) = try #require(received.first)
        let parsed = try DNSQuery.parse(upstreamQuery).get()
        #expect(parsed.edns != nil, "upstream queries advertise EDNS")
        let answer = DNSResponse.build(for: parsed, answers: [.init(address: IPAddress("10.5.5.5")!, ttl: 60)])
        _ = try answer.withUnsafeBytes { try InetSocket.send(socket.rawValue, $0, to: from) }
        for _ in 0..<100 where replies.withLock({ $0.count }) < 20 { usleep(10_000) }
        let all = replies.withLock { $0 }
        #expect(all.count == 20)
        for (id, reply) in all {
            let r = try DNSResponse.parseUpstream(reply).get()
            #expect(r.id == id && r.addresses == [IPAddress("10.5.5.5")!])
        }
    }

    @Test("an upstream that never answers: the client gets SERVFAIL, not silence")
    func timeout() throws {
        let socket = try InetSocket.udp(AF_INET)
        try InetSocket.bind(socket.rawValue, InetEndpoint(IPAddress("127.0.0.1")!, 0))
        let port = try InetSocket.address(socket.rawValue).port
        let s = try RunningServer(Self.configuration(mode: .normal, nameserver: ["127.0.0.1:\(port)"]))
        let done = DispatchSemaphore(value: 0)
        let box = Locked<[UInt8]?>(nil)
        wireQuery(name: "slow.test").withUnsafeBytes { raw in
            s.server.handle(raw, udp: true) { r in
                box.withLock { $0 = r }
                done.signal()
            }
        }
        #expect(done.wait(timeout: .now() + 8) == .success)
        #expect(box.withLock { $0 }.map { $0[3] & 0xF } == 2)
    }

    @Test(
        "dns-max-in-flight: past it a new question gets SERVFAIL at once and one log line; joining, cached and fake answers still work"
    )
    func inFlightLimit() throws {
        // An upstream that reads and never answers: every question stays in flight (4 s).
        let socket = try InetSocket.udp(AF_INET)
        try InetSocket.bind(socket.rawValue, InetEndpoint(IPAddress("127.0.0.1")!, 0))
        let port = try InetSocket.address(socket.rawValue).port
        var c = Self.configuration(mode: .fakeIP, nameserver: ["127.0.0.1:\(port)"])
        c.dns.fakeIPFilter = [.suffix("up.test")]
        c.limits.dnsMaxInFlight = 4
        let captured = CapturedLines()
        let sockets = try UDPUpstreamSockets(handed: [:])
        let thread = try OSThread.start(name: "test-upstream") { sockets.run() }
        defer {
            sockets.stop()
            thread.join()
        }
        let server = DNSServer(c, sockets: sockets, storePath: nil, logger: captured.logger)
        let replies = Locked<[UInt16: [UInt8]]>([:])
        func ask(_ id: UInt16, _ name: String) {
            wireQuery(id: id, name: name).withUnsafeBytes { raw in
                server.handle(raw, udp: true) { r in replies.withLock { $0[id] = r } }
            }
        }
        for n in UInt16(1)...4 { ask(n, "n\(n).up.test") }
        ask(5, "n1.up.test")  // the same question as one in flight: joins it, not counted
        let started = Date()
        for n in UInt16(6)...9 { ask(n, "more\(n).up.test") }
        ask(10, "fake.test")  // a fake-IP answer needs no upstream
        for _ in 0..<100 where replies.withLock({ $0.count }) < 5 { usleep(10_000) }
        let early = replies.withLock { $0 }
        #expect(Date().timeIntervalSince(started) < 1, "SERVFAIL at once, not after the upstream timeout")
        #expect(Set(early.keys) == [6, 7, 8, 9, 10], "\(early.keys.sorted())")
        for n in UInt16(6)...9 { #expect(early[n].map { $0[3] & 0xF } == 2, "query \(n): SERVFAIL") }
        let fake = try DNSResponse.parseUpstream(try #require(early[10])).get()
        #expect(fake.addresses.first.map { IPPrefix("198.18.0.0/16")!.contains($0) } == true)
        #expect(server.refusedInFlight.load(ordering: .relaxed) == 4)
        let warnings = captured.lines.withLock { $0 }.filter { $0.contains("limits.dns-max-in-flight") }
        #expect(warnings.count == 1, "one line for four refusals: \(warnings)")
        #expect(warnings.first?.hasPrefix("warning: more6.up.test: SERVFAIL: limits.dns-max-in-flight (4)") == true)
        // The upstream times out (4 s): the slots free and the next question goes upstream again.
        for _ in 0..<80 where replies.withLock({ $0.count }) < 10 { usleep(100_000) }
        #expect(replies.withLock { $0.count } == 10, "the piled-up queries got their (timeout) answers")
        let before = server.upstreamQueries.load(ordering: .relaxed)
        ask(11, "after.up.test")
        #expect(server.upstreamQueries.load(ordering: .relaxed) == before + 1)
    }

    @Test("TCP upstream, a truncated UDP answer retried over TCP, and nameserver-policy")
    func transportsAndPolicy() throws {
        let long = String(repeating: "x", count: 250)
        let big = (0..<8).map { "--txt-record=big.test,\"\(long)\($0)\"" }
        let first = try Dnsmasq(options: ["--address=/test/10.1.1.1"] + big)
        defer { first.stop() }
        let second = try Dnsmasq(options: ["--address=/test/10.2.2.2"])
        defer { second.stop() }
        var c = Self.configuration(mode: .normal, nameserver: ["127.0.0.1:\(first.port)"])
        c.dns.nameserverPolicy = [
            NameserverPolicy(
                pattern: .suffix("corp.test"),
                upstreams: [
                    DNSUpstream(
                        transport: .tcp, endpoint: SocketEndpoint.parse("127.0.0.1:\(second.port)", defaultPort: 53)!)
                ])
        ]
        let s = try RunningServer(c)
        #expect(s.addresses("www.test") == ["10.1.1.1"])
        #expect(s.addresses("git.corp.test") == ["10.2.2.2"], "policy, over TCP")
        // 8 × 250-byte TXT strings do not fit dnsmasq's UDP answer: TC, retried over TCP.
        let reply = try #require(s.ask(wireQuery(name: "big.test", type: 16, edns: (65000, 0, false)), udp: false))
        #expect(reply.count > 2000)
        #expect(reply[2] & 0x02 == 0, "not truncated")
        #expect(reply[7] == 8, "all 8 TXT records")
        // The same answer to a plain UDP client is TC (it cannot take more than 512 bytes).
        let small = try #require(s.ask(wireQuery(name: "big.test", type: 16), udp: true))
        #expect(small[2] & 0x02 != 0)
    }

    @Test("redir-host: real answers tell the tun worker which name an address belongs to")
    func redirHost() throws {
        let upstream = try Dnsmasq(options: ["--address=/test/10.77.200.2"])
        defer { upstream.stop() }
        let s = try RunningServer(Self.configuration(mode: .redirHost, nameserver: ["127.0.0.1:\(upstream.port)"]))
        #expect(s.addresses("r.test") == ["10.77.200.2"])
        #expect(
            s.recorder.events.withLock { $0 } == [
                MappingEvent(kind: .assigned, address: IPAddress("10.77.200.2")!, name: "r.test")
            ])
        let resolved = Locked<[IPAddress]>([])
        let done = DispatchSemaphore(value: 0)
        s.server.resolveAddresses("other.test") { addresses, _ in
            resolved.withLock { $0 = addresses }
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(resolved.withLock { $0 } == [IPAddress("10.77.200.2")!])
    }

    @Test("a lost upstream datagram is sent again; a cache-min-ttl answer tells clients the TTL the cache keeps")
    func resendAndClamp() throws {
        let socket = try InetSocket.udp(AF_INET)
        try InetSocket.bind(socket.rawValue, InetEndpoint(IPAddress("127.0.0.1")!, 0))
        let port = try InetSocket.address(socket.rawValue).port
        var c = Self.configuration(mode: .normal, nameserver: ["127.0.0.1:\(port)"])
        c.dns.cacheMinTTL = 60
        let s = try RunningServer(c)
        let done = DispatchSemaphore(value: 0)
        let box = Locked<[UInt8]?>(nil)
        wireQuery(name: "lossy.test").withUnsafeBytes { raw in
            s.server.handle(raw, udp: true) { r in
                box.withLock { $0 = r }
                done.signal()
            }
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 8)
        defer { buffer.deallocate() }
        // The first copy is "lost": read and ignored. The second is answered (TTL 0).
        #expect(try Descriptors.waitReadable(socket.rawValue, timeoutMilliseconds: 2000))
        _ = try InetSocket.receive(socket.rawValue, into: buffer)
        #expect(try Descriptors.waitReadable(socket.rawValue, timeoutMilliseconds: 3000), "sent again")
        let (n, from) = try #require(try InetSocket.receive(socket.rawValue, into: buffer))
        let parsed = try DNSQuery.parse(Array(buffer[0..<n])).get()
        let answer = DNSResponse.build(for: parsed, answers: [.init(address: IPAddress("10.6.6.6")!, ttl: 0)])
        _ = try answer.withUnsafeBytes { try InetSocket.send(socket.rawValue, $0, to: from) }
        #expect(done.wait(timeout: .now() + 5) == .success)
        let reply = try #require(box.withLock { $0 })
        let upstream = try DNSResponse.parseUpstream(reply).get()
        #expect(upstream.addresses == [IPAddress("10.6.6.6")!])
        #expect(upstream.minimumAnswerTTL == 60, "the TTL clients see is the one the cache keeps")
        #expect(s.addresses("lossy.test") == ["10.6.6.6"])
        #expect(s.server.upstreamQueries.load(ordering: .relaxed) == 1, "served from the cache")
        #expect(s.sockets.resent.load(ordering: .relaxed) >= 1)
    }
}
