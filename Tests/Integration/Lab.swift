import Foundation
import SluiceSystem
import SluiceTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One throwaway lab (Scripts/lab.sh) with sluiced running in its router namespace.
final class Lab {
    static let packageRoot = Shell.packageRoot()

    let name: String
    let harness: SluicedHarness
    /// Held from init to ``stop()``: one lab at a time, across suites (which Swift Testing
    /// runs in parallel) and processes. Labs move 100 MiB files and thousands of
    /// connections and some check timings; side by side on two cores they starve each
    /// other's servers into timeouts that say nothing about sluice.
    private var turn: CInt
    /// When the turn began: ``stop()`` prints how long the lab was held (CI's time budget is mostly labs, one at a time).
    private var since: UInt64 = 0
    private let test: String

    /// Brings the lab up; ``start()`` runs sluiced in `<name>-router` with `config` (YAML).
    init(config: String, name: String = #function) throws {
        self.name = "l\(getpid() % 10000)\(UInt8.random(in: 0...255))"
        test = name
        let lock = open("/tmp/sluice-lab.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if lock >= 0 { flock(lock, LOCK_EX) }
        turn = lock
        since = MonotonicClock.now
        do {
            harness = try SluicedHarness(config: config, name: name)
        } catch {
            Self.release(lock)
            throw error
        }
        let (status, output) = Lab.shell("LAB=\(self.name) bash \(Lab.packageRoot)/Scripts/lab.sh up")
        guard status == 0 else {
            harness.stop()
            Self.release(lock)
            throw LabError("lab up failed: \(output)")
        }
    }

    private static func release(_ lock: CInt) {
        guard lock >= 0 else { return }
        flock(lock, LOCK_UN)
        close(lock)
    }

    func start(launcher: [String] = []) throws {
        try harness.start(namespace: "\(name)-router", launcher: launcher)
        guard harness.waitUntil(15, { harness.worker("tun")?.state == "ready" }) else {
            throw LabError("sluiced did not get ready; log:\n\(harness.log)")
        }
    }

    func stop() {
        harness.stop()
        _ = Lab.shell("LAB=\(name) bash \(Lab.packageRoot)/Scripts/lab.sh down")
        if turn >= 0 {
            print("lab \(test) held the lab for \(String(format: "%.1f", Double(MonotonicClock.now - since) / 1e9)) s")
        }
        Self.release(turn)
        turn = -1  // stop() may run twice (a helper's cleanup, then the test's defer)
    }

    /// Runs a shell command inside the lab namespace `role` (client, router, wan).
    @discardableResult
    func run(_ role: String, _ command: String, timeout: Int = 120) -> (Int32, String) {
        Lab.shell(
            "timeout \(timeout) ip netns exec \(name)-\(role) bash -c '\(command.replacingOccurrences(of: "'", with: "'\\''"))'"
        )
    }

    var servers: String { "\(Lab.packageRoot)/Scripts/lab-servers.py" }

    static func shell(_ command: String) -> (Int32, String) { Shell.run(command) }

    /// What auto-route may touch on the router: its rules and its main and sluice tables,
    /// both families, sorted (link-local routes excluded: the kernel adds them on its own time).
    func routingState() -> String {
        let (_, text) = run(
            "router",
            "ip -4 rule show; ip -6 rule show; ip -4 route show table main; ip -6 route show table main; "
                + "ip -4 route show table 2022 2>/dev/null; ip -6 route show table 2022 2>/dev/null")
        return text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("fe80::") }.sorted().joined(
            separator: "\n")
    }

    static let config = """
        log-level: info
        tun:
          enable: true
          device: sluice0
          auto-route: true
          auto-detect-interface: true
        rules:
          - IP-CIDR,10.77.200.4/32,REJECT
          - IP-CIDR6,fd77:200::4/128,REJECT
          - MATCH,DIRECT
        """
}

struct LabError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
