import Foundation
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// A real dnsmasq (Debian's dnsmasq-base) serving fixed answers on a loopback port: the
/// upstream DNS server of DNS tests. Started and stopped by PID; `namespace` runs it in a
/// network namespace (`ip netns exec`).
package final class Dnsmasq {
    package let address: String
    package let port: UInt16
    package private(set) var pid: pid_t = 0

    /// - Parameter options: dnsmasq options such as `--address=/test/10.1.1.1`.
    package init(address: String = "127.0.0.1", port: UInt16? = nil, namespace: String? = nil, options: [String]) throws
    {
        self.address = address
        self.port = port ?? UInt16.random(in: 20000...40000)
        let arguments =
            [
                "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
                "--listen-address=\(address)", "--port=\(self.port)", "--pid-file=", "--user=root", "--cache-size=0",
            ] + options
        let executable = "/usr/sbin/dnsmasq"
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw SystemError(
                "dnsmasq is not installed (apt-get install dnsmasq-base; Scripts/install-deps.sh does it)",
                errno: ENOENT)
        }
        var request = SpawnRequest(
            executable: namespace == nil ? executable : "/usr/sbin/ip",
            arguments: namespace.map { ["netns", "exec", $0, executable] + arguments } ?? arguments,
            environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], descriptors: [nil, nil, nil], account: nil,
            capabilities: 0)
        request.limitCapabilities = false
        request.parentDeathSignal = SIGTERM
        pid = try ProcessSpawner.spawn(request)
        // Ready when the port answers (a TCP connect succeeds).
        for _ in 0..<100 {
            let (status, _) = Shell.run(
                (namespace.map { "ip netns exec \($0) " } ?? "")
                    + "bash -c 'exec 3<>/dev/tcp/\(address)/\(self.port)' 2>/dev/null")
            if status == 0 { return }
            usleep(50_000)
        }
        stop()
        throw SystemError("dnsmasq on \(address):\(self.port) did not come up", errno: ETIMEDOUT)
    }

    package func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        _ = ProcessSpawner.wait(for: pid)
        pid = 0
    }

    deinit { stop() }
}
