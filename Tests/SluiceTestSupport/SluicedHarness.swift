import Foundation
import IPC
import SluiceSystem
import Supervision
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Receives sd_notify datagrams on a socket the test owns (NOTIFY_SOCKET stand-in).
package final class NotifyListener: @unchecked Sendable {
    package struct Message: Sendable {
        package var at: UInt64
        package var text: String
    }

    package let path: String
    private let socket: CInt
    private let received = Locked<[Message]>([])
    private let stopFlag = Atomic<Bool>(false)
    private var thread: OSThread?

    package init(directory: String) throws {
        path = directory + "/notify.sock"
        socket = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw SystemError("socket", errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes.prefix(raw.count - 1))
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { throw SystemError("bind \(path)", errno: errno) }
        chmod(path, 0o666)
        let thread = try OSThread.start(name: "notify-listener") { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !stopFlag.load(ordering: .relaxed) {
                guard (try? Descriptors.waitReadable(socket, timeoutMilliseconds: 100)) == true else { continue }
                let n = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                guard n > 0 else { continue }
                let text = String(decoding: buffer.prefix(n), as: UTF8.self)
                received.withLock { $0.append(Message(at: MonotonicClock.now, text: text)) }
            }
        }
        self.thread = thread
    }

    package var messages: [Message] { received.withLock { $0 } }

    /// Each assignment (`READY=1`, `STATUS=...`) with the time its datagram arrived.
    package var assignments: [(at: UInt64, line: String)] {
        messages.flatMap { m in m.text.split(separator: "\n").map { (m.at, String($0)) } }
    }

    package func stop() {
        stopFlag.store(true, ordering: .relaxed)
        thread?.join()
        close(socket)
        unlink(path)
    }
}

