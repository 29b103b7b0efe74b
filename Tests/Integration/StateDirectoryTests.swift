import Foundation
import SluiceSystem
import SluiceTestSupport
import Supervision
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 18, point 1: what the workers keep in the state directory stays theirs across restarts, whoever took it
/// (systemd's StateDirectory= gives it to root at every start of a unit without User=), and a store that cannot be
/// used is a problem shown in `sluiced status` and the StatusText.
@Suite(
    "state directory (integration)", .serialized,
    .enabled(if: geteuid() == 0, "needs root"),
    .enabled(if: ServiceAccount.lookup("sluice") != nil, "needs the sluice user (Scripts/install-deps.sh)"))
struct StateDirectoryTests {
    static let names = (1...5).map { "persist-\($0).example" }

    static func config() -> String {
        SluicedHarness.config(tun: false)
    }

    /// NAME -> address, asked of the dns worker in `order`.
    static func resolve(_ harness: SluicedHarness, _ order: [String]) -> [String: String] {
        var answers: [String: String] = [:]
        for name in order {
            answers[name] = Shell.run(
                "ip netns exec \(harness.namespace!) kdig @127.0.0.1 -p 1053 +timeout=2 +retry=0 +short \(name) A"
            ).1
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return answers
    }

    static func owner(_ path: String) -> uid_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_uid : nil
    }

    @Test(
        "files root took back are given to the service user at start: the fake-IP mapping survives; links and hard links are left alone"
    )
    func ownershipRepaired() throws {
        let account = try #require(ServiceAccount.lookup("sluice"))
        let harness = try SluicedHarness(config: Self.config())
        defer { harness.stop() }
        try harness.start()
        #expect(harness.waitUntil(10) { harness.worker("dns")?.state == "ready" }, "\(harness.log)")
        let before = Self.resolve(harness, Self.names)
        #expect(before.values.allSatisfy { $0.hasPrefix("198.18.") }, "\(before)")
        #expect(Set(before.values).count == 5)
        #expect(harness.terminate() == 0)

        // What systemd does at the next start of the unit: everything root's, the store 0600.
        let state = harness.stateDirectory
        #expect(
            Shell.run("chown -R root:root \(state) && chmod 0750 \(state) && chmod 0600 \(state)/fake-ip.store").0 == 0)
        // And what a hostile worker might have left: a symbolic link and a hard link to files outside.
        let outside = harness.directory + "/outside"
        try "root's".write(toFile: outside, atomically: true, encoding: .utf8)
        #expect(symlink(outside, state + "/link") == 0)
        #expect(link(outside, state + "/hardlink") == 0)
        try FileManager.default.createDirectory(atPath: state + "/cache/deeper", withIntermediateDirectories: true)
        try "x".write(toFile: state + "/cache/deeper/file", atomically: true, encoding: .utf8)

        // As under systemd: root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (not in the unit's bounding set),
        // so sluiced may not look into a directory once it is the service user's (mode 0750).
        try harness.start(launcher: ["/usr/bin/setpriv", "--bounding-set=-dac_override,-dac_read_search"])
        #expect(harness.waitUntil(10) { harness.worker("dns")?.state == "ready" }, "\(harness.log)")
        let after = Self.resolve(harness, Self.names.reversed())
        #expect(after == before, "the mapping changed across the restart; log:\n\(harness.log)")
        #expect(!harness.log.contains("cannot open the fake-ip store"), "\(harness.log)")
        #expect(harness.log.contains("gave"), "\(harness.log)")
        for path in [state, state + "/fake-ip.store", state + "/cache", state + "/cache/deeper/file"] {
            #expect(Self.owner(path) == account.uid, "\(path) is not the service user's")
        }
        #expect(Self.owner(outside) == 0, "a file outside the state directory was given away")
        #expect(Self.owner(state + "/link") == 0)
        #expect(harness.worker("dns")?.problems == [])
    }

    @Test("a fake-ip store that cannot be opened is a PROBLEM in sluiced status, its table and the StatusText")
    func unusableStoreIsAProblem() throws {
        let harness = try SluicedHarness(config: Self.config())
        let notify = try NotifyListener(directory: harness.directory)
        defer {
            harness.stop()
            notify.stop()
        }
        // A directory where the store should be: no owner change can make it a file.
        try FileManager.default.createDirectory(
            atPath: harness.stateDirectory + "/fake-ip.store", withIntermediateDirectories: true)
        try harness.start(environment: ["NOTIFY_SOCKET=\(notify.path)"])
        #expect(harness.waitUntil(10) { harness.worker("dns")?.state == "ready" }, "\(harness.log)")
        #expect(
            harness.waitUntil(5) {
                harness.worker("dns")?.problems.contains { $0.contains("cannot read the fake-ip store") } ?? false
            },
            "no problem reported; status: \(String(describing: harness.worker("dns")))\n\(harness.log)")
        let status = try #require(harness.status())
        #expect(status.summary.contains("PROBLEM dns: cannot read the fake-ip store"), "\(status.summary)")
        #expect(status.renderTable().contains("PROBLEM dns: cannot read the fake-ip store"))
        #expect(
            harness.waitUntil(3) {
                notify.assignments.contains { $0.line.hasPrefix("STATUS=") && $0.line.contains("PROBLEM dns") }
            },
            "\(notify.assignments.map(\.line))")
        // Names still resolve: the pool works, only its persistence is gone.
        #expect(Self.resolve(harness, ["still.example"])["still.example"]?.hasPrefix("198.18.") == true)
    }
}
