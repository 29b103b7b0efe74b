import Foundation
import IPC
import SluiceSystem
import SluiceTestSupport
import Supervision
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `sluiced run` as a user runs it: real worker processes, real signals, real sd_notify
/// datagrams to a socket the test owns, status over the real control socket.
@Suite("sluiced run (integration)", .serialized)
struct SupervisorIntegrationTests {
    @Test("READY=1 once every worker is ready, STATUS= names them all, WATCHDOG=1 stops while a worker is stopped")
    func notifyAndWatchdog() throws {
        let supervisor = "  heartbeat-interval: 250ms\n  heartbeat-timeout: 3s\n"
        let harness = try SluicedHarness(config: SluicedHarness.config(keepalive: true, supervisor: supervisor))
        let notify = try NotifyListener(directory: harness.directory)
        defer {
            harness.stop()
            notify.stop()
        }
        // WATCHDOG_USEC=1s: sluiced pings every 500 ms while all heartbeats are healthy.
        try harness.start(environment: ["NOTIFY_SOCKET=\(notify.path)", "WATCHDOG_USEC=1000000"])
        #expect(
            harness.waitUntil(10) { notify.assignments.contains { $0.line == "READY=1" } },
            "no READY=1; log:\n\(harness.log)")
        let readyAt = try #require(notify.assignments.first { $0.line == "READY=1" }).at
        let statuses = notify.assignments.filter { $0.line.hasPrefix("STATUS=") && $0.at == readyAt }.map(\.line)
        #expect(statuses.contains("STATUS=tun ready, dns ready, keepalive ready"), "\(statuses)")
        // Every worker really was ready when READY=1 went out.
        let workers = try #require(harness.status()).workers
        #expect(workers.allSatisfy { $0.state == "ready" }, "\(workers)")

