import CSluice

#if canImport(Glibc)
import Glibc
#endif

/// Linux capability numbers sluice cares about (linux/capability.h).
package enum Capability: Int, Sendable, CaseIterable {
    case chown = 0
    case kill = 5
    case setgid = 6
    case setuid = 7
    case setpcap = 8
    case netBindService = 10
    case netAdmin = 12
    case netRaw = 13
    case sysPtrace = 19
    case sysAdmin = 21

    package var mask: UInt64 { 1 << UInt64(rawValue) }

    package var name: String {
        switch self {
        case .chown: "CAP_CHOWN"
        case .kill: "CAP_KILL"
        case .setgid: "CAP_SETGID"
        case .setuid: "CAP_SETUID"
        case .setpcap: "CAP_SETPCAP"
        case .netBindService: "CAP_NET_BIND_SERVICE"
        case .netAdmin: "CAP_NET_ADMIN"
        case .netRaw: "CAP_NET_RAW"
        case .sysPtrace: "CAP_SYS_PTRACE"
        case .sysAdmin: "CAP_SYS_ADMIN"
        }
    }

    /// The calling process's (effective, permitted, inheritable) sets.
    package static func current() throws(SystemError) -> (effective: UInt64, permitted: UInt64, inheritable: UInt64) {
        var e: UInt64 = 0
        var p: UInt64 = 0
        var i: UInt64 = 0
        try Posix.check("capget", csluice_capabilities_get(&e, &p, &i))
        return (e, p, i)
    }

    /// `CAP_NET_ADMIN,CAP_KILL` for a mask, `none` for 0.
    package static func names(_ mask: UInt64) -> String {
        if mask == 0 { return "none" }
        let known = allCases.filter { mask & $0.mask != 0 }.map(\.name)
        let unknown = (0..<64).filter { bit in
            mask & (1 << UInt64(bit)) != 0 && !allCases.contains { $0.rawValue == bit }
        }
        return (known + unknown.map { "cap\($0)" }).joined(separator: ",")
    }
}

/// A Unix account the workers run as.
package struct ServiceAccount: Sendable, Equatable {
    package var name: String
    package var uid: uid_t
    package var gid: gid_t
    /// Supplementary groups (getgrouplist), including `gid`.
    package var groups: [gid_t]

    /// Looks up `name` in the passwd database; nil when there is no such user.
    package static func lookup(_ name: String) -> ServiceAccount? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(name, &pwd, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, pwd.pw_gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(name, pwd.pw_gid, &groups, &count)
        }
        return ServiceAccount(
            name: name, uid: pwd.pw_uid, gid: pwd.pw_gid, groups: Array(groups.prefix(Int(max(0, count)))))
    }

    /// The gid of group `name`, if it exists.
    package static func groupID(_ name: String) -> gid_t? {
        var grp = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(name, &grp, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return grp.gr_gid
    }
}

/// What a child process gets between fork and exec (see `csluice_spawn`).
package struct SpawnRequest: Sendable {
    package var executable: String
    package var arguments: [String]
    package var environment: [String]
    /// Installed as fds 0, 1, 2, 3, ...; nil means /dev/null. Not consumed: the caller still
    /// owns (and should close) its copies after spawning.
    package var descriptors: [CInt?]
    /// Switch to this account (needs CAP_SETUID/CAP_SETGID); nil keeps the caller's.
    package var account: ServiceAccount?
    /// Capabilities kept as effective, permitted, inheritable and ambient; everything else
    /// is dropped, including from the bounding set when possible.
    package var capabilities: UInt64
    /// false: leave the capability sets alone (the child inherits ours as exec allows).
    package var limitCapabilities = true
    package var parentDeathSignal: CInt = SIGKILL
    package var newSession = true

    package init(
        executable: String, arguments: [String], environment: [String], descriptors: [CInt?],
        account: ServiceAccount?, capabilities: UInt64
    ) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.descriptors = descriptors
        self.account = account
        self.capabilities = capabilities
    }

    /// The sanitizer runtimes' settings of this process (`ASAN_OPTIONS` ...), as `NAME=value` entries to pass on
    /// to children that otherwise get a clean environment: a build with `-sanitize=address|thread` under test
    /// (`Scripts/sanitize.sh`) must carry `detect_leaks=0` and the report path to every process. Empty otherwise.
    package static let sanitizerEnvironment: [String] = [
        "ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS",
    ]
    .compactMap { name in
        guard let value = getenv(name) else { return nil }
        return name + "=" + String(cString: value)
    }
}

