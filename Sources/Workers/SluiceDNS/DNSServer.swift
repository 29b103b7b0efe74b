import IPC
import Logging
import SluiceConfig
import SluiceDNSWire
import SluiceNet
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The dns worker's resolver: answers one parsed query at a time, from `hosts`, the fake-IP
/// pool, the cache or the upstreams, whichever frontend it came from (hijacked from the
/// TUN, `dns.listen` over UDP or TCP).
///
/// Order for a query: malformed → FORMERR; `hosts` (with `use-hosts`) → its addresses;
/// a name that gets a fake address (`enhanced-mode: fake-ip` and `fake-ip-filter`) →
/// A from the pool (TTL 1), AAAA from the IPv6 pool or empty, HTTPS/SVCB empty (their
/// address hints would bypass the fake address); everything else → cache, or the
/// upstream group for the name (`nameserver-policy`, else `nameserver`, else
/// `default-nameserver`), with identical queries in flight sharing one upstream exchange.
/// Real answers in fake-ip and redir-host mode also tell the tun worker which name an
/// address belongs to, so that domain rules apply to connections made to real addresses.
package final class DNSServer: @unchecked Sendable {
    /// The TTL of fake answers: clients ask again soon, so a recycled address is not kept.
    package static let fakeTTL: UInt32 = 1
    /// The TTL of answers from `hosts`.
    package static let hostsTTL: UInt32 = 10
    /// Cached answers at most; beyond it expired entries go, then arbitrary ones.
    package static let cacheLimit = 100_000

    struct CacheKey: Hashable {
        var question: DNSQuestion
        var dnssecOK: Bool
    }

    struct CacheEntry {
        var answer: DNSResponse.Upstream
        var storedAt: UInt64
        var expiresAt: UInt64
    }

    typealias Waiter = @Sendable (Result<(DNSResponse.Upstream, UInt32), DNSExchangeError>) -> Void

    private struct State {
        var pool: FakeIPPool?
        var cache: [CacheKey: CacheEntry] = [:]
        var inflight: [CacheKey: [Waiter]] = [:]
        var store: FakeIPStore?
    }

    package let configuration: DNSConfiguration
    /// Names always answered with real addresses in fake-IP mode: the WireGuard links' peer endpoints.
    let realNames: Set<String>
    private let hosts: HostsTable
    private let useHosts: Bool
    private let policies: [(DomainPattern, DNSUpstreamGroup)]
    package let main: DNSUpstreamGroup
    private let state: Locked<State>
    private let sink = Locked<(@Sendable (MappingEvent) -> Void)?>(nil)
    private let malformedLog: LogBudget
    /// `limits.dns-max-in-flight`: distinct upstream queries in flight at once.
    let maxInFlight: Int
    private let inFlightWarning: LimitWarning
    private let logger: Logger

    let queries = Atomic<UInt64>(0)
    let fakeAnswers = Atomic<UInt64>(0)
    let cacheHits = Atomic<UInt64>(0)
    let upstreamQueries = Atomic<UInt64>(0)
    let malformed = Atomic<UInt64>(0)
    let failures = Atomic<UInt64>(0)
    /// Queries answered SERVFAIL because `maxInFlight` upstream queries were in flight.
    let refusedInFlight = Atomic<UInt64>(0)

    /// - Parameters:
    ///   - storePath: where the fake-IP mapping persists (nil: not persisted).
    ///   - systemHosts: entries of /etc/hosts, used with `use-system-hosts`.
    package init(
        _ configuration: SluiceConfiguration, sockets: UDPUpstreamSockets, factory: UpstreamSocketFactory = .init(),
        storePath: String?, systemHosts: [HostEntry] = [], logger: Logger
    ) {
        let dns = configuration.dns
        self.configuration = dns
        realNames = Set(configuration.wireguardEndpointNames)
        self.logger = logger
        malformedLog = LogBudget(perWindow: 10, windowSeconds: 10, logger: logger, what: "malformed DNS messages")
        maxInFlight = configuration.limits.dnsMaxInFlight
        inFlightWarning = LimitWarning(logger: logger)
        useHosts = dns.useHosts
        hosts = HostsTable(entries: configuration.hosts, system: dns.useSystemHosts ? systemHosts : [])
        main = DNSUpstreamGroup(
            dns.nameserver.isEmpty ? dns.defaultNameserver : dns.nameserver, sockets: sockets, factory: factory)
        policies = dns.nameserverPolicy.map {
            ($0.pattern, DNSUpstreamGroup($0.upstreams, sockets: sockets, factory: factory))
        }
        var state = State()
        if dns.enhancedMode == .fakeIP {
            let ranges = dns.fakeIPRanges
            var pool = FakeIPPool(range4: ranges[0], range6: ranges.count > 1 ? ranges[1] : nil)
            if let storePath, configuration.profile.storeFakeIP {
                let store = FakeIPStore(path: storePath, logger: logger)
                let report = store.load(into: &pool)
                if let problem = report.problem { logger.error("\(problem)") }
                if report.outOfRange > 0 {
                    logger.notice(
                        "fake-ip store: \(report.outOfRange) mappings lay outside the configured range and were dropped"
                    )
                }
                logger.info(
                    "fake-ip store \(storePath): \(pool.count) mappings restored from \(report.records) records")
                state.store = store
            }
            state.pool = pool
        }
        self.state = Locked(state)
    }

    /// Where mapping events go (the tun worker's channel); nil while it is not connected.
    package func setEventSink(_ sink: (@Sendable (MappingEvent) -> Void)?) {
        self.sink.withLock { $0 = sink }
    }

    // MARK: Queries

    /// Answers one DNS message; `reply` runs once with the answer, or never for a message
    /// that is dropped (too short, or a response). `udp` selects truncation to the client's
    /// size.
    /// `source` names the sender in the log (a client endpoint, "the tun worker").
    package func handle(
        _ message: UnsafeRawBufferPointer, udp: Bool, from source: @autoclosure () -> String = "a client",
        reply: @escaping @Sendable ([UInt8]) -> Void
    ) {
        queries.add(1, ordering: .relaxed)
        switch DNSQuery.parse(message) {
        case .failure(let error):
            malformed.add(1, ordering: .relaxed)
            let answer = DNSResponse.error(answering: message, error)
            if malformedLog.admit() {
                logger.notice(
                    "malformed DNS message (\(message.count) bytes) from \(source()): \(error.reason); \(answer == nil ? "dropped" : "answered with rcode \(error.responseCode)")"
                )
            }
            if let answer { reply(answer) }
        case .success(let query):
            answer(query, udp: udp, reply: reply)
        }
    }

    private func answer(_ query: DNSQuery, udp: Bool, reply: @escaping @Sendable ([UInt8]) -> Void) {
        let question = query.question
        let type = question.type
        let isAddress = type == DNSMessage.RecordType.a || type == DNSMessage.RecordType.aaaa
        let name = question.name
        if question.qclass == DNSMessage.classIN, isAddress, useHosts, let value = hosts.lookup(name) {
            answerFromHosts(query, value, udp: udp, reply: reply)
            return
        }
        if type == DNSMessage.RecordType.aaaa && !configuration.ipv6 {
            reply(DNSResponse.build(for: query))
            return
        }
        if question.qclass == DNSMessage.classIN, wantsFakeAddress(question) {
            switch type {
            case DNSMessage.RecordType.a, DNSMessage.RecordType.aaaa:
                guard let address = fakeAddress(for: name, ipv6: type == DNSMessage.RecordType.aaaa) else {
                    failures.add(1, ordering: .relaxed)
                    logger.warning("fake-ip pool: every address is held by a live connection; \(name) gets SERVFAIL")
                    reply(DNSResponse.build(for: query, rcode: UInt16(DNSMessage.ResponseCode.serverFailure)))
                    return
                }
                fakeAnswers.add(1, ordering: .relaxed)
                reply(DNSResponse.build(for: query, answers: [.init(address: address, ttl: Self.fakeTTL)]))
                return
            case DNSMessage.RecordType.https, DNSMessage.RecordType.svcb:
                reply(DNSResponse.build(for: query))
                return
            default:
                break
            }
        }
        lookup(query) { result in
            switch result {
            case .success(let (answer, age)):
                reply(DNSResponse.adapt(answer, for: query, age: age, udp: udp))
            case .failure:
                reply(DNSResponse.build(for: query, rcode: UInt16(DNSMessage.ResponseCode.serverFailure)))
            }
        }
    }

    private func answerFromHosts(
        _ query: DNSQuery, _ value: HostEntry.Value, udp: Bool, reply: @escaping @Sendable ([UInt8]) -> Void
    ) {
        let ipv6 = query.question.type == DNSMessage.RecordType.aaaa
        switch value {
        case .addresses(let addresses):
            let records = addresses.filter { $0.isIPv4 != ipv6 }.map {
                DNSResponse.Record(address: $0, ttl: Self.hostsTTL)
            }
            reply(DNSResponse.build(for: query, answers: records))
        case .alias(let target):
            resolveAddresses(target, ipv6: ipv6, depth: 1) { addresses, _ in
                let records = addresses.filter { $0.isIPv4 != ipv6 }.map {
                    DNSResponse.Record(address: $0, ttl: Self.hostsTTL)
                }
                reply(DNSResponse.build(for: query, answers: records))
            }
        }
    }

    /// Whether `question` is answered from the fake-IP pool.
    func wantsFakeAddress(_ question: DNSQuestion) -> Bool {
        guard configuration.enhancedMode == .fakeIP, question.isHostName else { return false }
        let name = question.name
        if realNames.contains(name.lowercased()) { return false }
        return configuration.fakeIPFilterWantsFake(name)
    }

    /// The pool's address for `name`, recording a new mapping in the store before the
    /// answer can leave, and telling the tun worker (a recycled address first).
    package func fakeAddress(for name: String, ipv6: Bool) -> IPAddress? {
        state.withLock { s -> IPAddress? in
            guard let result = s.pool?.address(for: name, ipv6: ipv6) else { return nil }
            if result.isNew {
                s.store?.append(result.address, name: name)
                if let sink = sink.withLock({ $0 }) {
                    if let old = result.recycled {
                        sink(MappingEvent(kind: .released, address: old.address, name: old.name))
                    }
                    sink(MappingEvent(kind: .assigned, address: result.address, name: name))
                }
            }
            return result.address
        }
    }

    /// The cache, or one upstream exchange shared by every identical query in flight.
    /// `completion` gets the answer and its age in seconds.
    func lookup(_ query: DNSQuery, completion: @escaping Waiter) {
        let key = CacheKey(question: query.question.key, dnssecOK: query.edns?.dnssecOK ?? false)
        let now = MonotonicClock.now
        enum Step {
            case hit(DNSResponse.Upstream, UInt32)
            case joined, send, full
        }
        let step = state.withLock { s -> Step in
            if let entry = s.cache[key] {
                if entry.expiresAt > now { return .hit(entry.answer, UInt32((now - entry.storedAt) / 1_000_000_000)) }
                s.cache[key] = nil
            }
            if s.inflight[key] != nil {
                s.inflight[key]!.append(completion)
                return .joined
            }
            // Beyond the bound a new question fails at once: an upstream that stopped answering
            // must not pile up waiters (memory, sockets' ID space) for 4 s each.
            guard s.inflight.count < maxInFlight else { return .full }
            s.inflight[key] = [completion]
            return .send
        }
        switch step {
        case .hit(let answer, let age):
            cacheHits.add(1, ordering: .relaxed)
            completion(.success((answer, age)))
            return
        case .joined:
            return
        case .full:
            refusedInFlight.add(1, ordering: .relaxed)
            failures.add(1, ordering: .relaxed)
            let limit = maxInFlight
            inFlightWarning.hit { n in
                "\(query.question.name): SERVFAIL: limits.dns-max-in-flight (\(limit)) upstream queries are in flight (\(n) queries answered SERVFAIL since the last line); the upstreams are slow or not answering, or raise limits.dns-max-in-flight"
            }
            completion(.failure(DNSExchangeError("limits.dns-max-in-flight (\(limit)) upstream queries in flight")))
            return
        case .send:
            break
        }
        upstreamQueries.add(1, ordering: .relaxed)
        let minimum = UInt32(configuration.cacheMinTTL)
        let maximum = UInt32(configuration.cacheMaxTTL)
        group(for: query.question.name).resolve(query) { [self] raw in
            let now = MonotonicClock.now
            // Clients are told the TTL the cache keeps (answers that are not cached, such
            // as SERVFAIL, are passed on as they came).
            let result = raw.map { answer in
                answer.cacheTTL(minimum: minimum, maximum: maximum) == nil
                    ? answer : answer.clampingTTLs(minimum: minimum, maximum: maximum)
            }
            let waiters = state.withLock { s -> [Waiter] in
                if case .success(let answer) = result, let ttl = answer.cacheTTL(minimum: minimum, maximum: maximum),
                    ttl > 0
                {
                    if s.cache.count >= Self.cacheLimit { Self.evict(&s.cache, now: now) }
                    s.cache[key] = CacheEntry(
                        answer: answer, storedAt: now, expiresAt: now + UInt64(ttl) * 1_000_000_000)
                }
                return s.inflight.removeValue(forKey: key) ?? []
            }
            switch result {
            case .success(let answer):
                if configuration.enhancedMode != .normal, !answer.addresses.isEmpty, query.question.isHostName,
                    let sink = sink.withLock({ $0 })
                {
                    let name = query.question.name
                    for address in answer.addresses {
                        sink(MappingEvent(kind: .assigned, address: address, name: name))
                    }
                }
            case .failure(let error):
                failures.add(1, ordering: .relaxed)
                logger.info("\(query.question.name): \(error)")
            }
            for waiter in waiters { waiter(result.map { ($0, 0) }) }
        }
    }

    private static func evict(_ cache: inout [CacheKey: CacheEntry], now: UInt64) {
        cache = cache.filter { $0.value.expiresAt > now }
        if cache.count >= cacheLimit {
            for key in cache.keys.prefix(cacheLimit / 4) { cache[key] = nil }
        }
    }

    /// The upstreams for `name`: the first matching `nameserver-policy`, else the default.
    func group(for name: String) -> DNSUpstreamGroup {
        policies.first { $0.0.matches(name) }?.1 ?? main
    }

    // MARK: For the tun worker

    /// Real addresses of `name` (hosts, cache, upstream; never fake ones), for DIRECT
    /// connections to a fake address. IPv4 first; IPv6 when asked or when there is no A.
    package func resolveAddresses(
        _ name: String, ipv6: Bool = false, depth: Int = 0,
        completion: @escaping @Sendable ([IPAddress], String?) -> Void
    ) {
        let lowered = name.lowercased()
        if useHosts, let value = hosts.lookup(lowered) {
            switch value {
            case .addresses(let addresses):
                completion(addresses, nil)
            case .alias(let target) where depth < 4:
                resolveAddresses(target, ipv6: ipv6, depth: depth + 1, completion: completion)
            case .alias:
                completion([], "hosts aliases for \(name) nest too deep")
            }
            return
        }
        let first = ipv6 && configuration.ipv6 ? DNSMessage.RecordType.aaaa : DNSMessage.RecordType.a
        guard let question = DNSQuestion(name: lowered, type: first) else {
            completion([], "\(name) is not a valid name")
            return
        }
        lookup(DNSQuery(id: 0, question: question)) { [self] result in
            switch result {
            case .success(let (answer, _)) where !answer.addresses.isEmpty:
                completion(answer.addresses, nil)
            case .success(let (answer, _)) where first == DNSMessage.RecordType.a && configuration.ipv6:
                _ = answer
                var again = question
                again.type = DNSMessage.RecordType.aaaa
                lookup(DNSQuery(id: 0, question: again)) { second in
                    if case .success(let (answer, _)) = second, !answer.addresses.isEmpty {
                        completion(answer.addresses, nil)
                    } else {
                        completion([], "\(name) has no address")
                    }
                }
            case .success(let (answer, _)):
                completion(
                    [],
                    answer.rcode == DNSMessage.ResponseCode.nameError
                        ? "\(name) does not exist" : "\(name) has no address")
            case .failure(let error):
                completion([], "\(error)")
            }
        }
    }

    /// The name a fake address stands for (nil: not mapped or not fake).
    package func name(forFake address: IPAddress) -> String? {
        state.withLock { $0.pool?.name(for: address) }
    }

    package func pin(_ address: IPAddress, _ pinned: Bool) {
        state.withLock { $0.pool?.pin(address, pinned) }
    }

    /// A new tun worker connected: the old one's pins are void, and it gets every mapping.
    package func tunConnected() -> [MappingEvent] {
        state.withLock { s in
            s.pool?.clearPins()
            return (s.pool?.mappings ?? []).map { MappingEvent(kind: .assigned, address: $0.address, name: $0.name) }
        }
    }

    // MARK: Flushing (the external controller's `POST /cache/...`)

    /// `POST /cache/fakeip/flush`: forgets every fake-IP mapping, in the pool and in the store file, as mihomo
    /// empties its pool and cache file. New names get addresses not handed out before (``FakeIPPool/removeAll()``);
    /// connections already open keep their name and their pins. The tun worker hears `released` for each mapping,
    /// so its mirror forgets them: a connection to an old address is refused and the client asks again.
    /// - Returns: how many mappings were removed, and what went wrong with the store (the pool is empty anyway,
    ///   but the store's mappings would come back after a restart).
    package func flushFakeIPs() -> (removed: Int, problem: String?) {
        let (removed, problem) = state.withLock { s -> ([(address: IPAddress, name: String)], String?) in
            guard s.pool != nil else { return ([], nil) }
            let problem = s.store?.removeAll()
            return (s.pool!.removeAll(), problem)
        }
        // Outside the lock: a name asked meanwhile gets an address none of these had, and the tun worker drops
        // a mirrored name only when it is still the one released, so the order does not matter.
        if let sink = sink.withLock({ $0 }) {
            for mapping in removed { sink(MappingEvent(kind: .released, address: mapping.address, name: mapping.name)) }
        }
        logger.notice(
            "fake-ip pool flushed: \(removed.count) mappings removed\(problem.map { "; but \($0)" } ?? "")")
        return (removed.count, problem)
    }

    /// `POST /cache/dns/flush`: forgets every cached upstream answer (questions in flight still complete and are
    /// cached). Returns how many answers were removed.
    package func flushAnswers() -> Int {
        let removed = state.withLock { s -> Int in
            defer { s.cache.removeAll() }
            return s.cache.count
        }
        logger.notice("dns cache flushed: \(removed) answers removed")
        return removed
    }

    package var fakeIPCount: Int { state.withLock { $0.pool?.count ?? 0 } }
    package var cacheCount: Int { state.withLock { $0.cache.count } }
    /// What breaks a promise right now: the fake-IP store cannot be read or written.
    package var problems: [String] { state.withLock { $0.store?.problem.map { [$0] } ?? [] } }

    /// Periodic upkeep (about once a second): flush the store, compact it when it has grown.
    package func maintain() {
        state.withLock { s in
            guard let store = s.store, let pool = s.pool else { return }
            if store.wantsCompaction(liveMappings: pool.count) { store.compact(pool) } else { store.sync() }
        }
    }
}
