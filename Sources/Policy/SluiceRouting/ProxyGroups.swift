import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceSystem
import Synchronization

/// The live state of `proxy-groups`: which member each group uses now, and why.
///
/// - `select`: the member chosen with `sluiced select GROUP MEMBER` (persisted under the
///   state directory with `profile.store-selected`), else the first.
/// - `fallback`: the first member in order whose last health check passed (or that was
///   not checked yet); when none is up, the first.
/// - `url-test`: the member with the lowest measured latency; the group switches only when
///   another member is faster by more than `tolerance` ms (or the current one is down).
/// - `load-balance`: `consistent-hashing` spreads destinations over the members that are
///   up with rendezvous hashing (a destination stays on its member while that member is
///   up; when one goes down only its destinations move); `round-robin` takes turns;
///   `sticky-sessions` hashes source and destination together.
///
/// A member may be another group; resolution follows groups down to a proxy or a
/// built-in (DIRECT, REJECT, REJECT-DROP, COMPATIBLE, PASS), refusing cycles.
///
/// Fail closed: a group that can carry nothing (no members, or only unavailable groups and
/// `PASS`; ``SluiceConfig/ProxyGroup/unavailableGroups(_:)``) resolves to `REJECT`, never to
/// `DIRECT` as mihomo's `COMPATIBLE` fallback would; other groups pass over such members. Health checks run on one thread
/// through a probe the tun worker supplies (a request to `url` through the member).
package final class ProxyGroups: @unchecked Sendable {
    /// What health checks found for one member.
    package struct Health: Sendable, Equatable {
        /// Round-trip time of the last check in milliseconds; nil when it failed.
        package var latencyMilliseconds: UInt32?
        /// MonotonicClock time of the check.
        package var checkedAt: UInt64

        package init(latencyMilliseconds: UInt32?, checkedAt: UInt64 = MonotonicClock.now) {
            self.latencyMilliseconds = latencyMilliseconds
            self.checkedAt = checkedAt
        }
    }

    /// Why a selection was refused.
    package struct SelectionError: Error, CustomStringConvertible {
        package var description: String
    }

    private struct Group {
        package var config: ProxyGroup
        /// The members that can carry a connection (not PASS, not an unavailable group), worked out once: routing
        /// a connection must not build this list again.
        package var usable: [String]
        package var selected: String
        package var health: [String: Health] = [:]
        package var lastUsed: UInt64 = 0
        package var lastChecked: UInt64 = 0
        package var roundRobin = 0
    }

    private let state: Locked<[String: Group]>
    private let order: [String]
    /// The `proxy-groups` section this state was made from (a reload with the same section
    /// keeps the state, health included).
    package let configuration: [ProxyGroup]
    /// The groups that resolve to `REJECT` because nothing in them can carry a connection, with why.
    package let unavailable: [String: String]
    private let storePath: String?
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    /// Bumped whenever any group's choice may have changed; cached routes compare it.
    package let generation = Atomic<UInt64>(0)

    /// - Parameter storePath: where `select` choices persist (nil: not persisted).
    package init(_ groups: [ProxyGroup], storePath: String?, logger: Logger) {
        self.storePath = storePath
        self.logger = logger
        configuration = groups
        order = groups.map(\.name)
        let stored = storePath.flatMap { Self.load($0, logger: logger) } ?? [:]
        let unavailable = ProxyGroup.unavailableGroups(groups)
        self.unavailable = unavailable
        var state: [String: Group] = [:]
        for group in groups {
            let first = group.members.first { Self.isUsable($0, unavailable) } ?? BuiltinTarget.reject.rawValue
            let choice = stored[group.name].flatMap { group.members.contains($0) ? $0 : nil }
            state[group.name] = Group(
                config: group, usable: group.members.filter { Self.isUsable($0, unavailable) },
                selected: group.kind == .select ? (choice ?? first) : first)
        }
        self.state = Locked(state)
    }

    package var isEmpty: Bool { order.isEmpty }

    package func contains(_ name: String) -> Bool { state.withLock { $0[name] != nil } }

    /// One line per unavailable group, in config order, for the worker's `problems`.
    package var problems: [String] {
        order.compactMap { name in
            unavailable[name].map { "group \(name) is unavailable (\($0)); its traffic is rejected" }
        }
    }

    /// Whether `member` can carry a connection: not `PASS` (sluice cannot continue matching from a group) and not
    /// an unavailable group.
    private static func isUsable(_ member: String, _ unavailable: [String: String]) -> Bool {
        member != ProxyGroup.pass && unavailable[member] == nil
    }

    /// The proxy or built-in a connection to `target` uses: `target` itself when it is not
    /// a group. `key` identifies the destination (host or address) for load balancing;
    /// `source` the client for sticky sessions. Nil for a cycle of groups.
    package func resolve(_ target: String, key: String, source: String = "") -> String? {
        resolvePath(target, key: key, source: source)?.last
    }

    /// Like ``resolve(_:key:source:)``, with the way there: `target`, each group it led through, and the proxy or
    /// built-in last (`["Final", "Proxy", "ss1"]`; `[target]` when it is not a group). Nil for a cycle of groups.
    /// An unavailable group leads to `REJECT` (`["Final", "Empty", "REJECT"]`).
    package func resolvePath(_ target: String, key: String, source: String = "") -> [String]? {
        state.withLock { groups in
            var path = [target]
            var seen: Set<String> = []
            let now = MonotonicClock.now
            while groups[path[path.count - 1]] != nil {
                let name = path[path.count - 1]
                guard seen.insert(name).inserted else { return nil }
                groups[name]!.lastUsed = now
                if unavailable[name] != nil {
                    path.append(BuiltinTarget.reject.rawValue)
                    break
                }
                path.append(Self.current(&groups[name]!, key: key, source: source))
            }
            return path
        }
    }

    /// The members of group `name`, in config order; nil when there is no such group.
    package func members(of name: String) -> [String]? { state.withLock { $0[name]?.config.members } }

    private static func current(_ group: inout Group, key: String, source: String) -> String {
        let members = group.usable
        func isUp(_ member: String) -> Bool { group.health[member].map { $0.latencyMilliseconds != nil } ?? true }
        switch group.config.kind {
        case .select:
            return group.selected
        case .fallback:
            return members.first(where: isUp) ?? members.first ?? BuiltinTarget.reject.rawValue
        case .urlTest:
            return group.selected
        case .loadBalance:
            let up = members.filter(isUp)
            let candidates = up.isEmpty ? members : up
            guard !candidates.isEmpty else { return BuiltinTarget.reject.rawValue }
            switch group.config.strategy {
            case .roundRobin:
                group.roundRobin = (group.roundRobin + 1) % candidates.count
                return candidates[group.roundRobin]
            case .consistentHashing:
                return candidates.max { fnv(key + "|" + $0) < fnv(key + "|" + $1) }!
            case .stickySessions:
                return candidates.max { fnv(source + "|" + key + "|" + $0) < fnv(source + "|" + key + "|" + $1) }!
            }
        }
    }

    package static func fnv(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0100_0000_01B3
        }
        // FNV's low bits mix poorly for short inputs; finish like SplitMix64.
        hash = (hash ^ (hash >> 30)) &* 0xBF58_476D_1CE4_E5B9
        hash = (hash ^ (hash >> 27)) &* 0x94D0_49BB_1331_11EB
        return hash ^ (hash >> 31)
    }

    /// `sluiced select GROUP MEMBER`: only `select` groups take a choice.
    package func select(_ groupName: String, _ member: String) throws(SelectionError) {
        let choices: [String: String] = try state.withLock { groups throws(SelectionError) in
            guard let group = groups[groupName] else {
                throw SelectionError(
                    description: "no proxy group named \"\(groupName)\"; groups: \(order.joined(separator: ", "))")
            }
            guard group.config.kind == .select else {
                throw SelectionError(
                    description:
                        "\"\(groupName)\" is a \(group.config.kind.rawValue) group, which picks its member itself; only select groups take a choice"
                )
            }
            guard group.config.members.contains(member) else {
                throw SelectionError(
                    description:
                        "\"\(member)\" is not a member of \"\(groupName)\"; members: \(group.config.members.joined(separator: ", "))"
                )
            }
            groups[groupName]!.selected = member
            return groups.filter { $0.value.config.kind == .select }.mapValues(\.selected)
        }
        generation.add(1, ordering: .relaxed)
        logger.notice("proxy group \(groupName): now \(member) (selected)")
        if let storePath { Self.store(choices, at: storePath, logger: logger) }
    }

    /// Every group, in config order (the `groupStatus` document).
    package var status: [GroupState] {
        let clock = MonotonicClock.now
        return state.withLock { groups in
            order.compactMap { name in
                guard var group = groups[name] else { return nil }
                let reason = unavailable[name]
                let now =
                    reason != nil
                    ? BuiltinTarget.reject.rawValue
                    : group.config.kind == .loadBalance
                        ? "(per destination)" : Self.current(&group, key: "", source: "")
                return GroupState(
                    name: name, kind: group.config.kind.rawValue, now: now, members: group.config.members,
                    unavailable: reason,
                    health: group.health.mapValues {
                        GroupState.Health(
                            latencyMilliseconds: $0.latencyMilliseconds,
                            secondsAgo: Double(MonotonicClock.elapsed(from: $0.checkedAt, to: clock)) / 1e9)
                    })
            }
        }
    }

    // MARK: Health checks

    /// Whether any group checks health (fallback, url-test and load-balance with an interval).
    package var needsHealthChecks: Bool {
        state.withLock { $0.values.contains { $0.config.kind != .select && $0.config.interval > 0 } }
    }

    /// Checks members until ``stop()``: each group when its `interval` is due (lazy groups
    /// only after use since their last check, but always once at start). `probe` measures
    /// one member against the group's `url` within its timeout, returning milliseconds, or
    /// nil when the member does not work.
    package func runHealthChecks(probe: @escaping (String, String, Int) -> UInt32?) {
        while !stopping.load(ordering: .relaxed) {
            let now = MonotonicClock.now
            let due: [(String, ProxyGroup)] = state.withLock { groups in
                groups.values.compactMap { group in
                    let c = group.config
                    guard c.kind != .select, c.interval > 0 else { return nil }
                    let interval = UInt64(c.interval) * 1_000_000_000
                    let first = group.lastChecked == 0
                    guard first || now - group.lastChecked >= interval else { return nil }
                    if c.lazy && !first && group.lastUsed < group.lastChecked { return nil }
                    return (c.name, c)
                }
            }
            for (name, config) in due {
                var results: [String: Health] = [:]
                for member in config.members where !stopping.load(ordering: .relaxed) {
                    results[member] = Health(latencyMilliseconds: probe(member, config.url, config.timeout))
                }
                apply(results, to: name, at: MonotonicClock.now)
            }
            for _ in 0..<5 where !stopping.load(ordering: .relaxed) { usleep(200_000) }
        }
    }

    /// A delay measured outside the health checks (the external controller's delay test): every group that lists
    /// `member` records it, as a check of that member would (url-test and fallback groups may switch), without
    /// moving their next check.
    package func record(_ member: String, latencyMilliseconds: UInt32?, at now: UInt64 = MonotonicClock.now) {
        let listing = state.withLock { groups in
            groups.values.filter { $0.config.members.contains(member) }.map(\.config.name)
        }
        for name in listing {
            apply(
                [member: Health(latencyMilliseconds: latencyMilliseconds, checkedAt: now)], to: name, at: now,
                isCheck: false)
        }
    }

    /// Records check results and lets url-test groups switch. `isCheck`: the group's own health check (its next one
    /// is due an interval from `now`); false for results measured on request.
    package func apply(_ results: [String: Health], to name: String, at now: UInt64, isCheck: Bool = true) {
        let change: (String, String)? = state.withLock { groups in
            guard var group = groups[name] else { return nil }
            group.health.merge(results) { $1 }
            if isCheck { group.lastChecked = max(now, 1) }
            var change: (String, String)?
            if group.config.kind == .urlTest {
                let current = group.selected
                let currentLatency = group.health[current]?.latencyMilliseconds
                let best = group.config.members.compactMap { m in group.health[m]?.latencyMilliseconds.map { (m, $0) } }
                    .min { $0.1 < $1.1 }
                if let (member, latency) = best, member != current,
                    currentLatency == nil || latency + UInt32(max(0, group.config.tolerance)) < currentLatency!
                {
                    group.selected = member
                    change = (current, member)
                }
            } else if group.config.kind == .fallback {
                let before = groups[name].map { g -> String in
                    var copy = g
                    return Self.current(&copy, key: "", source: "")
                }
                var after = group
                let now = Self.current(&after, key: "", source: "")
                if let before, before != now { change = (before, now) }
            }
            groups[name] = group
            return change
        }
        generation.add(1, ordering: .relaxed)
        if let (from, to) = change { logger.notice("proxy group \(name): \(from) -> \(to) (health check)") }
    }

    package func stop() { stopping.store(true, ordering: .relaxed) }

    // MARK: Persistence

    package static func load(_ path: String, logger: Logger) -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: path) else {
            if access(path, F_OK) == 0 {
                logger.error(
                    "cannot read the selected proxies from \(path) (\(String(cString: strerror(errno)))): select groups start from their first member; the file must belong to the user the tun worker runs as"
                )
            }
            return nil
        }
        return try? JSONDecoder().decode([String: String].self, from: data)
    }

    package static func store(_ choices: [String: String], at path: String, logger: Logger) {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try encoder.encode(choices).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            logger.warning(
                "cannot save the selected proxies to \(path): \(error); the choice holds until sluice restarts")
        }
    }
}
