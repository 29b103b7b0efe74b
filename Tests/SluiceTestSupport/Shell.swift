import Foundation
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Runs shell commands from tests.
package enum Shell {
    /// Runs `command` with bash and returns its exit status and combined output.
    ///
    /// Spawned with our own fork/exec helper and reaped with waitpid on its pid (Foundation's
    /// Process watches SIGCHLD process-wide and loses track when tests reap other children).
    /// Output goes to a file and we wait for the shell to exit, not for EOF on a pipe: a
    /// server the command leaves running in the background must not keep the test waiting.
    package static func run(_ command: String) -> (Int32, String) {
        let output = NSTemporaryDirectory() + "sluice-shell-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { unlink(output) }
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return (-1, "cannot create \(output)") }
        let environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        var request = SpawnRequest(
            executable: "/bin/bash", arguments: ["-c", command], environment: environment, descriptors: [nil, fd, fd],
            account: nil, capabilities: 0)
        request.limitCapabilities = false
        request.parentDeathSignal = SIGKILL
        let pid: pid_t
        do {
            pid = try ProcessSpawner.spawn(request)
        } catch {
            close(fd)
            return (-1, "\(error)")
        }
        close(fd)
        let code = ProcessSpawner.wait(for: pid)?.status ?? -1
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        return (code, text)
    }

    /// The package's root directory (the one holding Package.swift), from a test file's path.
    package static func packageRoot(from file: String = #filePath) -> String {
        var url = URL(fileURLWithPath: file)
        while url.path != "/"
            && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path)
        {
            url.deleteLastPathComponent()
        }
        return url.path
    }
}
