import Foundation
import IPC
import NIOCore
import NIOHTTP1
import SluiceConfig
import SluiceDNSWire
import SluiceNet
import SluiceSystem

/// The API's logic, shared by every listener and connection: routes, the bridge to sluiced, the log hub and
/// the metrics. Sendable; everything that changes is behind a lock or lives on sluiced's thread.
final class ControllerCore: Sendable {
    let mailbox: ControllerMailbox
    let logs: LogHub
    let metrics: ControllerMetrics
    private let settings: Locked<ControllerConfiguration>
    let version: String

    init(mailbox: ControllerMailbox, settings: ControllerConfiguration, version: String) {
        self.mailbox = mailbox
        self.settings = Locked(settings)
        self.version = version
        self.logs = LogHub(mailbox: mailbox)
        self.metrics = ControllerMetrics()
    }

    var configuration: ControllerConfiguration { settings.withLock { $0 } }

    func update(_ configuration: ControllerConfiguration) { settings.withLock { $0 = configuration } }

    // MARK: Reaching sluiced

    /// sluiced's state, taken on its thread.
    func state(on loop: any EventLoop) -> EventLoopFuture<ControllerState> {
        let promise = loop.makePromise(of: ControllerState.self)
        mailbox.submit { backend in promise.succeed(backend.controllerState()) }
        return promise.futureResult
    }

    /// A worker's answer to `request` (an `error` message when it cannot answer).
    func ask(_ worker: ControllerWorker, _ request: Message, on loop: any EventLoop) -> EventLoopFuture<Message> {
        let promise = loop.makePromise(of: Message.self)
        mailbox.submit { backend in backend.controllerAsk(worker, request) { promise.succeed($0) } }
        return promise.futureResult
    }

    // MARK: Access

