import IPC

/// The document behind `sluiced status --json` (and the `statusReport` IPC message).
/// Field names are part of the CLI's contract: scripts read them.
package struct SupervisorStatus: Codable, Sendable, Equatable {
    package var pid: Int32
    package var version: String
    package var uptimeSeconds: Double
    package var configPath: String
    /// Increases with every accepted reload.
    package var generation: UInt64
    /// One line, the same text as systemd's STATUS=.
    package var summary: String
    package var workers: [Worker]
    /// The proxy groups, as the tun worker last reported them (empty without groups).
    package var groups: [GroupState] = []
    /// The WireGuard links, as the keepalive worker last reported them (empty without links).
    package var links: [WireGuardLinkState] = []

    package init(
        pid: Int32, version: String, uptimeSeconds: Double, configPath: String, generation: UInt64, summary: String,
        workers: [Worker], groups: [GroupState] = [], links: [WireGuardLinkState] = []
    ) {
        self.pid = pid
        self.version = version
        self.uptimeSeconds = uptimeSeconds
        self.configPath = configPath
        self.generation = generation
        self.summary = summary
        self.workers = workers
        self.groups = groups
        self.links = links
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pid = try c.decode(Int32.self, forKey: .pid)
        version = try c.decode(String.self, forKey: .version)
        uptimeSeconds = try c.decode(Double.self, forKey: .uptimeSeconds)
        configPath = try c.decode(String.self, forKey: .configPath)
        generation = try c.decode(UInt64.self, forKey: .generation)
        summary = try c.decode(String.self, forKey: .summary)
        workers = try c.decode([Worker].self, forKey: .workers)
        groups = try c.decodeIfPresent([GroupState].self, forKey: .groups) ?? []
        links = try c.decodeIfPresent([WireGuardLinkState].self, forKey: .links) ?? []
    }

    package struct Worker: Codable, Sendable, Equatable {
        package var name: String
        package var enabled: Bool
        /// `off`, `starting`, `ready`, `restarting`, `stopping`, `stopped`.
        package var state: String
        package var pid: Int32?
        package var uptimeSeconds: Double?
        package var restarts: Int
        package var lastExit: Exit?
        package var detail: String
        package var heartbeatLatencyMilliseconds: Double?
        package var stats: [String: Int64]
        /// What the worker reports broken right now (a promise it cannot keep while it lasts); empty when well.
        package var problems: [String] = []

        package init(
            name: String, enabled: Bool, state: String, pid: Int32?, uptimeSeconds: Double?, restarts: Int,
            lastExit: Exit?, detail: String, heartbeatLatencyMilliseconds: Double?, stats: [String: Int64],
            problems: [String] = []
        ) {
            self.name = name
            self.enabled = enabled
            self.state = state
            self.pid = pid
            self.uptimeSeconds = uptimeSeconds
            self.restarts = restarts
            self.lastExit = lastExit
            self.detail = detail
            self.heartbeatLatencyMilliseconds = heartbeatLatencyMilliseconds
            self.stats = stats
            self.problems = problems
        }

        package init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            enabled = try c.decode(Bool.self, forKey: .enabled)
            state = try c.decode(String.self, forKey: .state)
            pid = try c.decodeIfPresent(Int32.self, forKey: .pid)
            uptimeSeconds = try c.decodeIfPresent(Double.self, forKey: .uptimeSeconds)
            restarts = try c.decode(Int.self, forKey: .restarts)
            lastExit = try c.decodeIfPresent(Exit.self, forKey: .lastExit)
            detail = try c.decode(String.self, forKey: .detail)
            heartbeatLatencyMilliseconds = try c.decodeIfPresent(Double.self, forKey: .heartbeatLatencyMilliseconds)
            stats = try c.decode([String: Int64].self, forKey: .stats)
            // Absent in the status of a sluiced from before the field existed.
            problems = try c.decodeIfPresent([String].self, forKey: .problems) ?? []
        }
    }

    package struct Exit: Codable, Sendable, Equatable {
        package var code: Int32?
        package var signal: Int32?
        /// `SIGKILL`, `SIGSEGV`, ... when a signal ended it.
        package var signalName: String?
        /// Why it ended as far as the supervisor knows: `crashed`, `heartbeat timeout`, ...
        package var reason: String
        package var secondsAgo: Double
    }

    /// The table people read (`sluiced status`).
    package func renderTable() -> String {
        var lines = [
            "sluiced pid \(pid), \(version), up \(Self.age(uptimeSeconds)), config \(configPath) (generation \(generation))"
        ]
        lines.append(summary)
        let header = ["WORKER", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "DETAIL"]
        var rows = [header]
        for w in workers {
            let exit = w.lastExit.map { e in
                (e.signalName ?? (e.code.map { "exit \($0)" } ?? "?")) + " (\(e.reason), \(Self.age(e.secondsAgo)) ago)"
            }
            rows.append([
                w.name, w.state, w.pid.map(String.init) ?? "-", w.uptimeSeconds.map(Self.age) ?? "-",
                String(w.restarts),
                exit ?? "-", w.detail,
            ])
        }
        lines += Self.columns(rows)
        for w in workers {
            for problem in w.problems { lines.append("PROBLEM \(w.name): \(problem)") }
        }
        for w in workers where !w.stats.isEmpty {
            lines.append(
                "\(w.name): "
                    + w.stats.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        }
        if !groups.isEmpty { lines.append(Self.renderGroups(groups)) }
        if !links.isEmpty { lines.append(Self.renderLinks(links)) }
        return lines.joined(separator: "\n")
    }

    /// `LINK  STATE  BACKEND  PID  PEER  ENDPOINT  HANDSHAKE  RX  TX`, a row per peer (the link's columns on its
    /// first), peers named by their configured endpoint or the start of their key.
    package static func renderLinks(_ links: [WireGuardLinkState]) -> String {
        let header = ["LINK", "STATE", "BACKEND", "PID", "PEER", "ENDPOINT", "HANDSHAKE", "RX", "TX"]
        var rows = [header]
        for link in links {
            let state = link.up ? "up" : "down"
            let pid = link.pid.map(String.init) ?? "-"
            let linkColumns = [
                link.name, state + (link.restarts > 0 ? " (\(link.restarts) restarts)" : ""), link.backend, pid,
            ]
            if link.peers.isEmpty { rows.append(linkColumns + ["-", "-", "-", "-", "-"]) }
            for (i, peer) in link.peers.enumerated() {
                let name = peer.configuredEndpoint ?? String(peer.publicKey.prefix(8)) + "…"
                let handshake = peer.handshakeAgeSeconds.map { "\(age(Double($0))) ago (\(peer.state))" } ?? peer.state
                rows.append(
                    (i == 0 ? linkColumns : ["", "", "", ""]) + [
                        name, peer.endpoint ?? "-", handshake, byteCount(peer.rxBytes), byteCount(peer.txBytes),
                    ])
            }
        }
        return columns(rows).joined(separator: "\n")
    }

    package static func byteCount(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        let tenths = Int((value * 10).rounded())
        return unit == 0 ? "\(bytes) B" : "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// `GROUP  KIND  NOW  MEMBERS`, members with their last check (`ss1 42ms`, `socks down`); an unavailable group
    /// shows `REJECT` now and why after its members.
    package static func renderGroups(_ groups: [GroupState]) -> String {
        var rows = [["GROUP", "KIND", "NOW", "MEMBERS"]]
        for g in groups {
            let members = g.members.map { m -> String in
                guard let h = g.health[m] else { return m }
                return h.latencyMilliseconds.map { "\(m) \($0)ms" } ?? "\(m) down"
            }
            var listed = members.joined(separator: ", ")
            if let reason = g.unavailable {
                listed = listed.isEmpty ? "unavailable: \(reason)" : "\(listed) (unavailable: \(reason))"
            }
            rows.append([g.name, g.kind, g.now, listed])
        }
        return columns(rows).joined(separator: "\n")
    }

    /// Rows as aligned columns two spaces apart; the last column is not padded.
    package static func columns(_ rows: [[String]]) -> [String] {
        let count = rows.map(\.count).max() ?? 0
        let widths = (0..<count).map { i in rows.map { i < $0.count ? $0[i].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.indices.map { i in i == row.count - 1 ? row[i] : row[i].padding(to: widths[i]) }.joined(separator: "  ")
        }
    }

    static func age(_ seconds: Double) -> String {
        let s = Int(seconds)
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        if s < 86400 { return "\(s / 3600)h\((s % 3600) / 60)m" }
        return "\(s / 86400)d\((s % 86400) / 3600)h"
    }
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

/// Signal names for status output.
package func signalName(_ signal: Int32) -> String {
    let names: [Int32: String] = [
        1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
        9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
        19: "SIGSTOP",
    ]
    return names[signal] ?? "signal \(signal)"
}
