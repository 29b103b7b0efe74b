import CSluice
import SluiceNetlink
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Debian's `wireguard-go`, the userspace backend: run in the foreground as a child of the keepalive worker, with
/// CAP_NET_ADMIN only (as an ambient capability) and as the worker's own user, on a TUN descriptor the worker attached
/// (`WG_TUN_FD`), and configured over its UAPI socket.
///
/// The child gets no parent-death signal and its own session, so that a keepalive worker killed with SIGKILL leaves
/// the link up; the next worker finds the device by its UAPI socket and adopts it (``findProcess(link:)``).
///
/// - Important: never run `wireguard-go --help`: it takes any argument as an interface name and creates `--help`.
package enum WireGuardGo {
    /// Where wireguard-go puts its UAPI sockets. Not per network namespace: link names must be unique on the host.
    package static let socketDirectory = "/var/run/wireguard"

    package static func socketPath(link: String) -> String { "\(socketDirectory)/\(link).sock" }

    /// The executable: `$SLUICE_WIREGUARD_GO` if set, else the first of the usual places that exists.
    package static func executable(environment: [String: String]) -> String? {
        if let path = environment["SLUICE_WIREGUARD_GO"], !path.isEmpty { return path }
        return ["/usr/bin/wireguard-go", "/usr/sbin/wireguard-go", "/usr/local/bin/wireguard-go"].first {
            access($0, X_OK) == 0
        }
    }

    /// Starts `wireguard-go LINK` in the foreground on the TUN descriptor `tun`, already attached to the link's device
    /// (``attachPersistentTun(_:link:framing:netlink:)``); returns its pid. Its log lines go to our stderr.
    ///
    /// The child gets `tun` as fd 3 and `WG_TUN_FD=3`, so wireguard-go takes that device (`tun.CreateTUNFromFile`)
    /// instead of opening `/dev/net/tun` itself, which the service user may not: the node is often mode 0600 root,
    /// and CAP_NET_ADMIN does not bypass file permissions.
    /// - Note: `tun` stays owned by the caller, who should close it once the child runs (the device must not stay
    ///   attached to the caller when wireguard-go dies).
    package static func spawn(
        link: String, executable: String, tun: CInt, capabilities: UInt64, logLevel: String = "error"
    ) throws(SystemError) -> pid_t {
        // An interface name never starts with '-', so it can never be taken for an option (see the note above).
        guard !link.isEmpty, !link.hasPrefix("-") else {
            throw SystemError("wireguard-go: bad link name \(link)", errno: EINVAL)
        }
        var request = SpawnRequest(
            executable: executable, arguments: [link],
            environment: [
                "WG_PROCESS_FOREGROUND=1", "WG_TUN_FD=3", "LOG_LEVEL=\(logLevel)", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            ],
            descriptors: [nil, 2, 2, tun], account: nil, capabilities: capabilities)
        request.parentDeathSignal = 0
        request.newSession = true
        return try ProcessSpawner.spawn(request)
    }

    /// How a TUN descriptor given to wireguard-go (`WG_TUN_FD`) must be attached. Its `CreateTUNFromFile` does not
    /// attach the descriptor, it takes it as it is and assumes the framing its own `CreateTUN` would have chosen;
    /// that changed between releases.
    package enum TunFraming: Sendable, Equatable, CustomStringConvertible {
        /// IFF_TUN: a 4-byte packet-information header on every packet. wireguard-go up to 0.0.20230223 (Debian
        /// bookworm ships 0.0.20220316) hard-codes it for a given descriptor (`nopi: false`).
        case packetInformation
        /// IFF_TUN | IFF_NO_PI | IFF_VNET_HDR: later releases read the flags back (TUNGETIFF) and, with IFF_VNET_HDR,
        /// set the offloads and move packets in batches, as their own `CreateTUN` does.
        case virtioHeader

        /// The last release that wants ``packetInformation`` (the date in `0.0.YYYYMMDD`).
        package static let lastPacketInformationRelease = 20_230_223

        /// The framing for `wireguard-go --version` output (`wireguard-go v0.0.20220316 ...`); nil when it names no
        /// version.
        package init?(versionOutput: String) {
            guard let range = versionOutput.range(of: "wireguard-go v0.0.") else { return nil }
            let digits = versionOutput[range.upperBound...].prefix { $0.isASCII && $0.isNumber }
            guard digits.count == 8, let date = Int(digits) else { return nil }
            self = date <= Self.lastPacketInformationRelease ? .packetInformation : .virtioHeader
        }

        package var description: String {
            switch self {
            case .packetInformation: "IFF_TUN (packet-information header)"
            case .virtioHeader: "IFF_TUN|IFF_NO_PI|IFF_VNET_HDR"
            }
        }
    }

    /// The first line `EXECUTABLE --version` prints (`wireguard-go v0.0.20220316`). `--version` alone is the one
    /// argument wireguard-go does not take for an interface name. Waits at most 2 s.
    package static func version(executable: String) throws(SystemError) -> String {
        let pipe = try Descriptors.pipe()
        let request = SpawnRequest(
            executable: executable, arguments: ["--version"], environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            descriptors: [nil, pipe.write.rawValue, nil], account: nil, capabilities: 0)
        let pid = try ProcessSpawner.spawn(request)
        pipe.write.close()
        defer {
            if ProcessSpawner.wait(for: pid, blocking: false) == nil {
                ProcessSpawner.signal(pid, SIGKILL)
                _ = ProcessSpawner.wait(for: pid)
            }
        }
        var output: [UInt8] = []
        let deadline = MonotonicClock.now + 2_000_000_000
        while output.count < 4096, MonotonicClock.now < deadline {
            let left = Int32((deadline - MonotonicClock.now) / 1_000_000)
            guard try Descriptors.waitReadable(pipe.read.rawValue, timeoutMilliseconds: max(1, left)) else { break }
            let chunk = try Descriptors.read(pipe.read.rawValue)
            if chunk.isEmpty { break }
            output += chunk
        }
        return String(decoding: output.prefix { $0 != 10 }, as: UTF8.self)
    }

    /// Opens `/dev/net/tun` for a TUN descriptor: only when this process may open the device node itself (a worker
    /// run without sluiced); under sluiced the keepalive worker asks sluiced for it (`SupervisorLink.openTunDevice`).
    /// - Note: the caller owns the returned descriptor.
    package static func openTunDevice() throws(SystemError) -> OwnedDescriptor { try Descriptors.openTunClone() }

    /// Attaches `tun`, an open `/dev/net/tun` descriptor not yet attached to a device, to the persistent TUN device
    /// named `link`, creating it (owned by this process's user) when missing, with the framing the wireguard-go that
    /// will get it expects. A persistent device outlives the process, so when wireguard-go dies the link keeps its
    /// index, addresses and routes (they show `linkdown` and drop packets rather than leaking them elsewhere) until
    /// the restarted process attaches. TUNSETIFF on a new device, or on one owned by another user, needs
    /// CAP_NET_ADMIN. Returns whether the device had to be created.
    /// - Note: `tun` stays owned by the caller.
    @discardableResult
    package static func attachPersistentTun(
        _ tun: OwnedDescriptor, link: String, framing: TunFraming, netlink: RouteNetlink
    ) throws(SystemError) -> Bool {
        let existing = try netlink.link(named: link)
        if let existing, existing.kind != "tun" {
            throw SystemError(
                "link \(link) exists and is \(existing.kind.map { "a \($0) device" } ?? "not a TUN device"), which wireguard-go cannot attach to; delete it (ip link del \(link)) or rename the link in the config",
                errno: EEXIST)
        }
        var actual = [CChar](repeating: 0, count: 16)
        switch framing {
        case .packetInformation:
            try Posix.check(
                "TUNSETIFF \(link) (IFF_TUN)", csluice_tun_attach_with_packet_info(tun.rawValue, link, &actual))
        case .virtioHeader:
            try Posix.check(
                "TUNSETIFF \(link) (IFF_TUN|IFF_NO_PI|IFF_VNET_HDR)",
                csluice_tun_attach(tun.rawValue, link, 1, 0, &actual))
        }
        if existing == nil { try Posix.check("TUNSETOWNER \(link)", csluice_tun_set_owner(tun.rawValue, getuid())) }
        try Posix.check("TUNSETPERSIST \(link)", csluice_tun_set_persist(tun.rawValue, 1))
        return existing == nil
    }

    /// The pid of the wireguard-go process serving `link` (`wireguard-go LINK` in /proc/PID/cmdline), if any.
    package static func findProcess(link: String) -> pid_t? {
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
    package static func isAlive(_ pid: pid_t) -> Bool {
        guard pid > 0, let status = ProcessStatus.read(pid: pid) else { return false }
        return !status.isZombie
    }
}

/// One request/answer exchange on a UAPI socket (a fresh connection each time, as `wg` does).
package enum UAPIClient {
    /// Sends `request` and returns the answer up to and including the empty line.
    package static func exchange(path: String, request: String, timeoutMilliseconds: Int32 = 2000) throws(SystemError)
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
    package static func status(path: String) throws -> WireGuardUAPI.DeviceStatus {
        try WireGuardUAPI.parseGetResponse(exchange(path: path, request: WireGuardUAPI.getRequest))
    }

    /// `set=1` with `request`; throws when the device answers a nonzero errno.
    package static func set(path: String, request: String) throws {
        try WireGuardUAPI.parseSetResponse(exchange(path: path, request: request))
    }
}