    /// Whether `request` may pass: the Bearer secret, or `?token=` on a WebSocket upgrade (browsers cannot set
    /// headers there), compared in constant time.
    func authorized(_ request: APIRequest) -> Bool {
        let secret = configuration.secret
        if secret.isEmpty { return true }
        if let header = request.headers.first(name: "authorization"), header.hasPrefix("Bearer "),
            Self.same(String(header.dropFirst(7)), secret)
        {
            return true
        }
        if request.isWebSocketUpgrade, let token = request.query["token"], Self.same(token, secret) { return true }
        return false
    }

    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return difference == 0
    }

    /// CORS headers for a request from `origin` (mihomo's `external-controller-cors`).
    func corsHeaders(origin: String?, preflight: Bool) -> [(String, String)] {
        let settings = configuration
        guard let origin else { return [] }
        let allowed = settings.allowOrigins.contains("*") || settings.allowOrigins.contains(origin)
        guard allowed else { return [] }
        var headers = [
            ("Access-Control-Allow-Origin", settings.allowOrigins.contains("*") ? "*" : origin), ("Vary", "Origin"),
        ]
        if preflight {
            headers += [
                ("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS"),
                ("Access-Control-Allow-Headers", "Content-Type, Authorization"),
                ("Access-Control-Max-Age", "300"),
            ]
            if settings.allowPrivateNetwork { headers.append(("Access-Control-Allow-Private-Network", "true")) }
        }
        return headers
    }

    // MARK: Routes

    /// Answers an authorized request (streams are started by the caller).
    func route(_ request: APIRequest, on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        let s = request.segments
        let method = request.method
        func done(_ reply: APIReply) -> EventLoopFuture<APIReply> { loop.makeSucceededFuture(reply) }
        switch (method, s.first ?? "", s.count) {
        case (.GET, "", 0):
            return done(.json(.ok, JSON.encode(["hello": "sluice"])))
        case (.GET, "version", 1):
            return done(.json(.ok, JSON.encode(VersionInfo(meta: true, version: version))))
        case (.GET, "configs", 1):
            return state(on: loop).map { .json(.ok, JSON.encode(ClashShapes.configs($0.configuration))) }
        case (.PATCH, "configs", 1):
            return patchConfigs(request, on: loop)
        case (.PUT, "configs", 1):
            return reloadConfigs(request, on: loop)
        case (.GET, "proxies", 1):
            return state(on: loop).map { .json(.ok, JSON.encode(["proxies": ClashShapes.proxies($0)])) }
        case (.GET, "proxies", 2):
            return state(on: loop).map { state in
                guard let info = ClashShapes.proxies(state)[s[1]] else { return .notFound }
                return .json(.ok, JSON.encode(info))
            }
        case (.PUT, "proxies", 2):
            return select(group: s[1], request, on: loop)
        case (.GET, "proxies", 3) where s[2] == "delay":
            return delay(s[1], wholeGroup: false, request, on: loop)
        case (.GET, "group", 1):
            return state(on: loop).map { state in
                let all = ClashShapes.proxies(state)
                let groups =
                    state.configuration.proxyGroups.compactMap { all[$0.name] }
                    + [all[ClashShapes.global]].compactMap { $0 }
                return .json(.ok, JSON.encode(["proxies": groups]))
            }
        case (.GET, "group", 2):
            return state(on: loop).map { state in
                guard let info = ClashShapes.proxies(state)[s[1]], info.all != nil else { return .notFound }
                return .json(.ok, JSON.encode(info))
            }
        case (.GET, "group", 3) where s[2] == "delay":
            return delay(s[1], wholeGroup: true, request, on: loop)
        case (.GET, "rules", 1):
            return state(on: loop).map { .json(.ok, JSON.encode(["rules": ClashShapes.rules($0.configuration)])) }
        case (.GET, "providers", 2) where s[1] == "proxies":
            return state(on: loop).map { .json(.ok, JSON.encode(["providers": ProxyProviderInfo.all($0)])) }
        case (.GET, "providers", 3) where s[1] == "proxies":
            return state(on: loop).map { state in
                guard let info = ProxyProviderInfo.all(state)[s[2]] else { return .notFound }
                return .json(.ok, JSON.encode(info))
            }
        case (.PUT, "providers", 3) where s[1] == "proxies":
            // A compatible provider has nothing to download: mihomo's Update() is a no-op, answered 204.
            return state(on: loop).map { ProxyProviderInfo.all($0)[s[2]] == nil ? .notFound : .noContent }
        case (.GET, "providers", 4) where s[1] == "proxies" && s[3] == "healthcheck":
            return healthCheck(provider: s[2], on: loop)
        case (.GET, "providers", 4) where s[1] == "proxies":
            return state(on: loop).map { state in
                guard let member = ProxyProviderInfo.all(state)[s[2]]?.proxies.first(where: { $0.name == s[3] }) else {
                    return .notFound
                }
                return .json(.ok, JSON.encode(member))
            }
        case (.GET, "providers", 5) where s[1] == "proxies" && s[4] == "healthcheck":
            return state(on: loop).flatMap { state in
                guard ProxyProviderInfo.all(state)[s[2]]?.proxies.contains(where: { $0.name == s[3] }) == true else {
                    return loop.makeSucceededFuture(.notFound)
                }
                return self.delay(s[3], wholeGroup: false, request, on: loop)
            }
        case (.GET, "providers", 2) where s[1] == "rules":
            return state(on: loop).map {
                .json(.ok, JSON.encode(["providers": RuleProviderInfo.all($0.configuration)]))
            }
        case (.GET, "providers", 3) where s[1] == "rules":
            return state(on: loop).map { state in
                guard let info = RuleProviderInfo.all(state.configuration)[s[2]] else { return .notFound }
                return .json(.ok, JSON.encode(info))
            }
        case (.PUT, "providers", 3) where s[1] == "rules":
            return updateRuleProvider(s[2], on: loop)
        case (.GET, "connections", 1):
            return connections(on: loop).map { .json(.ok, $0) }
        case (.DELETE, "connections", 1):
            return close("", on: loop)
        case (.DELETE, "connections", 2):
            return close(s[1], on: loop)
        case (.GET, "traffic", 1):
            return done(.stream(.traffic))
        case (.GET, "memory", 1):
            return done(.stream(.memory))
        case (.GET, "logs", 1):
            guard let priority = LogHub.priority(level: request.query["level"] ?? "info") else {
                return done(.error(.badRequest, "level must be one of debug, info, warning, error, silent"))
            }
            return done(.stream(.logs(priority: priority, structured: request.query["format"] == "structured")))
        case (.GET, "dns", 2) where s[1] == "query":
            return dnsQuery(request, on: loop)
        case (.GET, "metrics", 1):
            return metricsPage(on: loop)
        case (.POST, "cache", 3) where s[1] == "fakeip" && s[2] == "flush":
            return flush(.fakeIP, on: loop)
        case (.POST, "cache", 3) where s[1] == "dns" && s[2] == "flush":
            return flush(.dnsAnswers, on: loop)
        case (.POST, "restart", 1):
            return restart(on: loop)
        default:
            return done(.notFound)
        }
    }

    struct VersionInfo: Encodable {
        var meta: Bool
        var version: String
    }

    struct RuleProviderInfo: Encodable {
        var name: String
        var type = "Rule"
        var vehicleType: String
        var behavior: String
        var format: String
        var ruleCount: Int
        var updatedAt: String

        static func all(_ configuration: SluiceConfiguration) -> [String: RuleProviderInfo] {
            var result: [String: RuleProviderInfo] = [:]
            for provider in configuration.ruleProviders {
                let vehicle: String
                var updated = Date()
                switch provider.source {
                case .file(let path):
                    vehicle = "File"
                    if let modified = Self.modified(path) { updated = modified }
                case .http(_, let path, _):
                    vehicle = "HTTP"
                    if let path, let modified = Self.modified(path) { updated = modified }
                case .inline:
                    vehicle = "Inline"
                }
                result[provider.name] = RuleProviderInfo(
                    name: provider.name, vehicleType: vehicle, behavior: provider.behavior.rawValue.capitalized,
                    format: provider.format.rawValue, ruleCount: provider.contents.count,
                    updatedAt: Timestamp.rfc3339(updated))
            }
            return result
        }

        static func modified(_ path: String) -> Date? {
            (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
        }
    }

    private func patchConfigs(_ request: APIRequest, on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        guard let body = JSON.object(request.body) else { return loop.makeSucceededFuture(.badRequest) }
        var mode: SluiceConfiguration.Mode?
        var level: SluiceConfiguration.LogLevel?
        if let value = body["mode"] {
            guard let text = value as? String, let parsed = SluiceConfiguration.Mode(rawValue: text.lowercased()) else {
                return loop.makeSucceededFuture(.error(.badRequest, "mode must be one of rule, global, direct"))
            }
            mode = parsed
        }
        if let value = body["log-level"] {
            let text = (value as? String)?.lowercased()
            guard let parsed = text.flatMap({ SluiceConfiguration.LogLevel(rawValue: $0 == "warn" ? "warning" : $0) })
            else {
                return loop.makeSucceededFuture(
                    .error(.badRequest, "log-level must be one of debug, info, warning, error, silent"))
            }
            level = parsed
        }
        let promise = loop.makePromise(of: APIReply.self)
        mailbox.submit { [mode, level] backend in
            if mode != nil || level != nil { backend.controllerPatch(mode: mode, logLevel: level) }
            promise.succeed(.noContent)
        }
        return promise.futureResult
    }

    private func reloadConfigs(_ request: APIRequest, on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        var path: String?
        var payload: String?
        if !request.body.isEmpty {
            guard let body = JSON.object(request.body) else { return loop.makeSucceededFuture(.badRequest) }
            path = (body["path"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            payload = (body["payload"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        }
        let promise = loop.makePromise(of: APIReply.self)
        mailbox.submit { [path, payload] backend in
            if let refusal = backend.controllerReload(path: path, payload: payload) {
                promise.succeed(.error(.badRequest, refusal))
            } else {
                promise.succeed(.noContent)
            }
        }
        return promise.futureResult
    }

    /// mihomo's answers: 204 once updated, 404 for an unknown name, 503 with the reason when the update failed.
    private func updateRuleProvider(_ name: String, on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        let promise = loop.makePromise(of: APIReply.self)
        mailbox.submit { backend in
            backend.controllerUpdateRuleProvider(name) { outcome in
                switch outcome {
                case .updated: promise.succeed(.noContent)
                case .notFound: promise.succeed(.notFound)
                case .failed(let reason): promise.succeed(.error(.serviceUnavailable, reason))
                }
            }
        }
        return promise.futureResult
    }

    private func select(group: String, _ request: APIRequest, on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        guard let body = JSON.object(request.body), let member = body["name"] as? String else {
            return loop.makeSucceededFuture(.badRequest)
        }
        return ask(.tun, .select(Select(group: group, member: member)), on: loop).map { answer in
            switch answer {
            case .groupStatus: return .noContent
            case .error(let report)
            where report.message.contains("no proxy group") || report.message.contains("not a group"):
                return .error(.notFound, report.message)
            case .error(let report):
                return .error(.badRequest, report.message)
            default:
                return .error(.internalServerError, "unexpected answer \(answer.type)")
            }
        }
    }

    func delay(_ name: String, wholeGroup: Bool, _ request: APIRequest, on loop: any EventLoop) -> EventLoopFuture<
        APIReply
    > {
        guard let url = request.query["url"], !url.isEmpty, url.hasPrefix("http://") || url.hasPrefix("https://") else {
            return loop.makeSucceededFuture(.error(.badRequest, "url must be an http:// or https:// URL"))
        }
        guard let timeout = request.query["timeout"].flatMap({ UInt32($0) }), timeout > 0, timeout <= 60_000 else {
            return loop.makeSucceededFuture(.error(.badRequest, "timeout must be milliseconds, 1 to 60000"))
        }
        let test = DelayTest(name: name, url: url, timeoutMilliseconds: timeout, wholeGroup: wholeGroup)
        return ask(.tun, .delayTest(test), on: loop).map { answer in
            guard case .delayResult(let result) = answer else {
                if case .error(let report) = answer { return .error(.serviceUnavailable, report.message) }
                return .error(.internalServerError, "unexpected answer \(answer.type)")
            }
            if !result.error.isEmpty {
                return result.error.contains("not found") ? .notFound : .error(.badRequest, result.error)
            }
            if wholeGroup {
                var delays: [String: UInt32] = [:]
                for entry in result.delays where entry.milliseconds > 0 { delays[entry.name] = entry.milliseconds }
                if delays.isEmpty && !result.delays.isEmpty { return .error(.gatewayTimeout, "Timeout") }
                return .json(.ok, JSON.encode(delays))
            }
            guard let first = result.delays.first, first.milliseconds > 0 else {
                return .error(.gatewayTimeout, "Timeout")
            }
            return .json(.ok, JSON.encode(["delay": first.milliseconds]))
        }
    }

    /// The tun worker's connections document with mihomo's `memory` added.
    func connections(on loop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        let memory = state(on: loop).map { MemoryUse.total($0) }
        return ask(.tun, .connectionsRequest, on: loop).and(memory).map { answer, memory in
            var snapshot = ConnectionsSnapshot(uploadTotal: 0, downloadTotal: 0, connections: [])
            if case .connections(let document) = answer,
                let decoded = try? JSONDecoder().decode(ConnectionsSnapshot.self, from: Data(document))
            {
                snapshot = decoded
            }
            return JSON.encode(ConnectionsPage(snapshot: snapshot, memory: memory))
        }
    }

    struct ConnectionsPage: Encodable {
        var snapshot: ConnectionsSnapshot
        var memory: UInt64

        enum CodingKeys: String, CodingKey { case downloadTotal, uploadTotal, connections, memory }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(snapshot.downloadTotal, forKey: .downloadTotal)
            try c.encode(snapshot.uploadTotal, forKey: .uploadTotal)
            try c.encode(snapshot.connections, forKey: .connections)
            try c.encode(memory, forKey: .memory)
        }
    }

    private func close(_ id: String, on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        ask(.tun, .closeConnections(CloseConnections(id: id)), on: loop).map { answer in
            switch answer {
            case .connectionsClosed: return .noContent
            case .error(let report): return .error(.serviceUnavailable, report.message)
            default: return .error(.internalServerError, "unexpected answer \(answer.type)")
            }
        }
    }

    private func dnsQuery(_ request: APIRequest, on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        guard let name = request.query["name"], !name.isEmpty else {
            return loop.makeSucceededFuture(.error(.badRequest, "name is required: /dns/query?name=example.com&type=A"))
        }
        let typeName = (request.query["type"] ?? "A").uppercased()
        guard let type = DNSAnswerInfo.recordType(typeName) else {
            return loop.makeSucceededFuture(
                .error(.badRequest, "type \(typeName) is not a DNS record type (A, AAAA, CNAME, MX, TXT, ...)"))
        }
        guard let question = DNSQuestion(name: name, type: type) else {
            return loop.makeSucceededFuture(.error(.badRequest, "\(name) is not a valid DNS name"))
        }
        let id = UInt16.random(in: 1...UInt16.max)
        let message = DNSQuery(id: id, question: question).wire(id: id)
        let localhost = IPAddress.v4(IPv4Address(127, 0, 0, 1))
        let packet = DNSPacket(
            transport: .tcp, client: localhost, clientPort: 0, server: localhost, serverPort: 53, message: message)
        return ask(.dns, .dnsPacket(packet), on: loop).map { answer in
            switch answer {
            case .dnsPacket(let reply):
                guard let info = DNSAnswerInfo.parse(reply.message) else {
                    return .error(.internalServerError, "the dns worker's answer could not be read")
                }
                return .json(.ok, JSON.encode(info))
            case .error(let report):
                return .error(.serviceUnavailable, report.message)
            default:
                return .error(.internalServerError, "unexpected answer \(answer.type)")
            }
        }
    }

    private func metricsPage(on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        let connections = ask(.tun, .connectionsRequest, on: loop)
        return state(on: loop).and(connections).map { state, answer in
            var snapshot: ConnectionsSnapshot?
            if case .connections(let document) = answer {
                snapshot = try? JSONDecoder().decode(ConnectionsSnapshot.self, from: Data(document))
            }
            self.metrics.update(state, connections: snapshot)
            return .file(self.metrics.render(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
    }
}

/// Resident memory of sluiced and its workers (mihomo's `/memory` `inuse`).
enum MemoryUse {
    static func total(_ state: ControllerState) -> UInt64 { total(pids: state.workers.compactMap(\.pid)) }

    /// sluiced's own resident memory and that of the workers `pids` (read on any thread, from /proc).
    static func total(pids: [Int32]) -> UInt64 {
        ([getpid()] + pids).reduce(0) { $0 + (ProcessStatus.read(pid: $1)?.residentBytes ?? 0) }
    }
}