        #expect(
            harness.waitUntil(3) { notify.assignments.filter { $0.line == "WATCHDOG=1" }.count >= 3 },
            "no periodic WATCHDOG=1")

        let dns = try #require(harness.worker("dns")?.pid)
        let stoppedAt = MonotonicClock.now
        kill(dns, SIGSTOP)
        defer { kill(dns, SIGCONT) }
        #expect(
            harness.waitUntil(8) { (harness.worker("dns")?.pid).map { $0 != dns } ?? false },
            "dns was not restarted; log:\n\(harness.log)")
        // When the hung worker was killed, from its recorded exit (measured from before the
        // request, so this can only be early, never late).
        let askedAt = MonotonicClock.now
        let secondsAgo = try #require(harness.worker("dns")?.lastExit?.secondsAgo)
        let restartedAt = askedAt - UInt64(secondsAgo * 1e9)
        // The first unanswered beat goes out within one interval (250 ms) of the SIGSTOP and
        // the worker counts as unhealthy interval + 500 ms after it: from 1 s on, no ping may
        // arrive until it is killed at the 3 s timeout. (While it waits out its restart delay
        // the supervisor is in control again, and pings resume.)
        let pings = notify.assignments.filter { $0.line == "WATCHDOG=1" }.map(\.at)
        let silentFrom = stoppedAt + 1_050_000_000
        let during = pings.filter { $0 > silentFrom && $0 < restartedAt }
        #expect(
            during.isEmpty,
            "WATCHDOG=1 at \(during.map { Double($0 - stoppedAt) / 1e9 }) s after SIGSTOP; killed at \(Double(restartedAt - stoppedAt) / 1e9) s"
        )
        #expect(restartedAt - stoppedAt >= 3_000_000_000, "restarted before the heartbeat timeout")
        #expect(
            restartedAt > silentFrom + 1_500_000_000, "the silent gap before the restart is too short to prove anything"
        )
        // And pings resume once the new worker answers.
        #expect(harness.waitUntil(3) { notify.assignments.contains { $0.line == "WATCHDOG=1" && $0.at > restartedAt } })
        let dnsAfter = try #require(harness.worker("dns"))
        #expect(dnsAfter.restarts == 1)
        #expect(dnsAfter.lastExit?.reason == "heartbeat timeout")
        #expect(dnsAfter.lastExit?.signal == SIGKILL)
    }

    @Test(
        "kill -9 of each worker: a new pid answers within 1 s and status shows the restart and the signal",
        arguments: ["tun", "dns", "keepalive"])
    func killNine(worker: String) throws {
        let harness = try SluicedHarness(config: SluicedHarness.config(keepalive: true))
        defer { harness.stop() }
        try harness.start()
        #expect(
            harness.waitUntil(10) { harness.status()?.workers.allSatisfy { $0.state == "ready" } ?? false },
            "\(harness.log)")
        let old = try #require(harness.worker(worker)?.pid)
        let killedAt = MonotonicClock.now
        kill(old, SIGKILL)
        let answered = harness.waitUntil(1) {
            guard let w = harness.worker(worker), let pid = w.pid, pid != old else { return false }
            return w.state == "ready" && (w.stats["heartbeats.answered"] ?? 0) >= 0
        }
        let elapsed = Double(MonotonicClock.now - killedAt) / 1e9
        #expect(answered, "no new \(worker) pid ready within 1 s (\(elapsed) s); log:\n\(harness.log)")
        let status = try #require(harness.worker(worker))
        #expect(status.restarts == 1)
        #expect(status.lastExit?.signal == SIGKILL)
        #expect(status.lastExit?.signalName == "SIGKILL")
        // The other workers were left alone.
        for other in ["tun", "dns", "keepalive"] where other != worker {
            #expect(harness.worker(other)?.restarts == 0)
        }
    }

    @Test(
        "a worker channel held by another process than the one sluiced started is refused: its hello names the wrong pid"
    )
    func channelOfAnotherProcess() throws {
        let harness = try SluicedHarness(config: SluicedHarness.config(tun: false))
        defer { harness.stop() }
        // What sluiced starts is a shell; the real dns worker runs as its child and inherits the channel (fd 3),
        // as a descriptor leaked to another process would be: the worker answers hello with its own pid.
        let script = harness.directory + "/leaky-dns-worker"
        try "#!/bin/sh\n\(SluicedHarness.productsDirectory)/sluice-dns-worker \"$@\" &\nwait\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        try harness.start(arguments: ["--worker-executable", "dns=\(script)"])
        #expect(
            harness.waitUntil(10) { harness.log.contains("its channel answered hello as pid") },
            "the impostor was not refused; log:\n\(harness.log)")
        #expect(harness.log.contains("but sluiced started pid"))
        // Never served: no dns worker was ever taken as ready.
        #expect(harness.status()?.workers.first { $0.name == "dns" }?.state != "ready")
        #expect(!harness.log.contains("sluice-dns ready"), "\(harness.log)")
    }

    @Test("a worker that exits at once every time: sluiced gives up after the intensity limit and exits 1")
    func intensityLimit() throws {
        let harness = try SluicedHarness(
            config: SluicedHarness.config(
                supervisor:
                    "  restart:\n    min-delay: 10ms\n    max-delay: 50ms\n    max-restarts: 3\n    window: 30s\n"))
        defer { harness.stop() }
        try harness.start(arguments: ["--worker-executable", "dns=/bin/false"])
        #expect(harness.waitUntil(10) { harness.pollExit() != nil }, "sluiced did not give up; log:\n\(harness.log)")
        #expect(harness.exitStatus == 1)
        let log = harness.log
        #expect(log.contains("giving up on sluice-dns: 4 failures within 30s (limit 3)"), "\(log)")
        #expect(harness.children.isEmpty)
        // The healthy tun worker was stopped in order, not orphaned.
        #expect(log.contains("sluice-tun exited with status 0 during shutdown"), "\(log)")
    }

    @Test(
        "as root: the tun worker holds CAP_NET_ADMIN only, the dns worker nothing, both as the service user",
        .enabled(if: geteuid() == 0, "needs root"),
        .enabled(if: ServiceAccount.lookup("sluice") != nil, "needs the sluice user (Scripts/install-deps.sh)"))
    func leastPrivilege() throws {
        let harness = try SluicedHarness(config: SluicedHarness.config(keepalive: true))
        defer { harness.stop() }
        try harness.start()
        #expect(harness.waitUntil(10) { harness.status()?.workers.allSatisfy { $0.state == "ready" } ?? false })
        let account = try #require(ServiceAccount.lookup("sluice"))
        let netAdmin = Capability.netAdmin.mask
        for (name, caps) in [("tun", netAdmin), ("keepalive", netAdmin), ("dns", UInt64(0))] {
            let pid = try #require(harness.worker(name)?.pid)
            let status = try #require(ProcessStatus.read(pid: pid))
            #expect(status.uid == account.uid, "\(name) uid")
            #expect(status.noNewPrivs, "\(name) NoNewPrivs")
            #expect(status.capEffective == caps, "\(name) CapEff \(String(status.capEffective, radix: 16))")
            #expect(status.capPermitted == caps, "\(name) CapPrm")
            #expect(status.capAmbient == caps, "\(name) CapAmb")
            #expect(status.capInheritable == caps, "\(name) CapInh")
            #expect(status.capBounding == caps, "\(name) CapBnd \(String(status.capBounding, radix: 16))")
        }
        // The control socket: mode 0660, group of the service user.
        var st = stat()
        #expect(stat(harness.runtimeDirectory + "/control.sock", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o660)
        #expect(st.st_gid == account.gid)
    }

    @Test(
        "as root with a missing service user, sluiced refuses to start and says how to create it",
        .enabled(if: geteuid() == 0, "needs root"))
    func missingUser() throws {
        let harness = try SluicedHarness(config: SluicedHarness.config(supervisor: "  user: sluice-no-such-user\n"))
        defer { harness.stop() }
        try harness.start()
        #expect(harness.waitUntil(5) { harness.pollExit() != nil })
        #expect(harness.exitStatus == 1)
        #expect(harness.log.contains("useradd --system"), "\(harness.log)")
        #expect(harness.children.isEmpty)
    }

    @Test(
        "SIGHUP with a broken config keeps the workers and logs file:line:column; SIGTERM ends everything within 10 s")
    func reloadAndStop() throws {
        let harness = try SluicedHarness(config: SluicedHarness.config())
        defer { harness.stop() }
        try harness.start()
        #expect(
            harness.waitUntil(10) {
                harness.status()?.workers.filter(\.enabled).allSatisfy { $0.state == "ready" } ?? false
            })
        let before = try #require(harness.status()).workers.compactMap(\.pid)
        #expect(before.count == 2)
        // Without journald, worker lines come out on sluiced's stderr with the worker's name.
        #expect(harness.log.contains("sluice-tun info: configuration generation 1 applied"), "\(harness.log)")

        let good = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        try (good + "mode: sideways\n").write(toFile: harness.configPath, atomically: true, encoding: .utf8)
        let line = good.split(separator: "\n", omittingEmptySubsequences: false).count
        harness.signal(SIGHUP)
        #expect(
            harness.waitUntil(5) { harness.log.contains("reload refused: \(harness.configPath):\(line):7: mode:") },
            "\(harness.log)")
        #expect(try #require(harness.status()).workers.compactMap(\.pid) == before)
        #expect(harness.status()?.generation == 1)

        // A good change is applied in place: same pids, next generation, pushed to workers.
        try good.replacingOccurrences(of: "log-level: debug", with: "log-level: info").write(
            toFile: harness.configPath, atomically: true, encoding: .utf8)
        harness.signal(SIGHUP)
        #expect(harness.waitUntil(5) { harness.status()?.generation == 2 })
        #expect(
            harness.waitUntil(5) {
                harness.status()?.workers.filter(\.enabled).allSatisfy { $0.stats["config.generation"] == 2 } ?? false
            })
        #expect(try #require(harness.status()).workers.compactMap(\.pid) == before)

        let stopAt = MonotonicClock.now
        harness.signal(SIGTERM)
        #expect(harness.waitUntil(10) { harness.pollExit() != nil })
        #expect(Double(MonotonicClock.now - stopAt) / 1e9 < 10)
        #expect(harness.exitStatus == 0)
        for pid in before { #expect(!SluicedHarness.isAlive(pid), "worker \(pid) outlived sluiced") }
    }

    @Test("workers exit on their own when sluiced dies (no orphans)")
    func noOrphans() throws {
        let harness = try SluicedHarness(config: SluicedHarness.config())
        defer { harness.stop() }
        try harness.start()
        #expect(
            harness.waitUntil(10) {
                harness.status()?.workers.filter(\.enabled).allSatisfy { $0.state == "ready" } ?? false
            })
        let workers = try #require(harness.status()).workers.compactMap(\.pid)
        harness.signal(SIGKILL)
        #expect(harness.waitUntil(5) { harness.pollExit() != nil })
        #expect(
            harness.waitUntil(3) { workers.allSatisfy { !SluicedHarness.isAlive($0) } },
            "workers survived their supervisor")
    }
}
