#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Loads and validates a sluice configuration file (a mihomo-compatible YAML subset plus sluice's own sections).
///
/// Loading never throws and never traps on input: every problem becomes a `ConfigDiagnostic`, all of them are
/// collected in one pass, and `configuration` is nil exactly when at least one is an error.
public enum ConfigLoader {
    /// Reads and loads the file at `path`; an unreadable file is reported as an error diagnostic.
    public static func load(contentsOfFile path: String) -> ConfigLoadResult {
        switch readFile(path) {
        case .success(let bytes):
            return load(bytes: bytes, fileName: path)
        case .failure(let failure):
            let diagnostic = ConfigDiagnostic(
                severity: .error, file: path, line: 1, column: 1, keyPath: "",
                message: failure.message)
            return ConfigLoadResult(configuration: nil, diagnostics: [diagnostic])
        }
    }

    /// Loads configuration text; `fileName` is used in diagnostics exactly as given.
    public static func load(yaml: String, fileName: String) -> ConfigLoadResult {
        load(bytes: Array(yaml.utf8), fileName: fileName)
    }

    /// Loads configuration bytes; `fileName` is used in diagnostics exactly as given.
    public static func load(bytes: [UInt8], fileName: String) -> ConfigLoadResult {
        let context = DecodingContext()
        var configuration = SluiceConfiguration()
        do throws(YAMLErrors) {
            if let root = try YAMLParser.parse(bytes: bytes, fileName: fileName) {
                ConfigurationDecoder(context: context).decode(root, into: &configuration)
            }
        } catch {
            for problem in error.errors {
                context.error(problem.mark, "", problem.message)
            }
        }
        // Sections are decoded in dependency order, not file order; present the findings in file order.
        let diagnostics = context.diagnostics.enumerated().sorted { lhs, rhs in
            (lhs.element.line, lhs.element.column, lhs.offset) < (rhs.element.line, rhs.element.column, rhs.offset)
        }.map(\.element)
        let hasErrors = diagnostics.contains { $0.isError }
        return ConfigLoadResult(configuration: hasErrors ? nil : configuration, diagnostics: diagnostics)
    }

    /// The largest configuration file we read; far beyond any real config, small enough to refuse /dev/zero.
    static let maximumFileSize = 64 << 20

    /// Why a file could not be read, as a message for the diagnostic.
    private struct ReadFailure: Error {
        var message: String
    }

    private static func readFile(_ path: String) -> Result<[UInt8], ReadFailure> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            return .failure(ReadFailure(message: "cannot open the configuration file \"\(path)\": \(errnoText())"))
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(ReadFailure(message: "cannot read the configuration file \"\(path)\": \(errnoText())"))
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
            if bytes.count > maximumFileSize {
                return .failure(
                    ReadFailure(
                        message: "the configuration file \"\(path)\" is larger than \(maximumFileSize >> 20) MiB"))
            }
        }
        return .success(bytes)
    }

    private static func errnoText() -> String {
        let code = errno
        return "\(String(cString: strerror(code))) (errno \(code))"
    }
}