/// A real `sluiced run` started by a test, with its own runtime/state directories, config
/// file and log file, ended by PID when the test is done.
package final class SluicedHarness {
    package let directory: String
    package let configPath: String
    package let logPath: String
    package let runtimeDirectory: String
    /// The network namespace sluiced runs in: made for this harness when running as root,
    /// so TUN devices, addresses and rules of parallel tests never meet (nor the host's).
    package let namespace: String?
    package private(set) var pid: pid_t = 0
    package private(set) var exitStatus: Int32?

    /// Where the test binary lives: the package's build products are beside it.
    package static var productsDirectory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return (exe as NSString).deletingLastPathComponent
    }

    package init(config: String, name: String = #function) throws {
        let base =
            "/tmp/sluice-test-\(getpid())-\(name.filter { $0.isLetter || $0.isNumber })-\(UInt32.random(in: 0...UInt32.max))"
        directory = base
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        chmod(base, 0o755)  // the service user reads nothing here, but traverses for the log
        configPath = base + "/config.yaml"
        logPath = base + "/sluiced.log"
        runtimeDirectory = base + "/run"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        if geteuid() == 0 {
            let name = "slh\(getpid() % 100000)x\(UInt16.random(in: 0...UInt16.max))"
            guard Self.run(["/usr/sbin/ip", "netns", "add", name]) == 0 else {
                throw SystemError("ip netns add \(name)", errno: EIO)
            }
            _ = Self.run(["/usr/sbin/ip", "-n", name, "link", "set", "lo", "up"])
            namespace = name
        } else {
            namespace = nil
        }
    }

    /// Runs a command to completion (no shell); returns its exit status.
    @discardableResult
    package static func run(_ argv: [String]) -> Int32 {
        let request = SpawnRequest(
            executable: argv[0], arguments: Array(argv.dropFirst()),
            environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            descriptors: [nil, nil, nil], account: nil, capabilities: 0)
        var unlimited = request
        unlimited.limitCapabilities = false
        guard let pid = try? ProcessSpawner.spawn(unlimited) else { return -1 }
        return ProcessSpawner.wait(for: pid)?.status ?? -1
    }

    /// Starts sluiced. `environment` adds to a minimal one (NOTIFY_SOCKET, WATCHDOG_USEC...);
    /// `namespace` runs it inside that network namespace (`ip netns exec`, which execs, so
    /// the pid is sluiced's).
    /// `launcher` goes in front of sluiced (e.g. `prlimit --nofile=64:64 --`).
    package func start(
        environment: [String] = [], arguments: [String] = [], namespace explicit: String? = nil, launcher: [String] = []
    ) throws {
        let namespace = explicit ?? self.namespace
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw SystemError("open \(logPath)", errno: errno) }
        defer { close(log) }
        let run =
            ["run", "-c", configPath, "--runtime-dir", runtimeDirectory, "--state-dir", stateDirectory] + arguments
        let sluiced = Self.productsDirectory + "/sluiced"
        let request = SpawnRequest(
            executable: namespace == nil ? (launcher.first ?? sluiced) : "/usr/sbin/ip",
            arguments: namespace.map { ["netns", "exec", $0] + launcher + [sluiced] + run }
                ?? (launcher.isEmpty ? run : Array(launcher.dropFirst()) + [sluiced] + run),
            environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] + SpawnRequest.sanitizerEnvironment + environment,
            descriptors: [nil, log, log],
            account: nil, capabilities: 0)
        var unlimited = request
        unlimited.limitCapabilities = false
        unlimited.parentDeathSignal = SIGTERM
        pid = try ProcessSpawner.spawn(unlimited)
        exitStatus = nil  // a harness may start sluiced again after it stopped
    }

    package var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Children of sluiced right now (`pgrep -P`).
    package var children: [pid_t] {
        guard pid > 0, let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return tasks.compactMap { pid_t($0) }.filter { ProcessStatus.read(pid: $0)?.parentPID == pid }
    }

    /// Connects to the stream socket at `path` without waiting: a full listen backlog (a sluiced that stopped
    /// accepting) gives nil instead of a test that hangs. The socket stays non-blocking.
    package static func connectNow(_ path: String) -> OwnedDescriptor? {
        let fd = socket(
            AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        let owned = OwnedDescriptor(takingOwnershipOfDescriptor: fd)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8).prefix(raw.count - 1))
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return rc == 0 ? owned : nil
    }

    /// One request over `<runtime>/control.sock` (hello as a control client first, as `sluiced status` does);
    /// the answer, or nil when sluiced does not answer in time.
    package func request(_ message: Message, timeoutMilliseconds: Int32 = 2000) -> Message? {
        guard let socket = Self.connectNow(runtimeDirectory + "/control.sock") else { return nil }
        let channel = FrameChannel(takingOwnershipOf: socket)
        defer { channel.close() }
        do {
            try channel.send(.hello(Hello(role: .controlClient, pid: UInt32(getpid()), software: "test")), requestID: 1)
            guard try channel.receive(timeoutMilliseconds: 2000) != nil else { return nil }
            try channel.send(message, requestID: 2)
            guard let reply = try channel.receive(timeoutMilliseconds: timeoutMilliseconds) else { return nil }
            return try reply.frame.message()
        } catch {
            return nil
        }
    }

    /// The status document over the control socket, or nil when sluiced does not answer.
    package func status() -> SupervisorStatus? {
        guard case .statusReport(let document)? = request(.statusRequest) else { return nil }
        return try? JSONDecoder().decode(SupervisorStatus.self, from: Data(document))
    }

    package func worker(_ name: String) -> SupervisorStatus.Worker? { status()?.workers.first { $0.name == name } }

    /// Polls `condition` every 20 ms until it holds or `seconds` pass.
    @discardableResult
    package func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = MonotonicClock.now + UInt64(seconds * 1e9)
        while MonotonicClock.now < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// Reaps sluiced if it has exited; returns its exit status.
    package func pollExit() -> Int32? {
        if let exitStatus { return exitStatus }
        guard pid > 0, let exit = ProcessSpawner.wait(for: pid, blocking: false) else { return nil }
        exitStatus = exit.status
        return exitStatus
    }

    /// Whether `pid` is a live process (not gone, not a zombie waiting for its reaper).
    package static func isAlive(_ pid: pid_t) -> Bool {
        guard let status = ProcessStatus.read(pid: pid) else { return false }
        return !status.isZombie
    }

    package func signal(_ sig: Int32) { if pid > 0, exitStatus == nil { kill(pid, sig) } }

    /// SIGTERM, and waits (10 s at most) for sluiced to exit; the directory stays, for another ``start()``.
    @discardableResult
    package func terminate() -> Int32? {
        signal(SIGTERM)
        waitUntil(10) { pollExit() != nil }
        return pollExit()
    }

    /// The state directory (`--state-dir`).
    package var stateDirectory: String { directory + "/state" }

    /// Ends sluiced (SIGTERM, then SIGKILL after 10 s) and removes the directory.
    package func stop() {
        if pid > 0, pollExit() == nil {
            kill(pid, SIGTERM)
            if !waitUntil(10, { pollExit() != nil }) {
                kill(pid, SIGKILL)
                waitUntil(2) { pollExit() != nil }
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
        if let namespace { Self.run(["/usr/sbin/ip", "netns", "del", namespace]) }
    }

    package static func config(tun: Bool = true, dns: Bool = true, keepalive: Bool = false, supervisor: String = "")
        -> String
    {
        var text = "log-level: debug\n"
        text += "tun:\n  enable: \(tun)\n"
        text +=
            "dns:\n  enable: \(dns)\n  listen: 127.0.0.1:1053\n  enhanced-mode: fake-ip\n  nameserver: [127.0.0.1]\n"
        if keepalive {
            // UAPI sockets (/var/run/wireguard/NAME.sock) are not per namespace: a name of its own per harness.
            let link = "wgt" + String(UInt32.random(in: 0...0xff_ffff), radix: 16)
            text += """
                wireguard:
                  - name: \(link)
                    private-key: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
                    address: [10.99.0.1/24]
                    peers:
                      - public-key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
                        endpoint: 127.0.0.1:51820
                        allowed-ips: [10.99.0.0/24]

                """
        }
        text += "rules:\n  - MATCH,DIRECT\n"
        if !supervisor.isEmpty { text += "supervisor:\n" + supervisor }
        return text
    }
}
