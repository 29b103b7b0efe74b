import CSluice
import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluiceOutbounds
import SluiceRouting
import SluiceRules
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

// Routing tables on reload, proxy groups' health checks and the API's delay tests.

extension RunningDataPlane {
    /// Puts a new routing table in place (reload); a new set of proxy groups gets its own
    /// health checks and the old one's stop.
    func install(_ table: RoutingTable) {
        let old = router.install(table)
        if old.groups !== table.groups {
            old.groups?.stop()
            startHealthChecks(table.groups)
        }
    }

    /// Health checks of `groups` on a thread of their own (detached: a check in progress
    /// may take up to its timeout; stopping the groups ends the loop after it).
    func startHealthChecks(_ groups: ProxyGroups?) {
        guard let groups, groups.needsHealthChecks else { return }
        let router = self.router
        let resolver = self.resolver
        do {
            try OSThread.detached(name: "tun-health") {
                groups.runHealthChecks { member, url, timeout in
                    let table = router.current
                    let leaf = groups.contains(member) ? groups.resolve(member, key: "health-check") : member
                    guard let leaf, !table.rejectNames.contains(leaf), let outbound = table.outbounds[leaf] else {
                        return nil
                    }
                    return HealthProbe.measure(outbound, url: url, timeoutMilliseconds: timeout, resolver: resolver)
                }
            }
        } catch {
            logger.error(
                "cannot start proxy-group health checks: \(error); fallback and url-test groups keep their first member"
            )
        }
    }

    /// Bounds the threads one whole-group delay test uses.
    static let delayTestThreads = 16
    /// mihomo's default test URL, for a request without one.
    static let defaultDelayURL = "https://www.gstatic.com/generate_204"

    /// The external controller's delay test (`GET /proxies/:name/delay`, `GET /group/:name/delay`): `name` through
    /// its own outbound (a group: what it resolves to now, as mihomo measures a group), or with `wholeGroup` every
    /// member of the group `name` at once. Answers through `respond` from a detached thread; every measurement is
    /// bounded by the request's timeout. Results feed the groups' health as a check would.
    func delayTest(_ test: DelayTest, respond: @escaping @Sendable (Message) -> Void) {
        let table = router.current
        let groups = table.groups
        let isGroup = groups?.contains(test.name) ?? false
        let builtIns = Set([BuiltinTarget.direct, .reject, .rejectDrop].map(\.rawValue))
        guard
            isGroup || table.outbounds[test.name] != nil || table.rejectNames.contains(test.name)
                || builtIns.contains(test.name)
        else {
            respond(.delayResult(DelayResult(delays: [], error: "proxy \(test.name) not found")))
            return
        }
        if test.wholeGroup && !isGroup {
            respond(.delayResult(DelayResult(delays: [], error: "\(test.name) is not a proxy group")))
            return
        }
        let members = test.wholeGroup ? (groups?.members(of: test.name) ?? []) : [test.name]
        let url = test.url.isEmpty ? Self.defaultDelayURL : test.url
        let timeout = test.timeoutMilliseconds == 0 ? 5000 : Int(min(test.timeoutMilliseconds, 60_000))
        let resolver = self.resolver
        /// One member: the proxy or built-in it resolves to, measured; 0 when it fails (or is REJECT).
        let measure: @Sendable (String) -> (leaf: String?, milliseconds: UInt32) = { member in
            let leaf = groups?.contains(member) == true ? groups?.resolve(member, key: "delay-test") : member
            guard let leaf, !table.rejectNames.contains(leaf), let outbound = table.outbounds[leaf] else {
                return (nil, 0)
            }
            return (
                leaf, HealthProbe.measure(outbound, url: url, timeoutMilliseconds: timeout, resolver: resolver) ?? 0
            )
        }
        let name = test.name
        let wholeGroup = test.wholeGroup
        let logger = self.logger
        do {
            try OSThread.detached(name: "tun-delay") {
                let results: [(leaf: String?, milliseconds: UInt32)] = Self.measureAll(
                    members, threads: Self.delayTestThreads, measure
                ).map { $0 ?? (leaf: nil, milliseconds: 0) }
                if let groups {
                    let now = MonotonicClock.now
                    func latency(_ ms: UInt32) -> UInt32? { ms == 0 ? nil : ms }
                    if wholeGroup {
                        var health: [String: ProxyGroups.Health] = [:]
                        for (member, result) in zip(members, results) {
                            health[member] = ProxyGroups.Health(
                                latencyMilliseconds: latency(result.milliseconds), checkedAt: now)
                        }
                        groups.apply(health, to: name, at: now, isCheck: false)
                    } else if let first = results.first, let leaf = first.leaf {
                        groups.record(leaf, latencyMilliseconds: latency(first.milliseconds), at: now)
                    }
                }
                respond(
                    .delayResult(
                        DelayResult(
                            delays: zip(members, results).map { .init(name: $0, milliseconds: $1.milliseconds) })))
            }
        } catch {
            logger.error("delay test of \(name): cannot start a thread: \(error)")
            respond(.delayResult(DelayResult(delays: [], error: "cannot start the delay test: \(error)")))
        }
    }

    /// `measure` of each of `items`, in their order, on at most `threads` threads at once.
    static func measureAll<Result: Sendable>(
        _ items: [String], threads: Int, _ measure: @escaping @Sendable (String) -> Result
    ) -> [Result?] {
        let next = Locked(0)
        let results = Locked<[Result?]>(Array(repeating: nil, count: items.count))
        let work: @Sendable () -> Void = {
            while true {
                let i = next.withLock { n -> Int in
                    defer { n += 1 }
                    return n
                }
                guard i < items.count else { return }
                let result = measure(items[i])
                results.withLock { $0[i] = result }
            }
        }
        var started: [OSThread] = []
        for _ in 0..<min(threads, items.count) {
            guard let thread = try? OSThread.start(name: "tun-delay", work) else { break }
            started.append(thread)
        }
        // No thread could start: measure here, one after the other.
        if started.isEmpty { work() }
        for thread in started { thread.join() }
        return results.withLock { $0 }
    }
}
