import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

@testable import Supervision

#if canImport(Glibc)
import Glibc
#endif

/// Who may use the control socket: decided from SO_PEERCRED, not from the socket file's mode alone.
@Suite("control socket access")
struct ControlAccessTests {
    @Test("root, the owner and the control group may connect; the workers' service user and strangers may not")
    func policy() {
        let access = ControlAccess(owner: 0, serviceUser: 999, group: 995)
        func who(_ uid: uid_t, _ gid: gid_t, _ groups: [gid_t] = []) -> String? {
            access.refusal(PeerCredentials(pid: 1, uid: uid, gid: gid), supplementaryGroups: groups)
        }
        #expect(who(0, 0) == nil)
        #expect(who(1000, 995) == nil, "primary group")
        #expect(who(1000, 1000, [27, 995]) == nil, "supplementary group")
        #expect(who(999, 995)?.contains("service user") == true, "a worker's uid, even in the group")
        #expect(who(65534, 65534)?.contains("only root, uid 0 or members of group 995") == true)
        // Unprivileged sluiced: workers share its uid; the owner is let in (it is the same user).
        let own = ControlAccess(owner: 1000, serviceUser: nil, group: nil)
        #expect(own.refusal(PeerCredentials(pid: 1, uid: 1000, gid: 1000), supplementaryGroups: []) == nil)
        #expect(
            own.refusal(PeerCredentials(pid: 1, uid: 1001, gid: 1000), supplementaryGroups: [])?.contains("uid 1001")
                == true)
        #expect(ControlAccess.supplementaryGroups(of: getpid()) == ControlAccess.supplementaryGroups(of: getpid()))
    }

    @Test(
        "as root: with the socket file opened to everyone, nobody and the service user are still refused; root is served",
        .enabled(if: geteuid() == 0, "needs root to switch users"))
    func refusedByCredentials() throws {
        let harness = try SluicedHarness(config: SluicedHarness.config(tun: false, dns: false))
        defer { harness.stop() }
        try harness.start()
        #expect(harness.waitUntil(10) { harness.status() != nil }, "\(harness.log)")
        let socket = harness.runtimeDirectory + "/control.sock"
        chmod(socket, 0o666)
        chmod(harness.runtimeDirectory, 0o755)
        let sluiced = SluicedHarness.productsDirectory + "/sluiced"
        for user in ["nobody", "sluice"] {
            let (code, output) = Shell.run(
                "setpriv --reuid \(user) --regid \(user == "nobody" ? "nogroup" : "sluice") --init-groups \(sluiced) status --runtime-dir \(harness.runtimeDirectory) 2>&1"
            )
            #expect(code != 0, "\(user) was served: \(output)")
            #expect(output.contains("permission denied"), "\(user): \(output)")
        }
        #expect(harness.log.contains("control socket: refused"), "\(harness.log)")
        #expect(harness.status() != nil, "root still served")
    }
}