/// Starts processes with `csluice_spawn`: fork and exec happen in C, never in Swift.
package enum ProcessSpawner {
    /// Spawns the child and returns its pid.
    /// - Throws: ``SystemError`` naming the failed step (`execve`, `setresuid`, ...).
    package static func spawn(_ request: SpawnRequest) throws(SystemError) -> pid_t {
        let argv = ([request.executable] + request.arguments.dropFirst(0)).map { strdup($0) }
        let envp = request.environment.map { strdup($0) }
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var argvNull = argv + [nil]
        var envpNull = envp + [nil]
        let fds = request.descriptors.map { $0 ?? -1 }
        let groups = request.account?.groups ?? []
        var step = [CChar](repeating: 0, count: 64)
        let pid: pid_t = argvNull.withUnsafeMutableBufferPointer { argvBuf in
            envpNull.withUnsafeMutableBufferPointer { envpBuf in
                fds.withUnsafeBufferPointer { fdBuf in
                    groups.withUnsafeBufferPointer { groupBuf in
                        var req = csluice_spawn_request()
                        req.path = UnsafePointer(argvBuf[0])
                        req.argv = UnsafePointer(argvBuf.baseAddress)
                        req.envp = UnsafePointer(envpBuf.baseAddress)
                        req.fds = fdBuf.baseAddress
                        req.nfds = CInt(fdBuf.count)
                        if let account = request.account {
                            req.change_identity = 1
                            req.uid = account.uid
                            req.gid = account.gid
                            req.groups = groupBuf.baseAddress
                            req.ngroups = CInt(groupBuf.count)
                        }
                        req.capabilities = request.capabilities
                        req.limit_capabilities = request.limitCapabilities ? 1 : 0
                        req.parent_death_signal = request.parentDeathSignal
                        req.new_session = request.newSession ? 1 : 0
                        return csluice_spawn(&req, &step, step.count)
                    }
                }
            }
        }
        if pid < 0 {
            let stepName = String(decoding: step.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw SystemError("spawn \(request.executable)\(stepName.isEmpty ? "" : " (\(stepName))")", errno: -pid)
        }
        return pid
    }

    /// One reaped child: pid and how it ended.
    package struct Exit: Sendable, Equatable {
        package var pid: pid_t
        /// Exit status when it exited, nil when a signal killed it.
        package var code: Int32?
        /// The signal that killed it, nil when it exited.
        package var signal: Int32?

        package init(pid: pid_t, code: Int32?, signal: Int32?) {
            self.pid = pid
            self.code = code
            self.signal = signal
        }

        /// The status a shell reports: the exit code, or 128 + the signal.
        package var status: Int32 { code ?? 128 + (signal ?? 0) }
    }

    /// Reaps one child that has ended, without blocking; nil when none has.
    package static func reapOne() -> Exit? { wait(for: -1, blocking: false) }

    /// Waits for child `pid` (-1: any child) to end; with `blocking: false`, nil when it
    /// has not ended yet (or there is no such child).
    package static func wait(for pid: pid_t, blocking: Bool = true) -> Exit? {
        var code: CInt = -1
        var signal: CInt = 0
        let got = csluice_wait_child(pid, blocking ? 0 : 1, &code, &signal)
        guard got > 0 else { return nil }
        return Exit(pid: got, code: code >= 0 ? code : nil, signal: signal > 0 ? signal : nil)
    }

    /// kill(2); ESRCH (already gone) is not an error.
    package static func signal(_ pid: pid_t, _ sig: CInt) {
        guard pid > 0 else { return }
        _ = csluice_kill(pid, sig)
    }
}

/// Signals as poll()-able bytes on a pipe (see `csluice_signal_pipe`).
package enum SignalPipe {
    /// Installs the handlers and returns the read end. Call once per process.
    package static func install(_ signals: [CInt]) throws(SystemError) -> OwnedDescriptor {
        let fd = try Posix.check(
            "signal pipe", signals.withUnsafeBufferPointer { csluice_signal_pipe($0.baseAddress, CInt($0.count)) })
        return OwnedDescriptor(takingOwnershipOfDescriptor: fd)
    }

    /// The signal numbers that arrived since the last call.
    package static func drain(_ fd: CInt) -> [CInt] {
        var out: [CInt] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            out += buffer.prefix(n).map { CInt($0) }
        }
        return out
    }
}

/// The lines of `/proc/PID/status` that prove a process's privileges (and its resident memory).
package struct ProcessStatus: Sendable, Equatable {
    package var name: String
    package var uid: uid_t
    package var capEffective: UInt64
    package var capPermitted: UInt64
    package var capInheritable: UInt64
    package var capBounding: UInt64
    package var capAmbient: UInt64
    package var noNewPrivs: Bool
    package var parentPID: pid_t
    /// `R`, `S`, `T`, `Z`, ... (the first letter of the State line).
    package var state: Character
    /// Resident memory (`VmRSS`), in bytes; nil for a process without one (a zombie, a kernel thread).
    package var residentBytes: UInt64?

    /// A zombie has exited and only waits to be reaped.
    package var isZombie: Bool { state == "Z" || state == "X" }

    /// Reads `/proc/<pid>/status`; nil when the process is gone or the file is unreadable.
    package static func read(pid: pid_t) -> ProcessStatus? {
        guard let file = fopen("/proc/\(pid)/status", "r") else { return nil }
        defer { fclose(file) }
        var fields: [String: String] = [:]
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        while getline(&line, &capacity, file) > 0, let line {
            let text = String(cString: line)
            guard let colon = text.firstIndex(of: ":") else { continue }
            fields[String(text[..<colon])] = String(text[text.index(after: colon)...]).trimmingCharacters()
        }
        free(line)
        func hex(_ key: String) -> UInt64 { UInt64(fields[key] ?? "", radix: 16) ?? 0 }
        let uid = fields["Uid"].flatMap { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).first }.flatMap {
            uid_t($0)
        }
        return ProcessStatus(
            name: fields["Name"] ?? "", uid: uid ?? 0, capEffective: hex("CapEff"), capPermitted: hex("CapPrm"),
            capInheritable: hex("CapInh"), capBounding: hex("CapBnd"), capAmbient: hex("CapAmb"),
            noNewPrivs: fields["NoNewPrivs"] == "1", parentPID: pid_t(fields["PPid"] ?? "") ?? 0,
            state: fields["State"]?.first ?? "?",
            residentBytes: fields["VmRSS"].flatMap { UInt64($0.split(separator: " ").first ?? "") }.map { $0 * 1024 })
    }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s.removeLast() }
        return String(s)
    }
}
