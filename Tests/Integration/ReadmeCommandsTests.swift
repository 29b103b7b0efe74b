import Foundation
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 18, point 4: the README's first two commands work for root on a fresh Debian machine, which has no
/// sudo, and tell anyone else what to type instead of failing with "command not found".
@Suite("README commands")
struct ReadmeCommandsTests {
    static let root = Shell.packageRoot()

    /// The first line of each ```sh block of the README, in order.
    static func commands() throws -> [String] {
        let text = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        var commands: [String] = []
        var inBlock = false
        var first = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") {
                inBlock = line == "```sh"
                first = inBlock
                continue
            }
            if inBlock, first {
                commands.append(String(line))
                first = false
            }
        }
        return commands
    }

    @Test("the main job and the tests are the README's first two commands, and neither needs sudo")
    func firstCommands() throws {
        let commands = try Self.commands()
        #expect(
            commands.prefix(2) == ["bash Scripts/demo.sh", "bash Scripts/install-deps.sh && bash Scripts/test.sh"],
            "\(commands)")
        for command in commands { #expect(!command.contains("sudo "), "\(command)") }
    }

    @Test(
        "run by another user, each root script stops at once and says how to become root",
        .enabled(if: geteuid() == 0, "needs root to become another user"),
        arguments: ["Scripts/demo.sh", "Scripts/chaos.sh", "Scripts/api-clients.sh"])
    func nonRoot(script: String) {
        // nobody, with no sudo on PATH: what a fresh machine's ordinary user meets.
        let (code, output) = Shell.run(
            "cd \(Self.root) && env -i PATH=/usr/bin:/bin setpriv --reuid=65534 --regid=65534 --clear-groups bash \(script) 2>&1"
        )
        #expect(code == 1, "\(script): exit \(code): \(output)")
        #expect(output.contains("run as root"), "\(output)")
        #expect(output.contains("as root:          bash \(script)"), "\(output)")
        #expect(output.contains("su -c 'bash \(script)'") || output.contains("sudo bash \(script)"), "\(output)")
        #expect(!output.contains("command not found"), "\(output)")
        #expect(!output.contains("installing"), "\(script) went on as another user: \(output)")
    }
}
