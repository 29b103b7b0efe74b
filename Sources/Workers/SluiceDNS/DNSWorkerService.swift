import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The dns worker: a ``DNSServer`` behind three frontends, `dns.listen` over UDP and TCP
/// (sockets bound by sluiced and handed over, so port 53 needs no capability here) and
/// the tun worker's peer channel, which carries hijacked queries, fake-address lookups,
/// pins, name resolution for DIRECT connections, and mapping events back.
package final class DNSWorkerService: WorkerService, @unchecked Sendable {
    /// TCP clients served at once; more wait in the listen backlog.
    static let maxTCPClients = 128
    /// An idle TCP client is closed after this long (RFC 7766 6.2.3 suggests seconds).
    static let tcpIdleMilliseconds: Int32 = 10_000

    private let logger = Logger(label: "sluice-dns")
    private let environment: [String: String]
    private var server: DNSServer?
    private var sockets: UDPUpstreamSockets?
    private var applied: SluiceConfiguration?
    private var threads: [OSThread] = []
    /// Peer channel readers: each ends when its channel closes (a newer tun worker's channel replaces
    /// it, or shutdown closes it); joined then, on the main thread that alone touches this list.
    private var readers: [OSThread] = []
    private let peer = Locked<FrameChannel?>(nil)
    private let stopping = Atomic<Bool>(false)
    private var listenUDP: OwnedDescriptor?
    private var listenTCP: OwnedDescriptor?
    private var summary = "dns disabled"
    private let tcpClients = Atomic<Int>(0)

    package init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    package func apply(_ configuration: SluiceConfiguration, generation: UInt64) -> (ConfigResult.Outcome, String) {
        if let applied {
            if applied.dns != configuration.dns || applied.hosts != configuration.hosts
                || applied.profile.storeFakeIP != configuration.profile.storeFakeIP
            {
                return (.restartRequired, "dns section changed")
            }
            if applied.limits.dnsMaxInFlight != configuration.limits.dnsMaxInFlight {
                return (.restartRequired, "limits.dns-max-in-flight changed")
            }
            return (.applied, summary)
        }
        applied = configuration
        let dns = configuration.dns
        guard dns.enable else { return (.applied, summary) }
        do {
            try start(configuration)
        } catch {
            logger.error("cannot start the DNS server: \(error)")
            return (.rejected, "\(error)")
        }
        return (.applied, summary)
    }

    private func start(_ configuration: SluiceConfiguration) throws {
        let dns = configuration.dns
        var handed: [CInt: OwnedDescriptor] = [:]
        if let fd = descriptor("SLUICE_DNS_UPSTREAM4_FD") { handed[AF_INET] = fd }
        if let fd = descriptor("SLUICE_DNS_UPSTREAM6_FD") { handed[AF_INET6] = fd }
        let marked = !handed.isEmpty
        let sockets = try UDPUpstreamSockets(handed: handed)
        self.sockets = sockets
        let systemHosts =
            dns.useSystemHosts
            ? HostsTable.parseSystemHosts((try? String(contentsOfFile: "/etc/hosts", encoding: .utf8)) ?? "") : []
        let storePath = environment["SLUICE_STATE_DIRECTORY"].map { "\($0)/fake-ip.store" }
        if dns.enhancedMode == .fakeIP, configuration.profile.storeFakeIP, storePath == nil {
            logger.warning("no state directory: the fake-ip mapping is not persisted and changes on every restart")
        }
        let server = DNSServer(
            configuration, sockets: sockets, storePath: storePath, systemHosts: systemHosts, logger: logger)
        self.server = server
        if server.main.transports.isEmpty {
            logger.warning(
                "no usable nameserver: names that need a real answer get SERVFAIL; add dns.nameserver entries such as udp://1.1.1.1"
            )
        }
        threads.append(try OSThread.start(name: "dns-upstream") { sockets.run() })
        threads.append(
            try OSThread.start(name: "dns-upkeep") { [self] in
                while !stopping.load(ordering: .relaxed) {
                    for _ in 0..<10 where !stopping.load(ordering: .relaxed) { usleep(100_000) }
                    server.maintain()
                }
                server.maintain()
            })
        try openListeners(dns)
        if let channel = peer.withLock({ $0 }) { connectTun(channel, server: server) }

        var parts = ["\(dns.enhancedMode.rawValue)"]
        if let pool = dns.enhancedMode == .fakeIP ? dns.fakeIPRange : nil { parts.append("pool \(pool.network)") }
        if let listen = dns.listen { parts.append("listening on \(listen)") }
        parts.append("upstreams " + (server.main.transports.isEmpty ? "none" : server.main.description))
        if marked { parts.append("upstream UDP marked") }
        summary = "dns " + parts.joined(separator: ", ")
        logger.info("\(summary)")
    }

    private func descriptor(_ variable: String) -> OwnedDescriptor? {
        environment[variable].flatMap(Int32.init).map { OwnedDescriptor(takingOwnershipOfDescriptor: $0) }
    }

    /// `dns.listen`: the sockets sluiced handed over, or (run unprivileged, or on its own)
    /// bound here.
    private func openListeners(_ dns: DNSConfiguration) throws {
        listenUDP = descriptor("SLUICE_DNS_UDP_FD")
        listenTCP = descriptor("SLUICE_DNS_TCP_FD")
        if listenUDP == nil, let listen = dns.listen, case .address(let ip) = listen.host {
            let endpoint = InetEndpoint(ip, listen.port)
            do {
                let (udp, tcp) = try InetSocket.serverPair(endpoint)
                listenUDP = udp
                listenTCP = tcp
            } catch {
                throw SystemError(
                    "dns.listen \(endpoint): \(error.errno == EACCES ? "ports below 1024 need sluiced to bind them (run it as root)" : "\(error)")",
                    errno: error.errno)
            }
        }
        if let udp = listenUDP {
            try Descriptors.setNonBlocking(udp.rawValue)
            threads.append(try OSThread.start(name: "dns-listen-udp") { [self] in serveUDP(udp.rawValue) })
        }
        if let tcp = listenTCP {
            try Descriptors.setNonBlocking(tcp.rawValue)
            threads.append(try OSThread.start(name: "dns-listen-tcp") { [self] in acceptTCP(tcp.rawValue) })
        }
    }

    package var readyDetail: String { summary }

    package var isHealthy: Bool { threads.allSatisfy { !$0.hasExited } }

    package var problems: [String] { server?.problems ?? [] }

    package func stats() -> [StatsReport.Entry] {
        guard let server else { return [] }
        return [
            .init("dns.queries", Int64(server.queries.load(ordering: .relaxed))),
            .init("dns.fake.answers", Int64(server.fakeAnswers.load(ordering: .relaxed))),
            .init("dns.fake.mappings", Int64(server.fakeIPCount)),
            .init("dns.cache.hits", Int64(server.cacheHits.load(ordering: .relaxed))),
            .init("dns.cache.entries", Int64(server.cacheCount)),
            .init("dns.upstream.queries", Int64(server.upstreamQueries.load(ordering: .relaxed))),
            .init("dns.upstream.timeouts", Int64(sockets?.timedOut.load(ordering: .relaxed) ?? 0)),
            .init("dns.upstream.resent", Int64(sockets?.resent.load(ordering: .relaxed) ?? 0)),
            .init("dns.malformed", Int64(server.malformed.load(ordering: .relaxed))),
            .init("dns.failures", Int64(server.failures.load(ordering: .relaxed))),
            .init("dns.limit.servfail", Int64(server.refusedInFlight.load(ordering: .relaxed))),
        ]
    }

    // MARK: dns.listen

    private func serveUDP(_ fd: CInt) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        defer { buffer.deallocate() }
        guard let server else { return }
        while !stopping.load(ordering: .relaxed) {
            guard let (n, client) = try? InetSocket.receive(fd, into: buffer) else {
                _ = try? Descriptors.waitReadable(fd, timeoutMilliseconds: 500)
                continue
            }
            server.handle(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), udp: true, from: "udp client \(client)") {
                answer in
                _ = answer.withUnsafeBytes { try? InetSocket.send(fd, $0, to: client) }
            }
        }
    }

    private func acceptTCP(_ fd: CInt) {
        guard let server else { return }
        while !stopping.load(ordering: .relaxed) {
            guard tcpClients.load(ordering: .relaxed) < Self.maxTCPClients else {
                // Full: the pending connections wait in the backlog. (Waiting for readability here
                // would return at once while one is pending, and spin.)
                usleep(50_000)
                continue
            }
            guard let (client, peer) = (try? InetSocket.accept(fd)) ?? nil else {
                _ = try? Descriptors.waitReadable(fd, timeoutMilliseconds: 500)
                continue
            }
            tcpClients.add(1, ordering: .relaxed)
            do {
                try OSThread.detached(name: "dns-tcp-client") { [self] in
                    serveTCP(client, peer: peer, server: server)
                    tcpClients.subtract(1, ordering: .relaxed)
                }
            } catch {
                tcpClients.subtract(1, ordering: .relaxed)
                client.close()
            }
        }
    }

    /// One TCP client: length-prefixed messages (RFC 1035 4.2.2), answered as they come
    /// (pipelined queries may be answered out of order, RFC 7766 6.2.1.1).
    private func serveTCP(_ client: OwnedDescriptor, peer: InetEndpoint, server: DNSServer) {
        let fd = client.rawValue
        let writer = Locked(())
        var buffer: [UInt8] = []
        while !stopping.load(ordering: .relaxed) {
            guard (try? Descriptors.waitReadable(fd, timeoutMilliseconds: Self.tcpIdleMilliseconds)) == true,
                let chunk = try? Descriptors.read(fd, maxBytes: 65537), !chunk.isEmpty
            else { break }
            buffer += chunk
            while buffer.count >= 2 {
                let length = Int(buffer[0]) << 8 | Int(buffer[1])
                guard buffer.count >= 2 + length else { break }
                let message = Array(buffer[2..<(2 + length)])
                buffer.removeFirst(2 + length)
                message.withUnsafeBytes { raw in
                    server.handle(raw, udp: false, from: "tcp client \(peer)") { answer in
                        let framed = [UInt8(answer.count >> 8), UInt8(answer.count & 0xFF)] + answer
                        writer.withLock { _ in _ = try? Descriptors.writeAll(fd, framed) }
                    }
                }
            }
        }
        // Answers still in flight write to a closed descriptor number only after close;
        // keep the descriptor open until they have had their chance.
        Thread.sleep(forTimeInterval: 0.05)
        writer.withLock { _ in client.close() }
    }

    // MARK: The tun worker

    /// The tun worker's channel: hijacked queries, lookups, pins and resolutions arrive on
    /// it; answers and mapping events go back.
    package func peerConnected(_ peer: PeerChannel, channel: FrameChannel) {
        guard peer.peer == .tunWorker else { return }
        let old = self.peer.withLock { current in
            defer { current = channel }
            return current
        }
        old?.close()
        if let server { connectTun(channel, server: server) }
        readers.removeAll { reader in
            guard reader.hasExited else { return false }
            reader.join()
            return true
        }
        let logger = self.logger
        if let reader = try? OSThread.start(
            name: "dns-peer",
            { [self] in
                while true {
                    let received: ReceivedFrame?
                    do throws(IPCError) {
                        received = try channel.receive(timeoutMilliseconds: -1)
                    } catch {
                        if error.code != .peerClosed { logger.warning("tun peer channel: \(error)") }
                        self.peer.withLock { if $0 === channel { $0 = nil } }
                        return
                    }
                    guard let received, !received.header.isReply else { continue }
                    let message: Message
                    do throws(IPCError) {
                        message = try received.frame.message()
                    } catch {
                        logger.warning("tun peer channel: \(error); frame ignored")
                        continue
                    }
                    serve(message, requestID: received.header.requestID, on: channel)
                }
            })
        {
            readers.append(reader)
        }
    }

    /// The new tun worker's mirror gets every mapping; its predecessor's pins are void.
    private func connectTun(_ channel: FrameChannel, server: DNSServer) {
        let logger = self.logger
        server.setEventSink { [weak self] event in
            do throws(IPCError) {
                try channel.send(.mappingEvent(event))
            } catch {
                logger.warning(
                    "tun peer channel: sending a mapping event failed (\(error)); the tun worker asks when it needs one"
                )
                self?.peer.withLock { if $0 === channel { $0 = nil } }
            }
        }
        let snapshot = server.tunConnected()
        for event in snapshot { try? channel.send(.mappingEvent(event)) }
        if !snapshot.isEmpty { logger.info("sent \(snapshot.count) fake-ip mappings to the tun worker") }
    }

    private func serve(_ message: Message, requestID: UInt32, on channel: FrameChannel) {
        guard let server else {
            if requestID != 0 {
                try? channel.send(
                    .error(ErrorReport(code: .rejected, message: "dns is disabled (dns.enable: false)")),
                    requestID: requestID,
                    isReply: true)
            }
            return
        }
        switch message {
        case .dnsPacket(let query):
            query.message.withUnsafeBytes { raw in
                server.handle(
                    raw, udp: query.transport == .udp,
                    from: "the tun worker (client \(InetEndpoint(query.client, query.clientPort)))"
                ) { reply in
                    var answer = query
                    answer.message = reply
                    try? channel.send(.dnsPacket(answer), requestID: requestID, isReply: true)
                }
            }
        case .fakeIPLookup(let lookup):
            let name = server.name(forFake: lookup.address)
            try? channel.send(
                .fakeIPAnswer(FakeIPAnswer(address: lookup.address, name: name)), requestID: requestID, isReply: true)
        case .fakeIPPin(let pin):
            server.pin(pin.address, pin.pinned)
        case .resolveRequest(let request):
            server.resolveAddresses(request.name, ipv6: request.ipv6) { addresses, error in
                try? channel.send(
                    .resolveAnswer(ResolveAnswer(addresses: addresses, error: error ?? "")), requestID: requestID,
                    isReply: true)
            }
        default:
            if requestID != 0 {
                try? channel.send(
                    .error(
                        ErrorReport(
                            code: .unknownMessageType, message: "\(message.type) is not served by the dns worker")),
                    requestID: requestID, isReply: true)
            }
        }
    }

    /// The external controller's `POST /cache/fakeip/flush` and `POST /cache/dns/flush`. With dns off (no pool,
    /// no cache) there is nothing to empty: zero entries, as mihomo answers without a resolver.
    package func answer(_ request: Message) -> Message? {
        guard case .cacheFlush(let flush) = request else { return nil }
        guard let server else { return .cacheFlushed(entries: 0) }
        switch flush.target {
        case .fakeIP:
            let (removed, problem) = server.flushFakeIPs()
            if let problem {
                return .error(
                    ErrorReport(
                        code: .internalFailure,
                        message:
                            "the fake-ip pool is empty (\(removed) mappings removed), but \(problem): they come back after a restart; check the state directory"
                    ))
            }
            return .cacheFlushed(entries: UInt64(removed))
        case .dnsAnswers:
            return .cacheFlushed(entries: UInt64(server.flushAnswers()))
        }
    }

    /// `/dns/query` of the external controller: sluiced sends a DNS message on the control channel and gets
    /// the answer the tun worker's clients would get (cache, hosts, fake-IP and upstreams alike).
    package func answerLater(_ request: Message, respond: @escaping @Sendable (Message) -> Void) -> Bool {
        guard case .dnsPacket(let query) = request else { return false }
        guard let server else {
            respond(.error(ErrorReport(code: .rejected, message: "dns is disabled (dns.enable: false)")))
            return true
        }
        query.message.withUnsafeBytes { raw in
            server.handle(raw, udp: false, from: "sluiced (the external controller's /dns/query)") { reply in
                var answer = query
                answer.message = reply
                respond(.dnsPacket(answer))
            }
        }
        return true
    }

    package func shutdown(graceMilliseconds: UInt32) {
        stopping.store(true, ordering: .relaxed)
        sockets?.stop()
        server?.setEventSink(nil)
        peer.withLock { $0?.close() }
        for thread in threads + readers { thread.join() }
    }
}
