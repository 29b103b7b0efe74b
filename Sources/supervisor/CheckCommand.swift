import ArgumentParser
import SluiceConfig
import SluiceOutbounds

#if canImport(Glibc)
import Glibc
#endif

/// `sluiced check -c FILE`: load and validate a configuration, print every problem.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file and print its errors and warnings.",
        discussion: "Exit status: 0 when the file is valid (warnings allowed), 1 when it has errors."
    )

    @Option(name: [.customShort("c"), .customLong("config")], help: "The YAML configuration file.")
    var config: String

    @Flag(name: .shortAndLong, help: "Print nothing but the problems.")
    var quiet = false

    func run() throws {
        let result = ConfigLoader.load(contentsOfFile: config, catalog: OutboundRegistry.catalog)
        for diagnostic in result.diagnostics {
            writeStandardError(diagnostic.description + "\n")
        }
        let errors = result.diagnostics.filter { $0.severity == .error }.count
        let warnings = result.diagnostics.count - errors
        if result.hasErrors {
            writeStandardError("\(config): invalid: \(plural(errors, "error")), \(plural(warnings, "warning"))\n")
            throw ExitCode(1)
        }
        if !quiet {
            print("\(config): valid (\(plural(warnings, "warning")))")
        }
    }
}

func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }

func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
