import CSluice
import SluiceNetlink
import SluiceSystem

#if canImport(Glibc)
    import Glibc
#endif

/// Debian's `wireguard-go`, the userspace backend: run in the foreground as a child of the keepalive worker, with
/// CAP_NET_ADMIN only (as an ambient capability) and as the worker's own user, and configured over its UAPI socket.
///
/// The child gets no parent-death signal and its own session, so that a keepalive worker killed with SIGKILL leaves
/// the link up; the next worker finds the device by its UAPI socket and adopts it (``findProcess(link:)``).
///
/// - Important: never run `wireguard-go --help`: it takes any argument as an interface name and creates `--help`.
public enum WireGuardGo {
    /// Where wireguard-go puts its UAPI sockets. Not per network namespace: link names must be unique on the host.
    public static let socketDirectory = "/var/run/wireguard"

    public static func socketPath(link: String) -> String { "\(socketDirectory)/\(link).sock" }

    /// The executable: `$SLUICE_WIREGUARD_GO` if set, else the first of the usual places that exists.
    public static func executable(environment: [String: String]) -> String? {
        if let path = environment["SLUICE_WIREGUARD_GO"], !path.isEmpty { return path }
        return ["/usr/bin/wireguard-go", "/usr/sbin/wireguard-go", "/usr/local/bin/wireguard-go"].first {
            access($0, X_OK) == 0
        }
    }

    /// Starts `wireguard-go LINK` in the foreground; returns its pid. Its log lines go to our stderr.
    public static func spawn(link: String, executable: String, capabilities: UInt64, logLevel: String = "error")
        throws(SystemError) -> pid_t
    {
        // An interface name never starts with '-', so it can never be taken for an option (see the note above).
        guard !link.isEmpty, !link.hasPrefix("-") else { throw SystemError("wireguard-go: bad link name \(link)", errno: EINVAL) }
        var request = SpawnRequest(
            executable: executable, arguments: [link],
            environment: ["WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=\(logLevel)", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            descriptors: [nil, 2, 2], account: nil, capabilities: capabilities)
        request.parentDeathSignal = 0
        request.newSession = true
        return try ProcessSpawner.spawn(request)
    }

    /// Makes sure a persistent TUN device named `link`, owned by this process's user, exists for wireguard-go to attach
    /// to: wireguard-go opens `/dev/net/tun` with the link's name and so takes over an existing device. A persistent
    /// device outlives the process, so when wireguard-go dies the link keeps its index, addresses and routes (they
    /// show `linkdown` and drop packets rather than leaking them elsewhere) until the restarted process attaches.
    /// Returns whether the device had to be created.
    @discardableResult
    public static func preparePersistentTun(link: String, netlink: RouteNetlink) throws(SystemError) -> Bool {
        if let existing = try netlink.link(named: link) {
            guard existing.kind == "tun" else {
                throw SystemError(
                    "link \(link) exists and is \(existing.kind.map { "a \($0) device" } ?? "not a TUN device"), which wireguard-go cannot attach to; delete it (ip link del \(link)) or rename the link in the config",
                    errno: EEXIST)
            }
            return false
        }
        var actual = [CChar](repeating: 0, count: 16)
        let fd = try Posix.check("open /dev/net/tun for \(link)", csluice_tun_open(link, 0, 0, &actual))
        defer { close(fd) }
        try Posix.check("TUNSETOWNER \(link)", csluice_tun_set_owner(fd, getuid()))
        try Posix.check("TUNSETPERSIST \(link)", csluice_tun_set_persist(fd, 1))
        return true
    }

    /// The pid of the wireguard-go process serving `link` (`wireguard-go LINK` in /proc/PID/cmdline), if any.
    public static func findProcess(link: String) -> pid_t? {
        guard let dir = opendir("/proc") else { return nil }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = pid_t(name) else { continue }
            let argv = commandLine(pid: pid)
            guard argv.count >= 2, argv[0].hasSuffix("wireguard-go"), argv.last == link else { continue }
            if let status = ProcessStatus.read(pid: pid), status.isZombie { continue }
            return pid
        }
        return nil
    }

    /// The NUL-separated arguments of a process; empty when unreadable.
    static func commandLine(pid: pid_t) -> [String] {
        let fd = open("/proc/\(pid)/cmdline", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return [] }
        return buffer.prefix(n).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether `pid` is alive and not a zombie.
    public static func isAlive(_ pid: pid_t) -> Bool {
        guard pid > 0, let status = ProcessStatus.read(pid: pid) else { return false }
        return !status.isZombie
    }
}

/// One request/answer exchange on a UAPI socket (a fresh connection each time, as `wg` does).
public enum UAPIClient {
    /// Sends `request` and returns the answer up to and including the empty line.
    public static func exchange(path: String, request: String, timeoutMilliseconds: Int32 = 2000) throws(SystemError)
        -> String
    {
        let socket = try UnixSocket.connect(path: path)
        defer { socket.close() }
        try Descriptors.writeAll(socket.rawValue, Array(request.utf8))
        var answer: [UInt8] = []
        while true {
            guard try Descriptors.waitReadable(socket.rawValue, timeoutMilliseconds: timeoutMilliseconds) else {
                throw SystemError("UAPI \(path): no answer within \(timeoutMilliseconds) ms", errno: ETIMEDOUT)
            }
            let chunk = try Descriptors.read(socket.rawValue)
            if chunk.isEmpty { break }
            answer += chunk
            if answer.count >= 2, answer.suffix(2) == [10, 10] { break }
        }
        return String(decoding: answer, as: UTF8.self)
    }

    /// `get=1`.
    public static func status(path: String) throws -> WireGuardUAPI.DeviceStatus {
        try WireGuardUAPI.parseGetResponse(exchange(path: path, request: WireGuardUAPI.getRequest))
    }

    /// `set=1` with `request`; throws when the device answers a nonzero errno.
    public static func set(path: String, request: String) throws {
        try WireGuardUAPI.parseSetResponse(exchange(path: path, request: request))
    }
}
