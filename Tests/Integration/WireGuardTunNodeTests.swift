import Foundation
import IPC
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `/dev/net/tun` at mode 0600 root, as in containers and on hardened hosts: the service user cannot open it and
/// CAP_NET_ADMIN does not bypass file permissions, so wireguard-go (run as `sluice`) must get its TUN from sluiced.
extension WireGuardKeepaliveTests {
    /// Sets the device node's mode for a test and puts back exactly the mode it found (`restore()`, from a defer).
    /// Other tests on the machine may open the node meanwhile; 0600 is this machine's normal state anyway.
    struct DeviceNodeMode {
        static let path = "/dev/net/tun"
        let found: mode_t

        init(setting mode: mode_t) throws {
            var info = stat()
            guard stat(Self.path, &info) == 0 else { throw SystemError("stat \(Self.path)", errno: errno) }
            found = info.st_mode & 0o7777
            guard chmod(Self.path, mode) == 0 else { throw SystemError("chmod \(Self.path)", errno: errno) }
        }

        func restore() { chmod(Self.path, found) }
    }

    @Test(
        "/dev/net/tun at 0600: sluiced opens it, the worker attaches it, wireguard-go runs on it (WG_TUN_FD=3) as sluice with CAP_NET_ADMIN only; handshake, ping, restart after kill -9"
    )
    func deviceNodeClosedToServiceUser() throws {
        let node = try DeviceNodeMode(setting: 0o600)
        defer { node.restore() }
        // What the keepalive worker's identity meets: even with CAP_NET_ADMIN, the node cannot be opened.
        let (denied, why) = Shell.run(
            "setpriv --reuid=sluice --regid=sluice --init-groups --inh-caps=+net_admin --ambient-caps=+net_admin -- sh -c 'exec 3<>/dev/net/tun' 2>&1"
        )
        #expect(
            denied != 0 && why.contains("Permission denied"),
            "sluice with CAP_NET_ADMIN opened a 0600 /dev/net/tun: \(why)")

        let setup = try Setup { link, key, farPublic, _ in
            Self.config(link: link, privateKey: key, farPublicKey: farPublic)
        }
        defer { setup.stop() }
        let (harness, ours, far, ourLink) = (setup.harness, setup.ours, setup.far, setup.link)
        far.configure(ourPublicKey: setup.ourPublic)
        try harness.start()
        func stat(_ key: String) -> Int64? { harness.worker("keepalive")?.stats["wg.\(ourLink).\(key)"] }

        #expect(harness.waitUntil(15) { stat("up") == 1 }, "link up\n\(harness.log)")
        #expect(harness.waitUntil(15) { Self.ping(ours, "10.203.0.2") }, "ping through the link\n\(harness.log)")
        #expect(
            harness.waitUntil(10) { stat("peers.ok") == 1 }, "handshake: \(harness.worker("keepalive")?.stats ?? [:])")
        #expect(!harness.log.contains("Permission denied"), "\(harness.log)")

        /// wireguard-go's identity, and the TUN it was given.
        func checkWireGuardGo(_ pid: pid_t) {
            let status = ProcessStatus.read(pid: pid)
            let sluice = ServiceAccount.lookup("sluice")
            #expect(
                status?.uid == sluice?.uid && status?.uid != 0,
                "wireguard-go runs as sluice: \(String(describing: status))")
            let netAdmin = UInt64(1) << 12
            #expect(
                status?.capEffective == netAdmin && status?.capPermitted == netAdmin && status?.capAmbient == netAdmin)
            #expect(status?.noNewPrivs == true)
            let environment =
                (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))).map {
                    $0.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                } ?? []
            #expect(environment.contains("WG_TUN_FD=3"), "\(environment)")
            let fd3 = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/3")
            #expect(fd3 == "/dev/net/tun", "fd 3 of wireguard-go: \(fd3 ?? "none")")
        }
        let first = pid_t(try #require(stat("pid")))
        try #require(first > 0, "never kill(0): that is the test's own process group")
        checkWireGuardGo(first)
        // The persistent device, with the framing this wireguard-go expects of a descriptor it is given.
        let details = Self.sh("ip -n \(ours) -d link show \(ourLink)")
        #expect(details.contains("persist on"), "\(details)")
        let version = Self.sh("/usr/bin/wireguard-go --version | head -1")
        let date = Int(version.split(separator: ".").last?.prefix(8) ?? "") ?? 0
        #expect(details.contains(date <= 20_230_223 ? "pi on" : "vnet_hdr on"), "\(version): \(details)")
        // sluiced keeps none of the descriptors it handed out.
        let sluicedFDs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(harness.pid)/fd")) ?? []
        let tunFDs = sluicedFDs.filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(harness.pid)/fd/\($0)"))
                == "/dev/net/tun"
        }
        #expect(tunFDs.isEmpty, "sluiced holds /dev/net/tun descriptors: \(tunFDs)")
        // A control client is not a worker: it gets no descriptor.
        let answer = harness.request(.tunDescriptorRequest)
        guard case .error(let report)? = answer else {
            Issue.record("a control client got \(String(describing: answer)) for tunDescriptorRequest")
            return
        }
        #expect(report.code == .unknownMessageType, "\(report)")

        // kill -9 of wireguard-go: the restart asks sluiced again and comes back on a new descriptor.
        kill(first, SIGKILL)
        usleep(100_000)
        #expect(
            harness.waitUntil(5) { Self.ping(ours, "10.203.0.2") }, "ping back within 5 s after kill -9\n\(harness.log)"
        )
        #expect(harness.waitUntil(5) { stat("restarts") == 1 && stat("up") == 1 && stat("pid") != Int64(first) })
        checkWireGuardGo(pid_t(try #require(stat("pid"))))
        #expect(!harness.log.contains("cannot start wireguard-go"), "\(harness.log)")
    }
}
