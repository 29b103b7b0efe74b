import Foundation
import IPC
import SluiceSystem
import SluiceTestSupport
import Supervision
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 18, point 2: hostile clients on `control.sock` must neither keep the slots nor stop sluiced's loop.
@Suite("control socket under hostile clients", .serialized)
struct ControlSocketTests {
    /// A raw client descriptor (the caller closes it); nil while the backlog is full.
    static func connect(_ path: String) -> CInt? { SluicedHarness.connectNow(path)?.takeDescriptorOwnership() }

    static func openDescriptors(_ pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// Connects, retrying for a while when the backlog is full; nil when it stays full.
    static func connectPatiently(_ path: String, seconds: Double = 2) -> CInt? {
        let deadline = MonotonicClock.now + UInt64(seconds * 1e9)
        while MonotonicClock.now < deadline {
            if let fd = connect(path) { return fd }
            usleep(2_000)
        }
        return nil
    }

    @Test(
        "300 garbage clients, 100 that connect and close, 10 that stay with half a frame: status, restarts, SIGTERM and descriptors are as before"
    )
    func garbageClients() throws {
        let harness = try SluicedHarness(config: SluicedHarness.config(tun: false))
        defer { harness.stop() }
        try harness.start()
        #expect(harness.waitUntil(10) { harness.worker("dns")?.state == "ready" }, "\(harness.log)")
        let path = harness.runtimeDirectory + "/control.sock"
        // Settle: the start-up clients of the status calls above have gone.
        usleep(300_000)
        let baseline = Self.openDescriptors(harness.pid)

        var rng = SplitMix64(seed: 18)
        var garbageSent = 0
        for _ in 0..<300 {
            guard let fd = Self.connectPatiently(path) else { continue }
            var bytes = [UInt8](repeating: 0, count: Int.random(in: 1024...4096, using: &rng))
            for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
            if bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 { garbageSent += 1 }
            close(fd)
        }
        var burst = 0
        for _ in 0..<100 {
            guard let fd = Self.connect(path) else { continue }
            burst += 1
            close(fd)
        }
        #expect(garbageSent == 300, "only \(garbageSent) garbage clients got in: sluiced stopped accepting")
        print("control socket: \(garbageSent) garbage clients, \(burst) of 100 connect-and-close got in")

        // Served again at once: the slots of the garbage clients were freed as they were read.
        #expect(
            harness.waitUntil(3) { harness.status() != nil }, "status refused after the garbage; log:\n\(harness.log)")
        #expect(harness.log.contains("bad magic"), "the garbage was never read")

        // Half a hello frame (its first 10 bytes), then nothing; and a client that says hello, then half a request.
        // Neither may keep its slot: sluiced closes them within its deadline (3 s), saying nothing.
        let hello = Frame(.hello(Hello(role: .controlClient, pid: UInt32(getpid()), software: "half")), requestID: 1)
            .encoded()
        var halves: [CInt] = []
        for _ in 0..<10 {
            guard let fd = Self.connectPatiently(path) else { continue }
            _ = hello.withUnsafeBytes { write(fd, $0.baseAddress, 10) }
            halves.append(fd)
        }
        if let fd = Self.connectPatiently(path) {
            let status = Frame(.statusRequest, requestID: 2).encoded()
            _ = hello.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            _ = status.withUnsafeBytes { write(fd, $0.baseAddress, 12) }
            halves.append(fd)
        }
        defer { for fd in halves { close(fd) } }
        #expect(halves.count == 11)
        let startedAt = MonotonicClock.now
        var ended = 0
        for (i, fd) in halves.enumerated() {
            // The one that said hello gets its helloAccept first; then, like the others, the end of the stream.
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while MonotonicClock.elapsed(from: startedAt, to: MonotonicClock.now) < 6_000_000_000 {
                guard (try? Descriptors.waitReadable(fd, timeoutMilliseconds: 100)) == true else { continue }
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 {
                    if i == 10 || received.isEmpty { ended += 1 }
                    break
                }
                received += buffer.prefix(n)
            }
        }
        let took = Double(MonotonicClock.now - startedAt) / 1e9
        #expect(ended == halves.count, "\(halves.count - ended) half-frame clients still held their slots after 6 s")
        #expect(took >= 2.5, "closed after \(took) s: before the deadline")
        print("control socket: \(ended) half-frame clients closed by sluiced after \(took) s")

        // Supervision goes on: a killed worker is restarted.
        let dns = try #require(harness.worker("dns")?.pid)
        kill(dns, SIGKILL)
        #expect(
            harness.waitUntil(5) {
                harness.worker("dns").map { $0.pid != nil && $0.pid != dns && $0.state == "ready" } ?? false
            },
            "the dns worker was not restarted; log:\n\(harness.log)")

        // Every descriptor the clients took is given back.
        #expect(
            harness.waitUntil(5) { Self.openDescriptors(harness.pid) <= baseline },
            "sluiced holds \(Self.openDescriptors(harness.pid)) descriptors, \(baseline) before the clients")

        // And it stops as usual.
        let stopAt = MonotonicClock.now
        harness.signal(SIGTERM)
        #expect(
            harness.waitUntil(10) { harness.pollExit() != nil }, "SIGTERM did not stop sluiced; log:\n\(harness.log)")
        #expect(Double(MonotonicClock.now - stopAt) / 1e9 < 8)
        #expect(harness.exitStatus == 0)
    }

    @Test("a burst of clients that connect and close before sluiced accepts them never blocks its loop")
    func vanishingBurst() throws {
        let harness = try SluicedHarness(config: SluicedHarness.config(tun: false))
        defer { harness.stop() }
        try harness.start()
        #expect(harness.waitUntil(10) { harness.worker("dns")?.state == "ready" }, "\(harness.log)")
        let path = harness.runtimeDirectory + "/control.sock"
        // Stop sluiced so the burst queues up unaccepted, more than the 64 slots; then let it run.
        kill(harness.pid, SIGSTOP)
        var queued = 0
        for _ in 0..<100 {
            guard let fd = Self.connect(path) else { continue }
            queued += 1
            close(fd)
        }
        kill(harness.pid, SIGCONT)
        print("control socket: \(queued) clients queued and gone before sluiced resumed")
        #expect(queued >= 64)
        #expect(
            harness.waitUntil(3) { harness.status() != nil },
            "sluiced does not answer after the burst; log:\n\(harness.log)")
        let dns = try #require(harness.worker("dns")?.pid)
        kill(dns, SIGKILL)
        #expect(
            harness.waitUntil(5) { harness.worker("dns").map { $0.pid != nil && $0.pid != dns } ?? false },
            "\(harness.log)")
        harness.signal(SIGTERM)
        #expect(
            harness.waitUntil(10) { harness.pollExit() != nil }, "SIGTERM did not stop sluiced; log:\n\(harness.log)")
    }
}

/// Issue 18, point 6: what `--version` says of the IPC protocol is what the codec speaks.
@Suite("version banners")
struct VersionBannerTests {
    @Test(
        "sluiced and every worker print the IPC protocol versions of the frame codec",
        arguments: [
            "sluiced", "sluice-tun-worker", "sluice-dns-worker", "sluice-keepalive",
        ])
    func banner(program: String) {
        let (code, output) = Shell.run("\(SluicedHarness.productsDirectory)/\(program) --version 2>&1")
        #expect(code == 0, "\(output)")
        let wanted =
            "IPC protocol \(FrameHeader.currentVersion), speaks \(FrameHeader.minimumVersion)-\(FrameHeader.currentVersion)"
        #expect(output.contains(wanted), "\(program) --version: \(output)")
    }
}
