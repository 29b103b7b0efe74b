import Glibc
import SluiceSystem
import Testing

/// The C spawn helper: descriptors land where asked, nothing else leaks, failures name the
/// step, and the child's privileges are what we asked for.
@Suite("ProcessSpawner")
struct ProcessSpawnerTests {
    /// Runs `/bin/sh -c script` with `extra` installed as fd 3 and its stdout captured.
    private func run(_ script: String, fd3: CInt? = nil, capabilities: UInt64 = 0) throws -> (
        output: String, exit: ProcessSpawner.Exit
    ) {
        let out = try Descriptors.pipe()
        let request = SpawnRequest(
            executable: "/bin/sh", arguments: ["-c", script], environment: ["PATH=/usr/bin:/bin"],
            descriptors: [nil, out.write.rawValue, out.write.rawValue, fd3], account: nil, capabilities: capabilities)
        let pid = try ProcessSpawner.spawn(request)
        out.write.close()
        var output: [UInt8] = []
        while true {
            let chunk = try Descriptors.read(out.read.rawValue)
            if chunk.isEmpty { break }
            output += chunk
        }
        let exit = try #require(ProcessSpawner.wait(for: pid))
        return (String(decoding: output, as: UTF8.self), exit)
    }

    @Test("fd 3 is the descriptor we passed, and no other descriptor leaks into the child")
    func descriptors() throws {
        let (ours, theirs) = try UnixSocket.pair(.stream)
        // A descriptor of ours that is NOT close-on-exec must still not reach the child.
        let leaky = dup(ours.rawValue)
        defer { close(leaky) }
        let result = try run("echo hello >&3; ls /proc/self/fd | sort -n | tr '\\n' ' '", fd3: theirs.rawValue)
        #expect(result.exit.code == 0)
        // 0-3 are ours; the 4th entry is the directory fd `ls` itself opened.
        let fds = result.output.split(separator: " ").compactMap { Int($0) }
        #expect(Array(fds.prefix(4)) == [0, 1, 2, 3], "child saw descriptors \(fds)")
        #expect(fds.count <= 5, "child saw descriptors \(fds)")
        theirs.close()
        #expect(String(decoding: try Descriptors.read(ours.rawValue), as: UTF8.self) == "hello\n")
    }

    @Test("a missing executable is reported as a failed execve with ENOENT")
    func missingExecutable() {
        let request = SpawnRequest(
            executable: "/nonexistent/sluice-worker", arguments: [], environment: [], descriptors: [nil, nil, nil],
            account: nil, capabilities: 0)
        do {
            _ = try ProcessSpawner.spawn(request)
            Issue.record("spawn of a missing file succeeded")
        } catch {
            #expect(error.errno == ENOENT)
            #expect(error.call.contains("execve"), "\(error)")
        }
    }

    @Test("the child has no_new_privs, its own session, and no capabilities when none were asked for")
    func privileges() throws {
        let result = try run(
            "grep -E '^(NoNewPrivs|CapEff|CapPrm|CapInh|CapAmb):' /proc/self/status; ps -o sid= -p $$; echo $$")
        #expect(result.exit.code == 0)
        #expect(result.output.contains("NoNewPrivs:\t1"))
        for line in [
            "CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapInh:\t0000000000000000",
            "CapAmb:\t0000000000000000",
        ] {
            #expect(result.output.contains(line), "\(line) missing in:\n\(result.output)")
        }
        let numbers = result.output.split(separator: "\n").suffix(2).map { $0.trimmingCharacters(in: " ") }
        #expect(numbers.count == 2 && numbers[0] == numbers[1], "the child should lead its own session: \(numbers)")
    }

    @Test(
        "as root, CAP_NET_ADMIN alone is kept in every set including ambient",
        .enabled(if: geteuid() == 0, "needs root"))
    func netAdminOnly() throws {
        let result = try run("grep -E '^Cap(Eff|Prm|Amb):' /proc/self/status", capabilities: Capability.netAdmin.mask)
        for set in ["CapEff", "CapPrm", "CapAmb"] {
            #expect(result.output.contains("\(set):\t0000000000001000"), "\(set) in:\n\(result.output)")
        }
    }

    @Test("ProcessStatus reads our own /proc entry")
    func ownStatus() throws {
        let status = try #require(ProcessStatus.read(pid: getpid()))
        #expect(status.uid == getuid())
        #expect(status.parentPID == getppid())
        #expect(ProcessStatus.read(pid: 0x3FFF_FFFF) == nil)
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
