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
    /// Reads and loads the file at `path`; an unreadable file is reported as an error diagnostic. `catalog`
    /// decodes the proxies (sluiced passes the outbound registry).
    public static func load(contentsOfFile path: String, catalog: any ProxyCatalog) -> ConfigLoadResult {
        switch readFile(path, describing: "the configuration file") {
        case .success(let bytes):
            return load(bytes: bytes, fileName: path, catalog: catalog)
        case .failure(let failure):
            let diagnostic = ConfigDiagnostic(
                severity: .error, file: path, line: 1, column: 1, keyPath: "",
                message: failure.message)
            return ConfigLoadResult(configuration: nil, diagnostics: [diagnostic])
        }
    }

    /// Loads configuration text; `fileName` is used in diagnostics exactly as given.
    public static func load(yaml: String, fileName: String, catalog: any ProxyCatalog) -> ConfigLoadResult {
        load(bytes: Array(yaml.utf8), fileName: fileName, catalog: catalog)
    }

    /// Loads configuration bytes; `fileName` is used in diagnostics exactly as given, and relative rule provider
    /// paths are resolved from its directory.
    public static func load(bytes: [UInt8], fileName: String, catalog: any ProxyCatalog) -> ConfigLoadResult {
        let context = DecodingContext()
        var configuration = SluiceConfiguration()
        do throws(YAMLErrors) {
            if let root = try YAMLParser.parse(bytes: bytes, fileName: fileName) {
                ConfigurationDecoder(context: context, catalog: catalog, baseDirectory: directory(of: fileName))
                    .decode(root, into: &configuration)
            }
        } catch {
            for problem in error.errors {
                context.error(problem.mark, "", problem.message)
            }
        }
        // Sections are decoded in dependency order, not file order; present the findings in file order: the
        // configuration file first, then each rule provider file in the order they were read.
        var fileRank: [String: Int] = [fileName: 0]
        for diagnostic in context.diagnostics where fileRank[diagnostic.file] == nil {
            fileRank[diagnostic.file] = fileRank.count
        }
        let diagnostics = context.diagnostics.enumerated().sorted { lhs, rhs in
            (fileRank[lhs.element.file]!, lhs.element.line, lhs.element.column, lhs.offset)
                < (fileRank[rhs.element.file]!, rhs.element.line, rhs.element.column, rhs.offset)
        }.map(\.element)
        let hasErrors = diagnostics.contains { $0.isError }
        return ConfigLoadResult(configuration: hasErrors ? nil : configuration, diagnostics: diagnostics)
    }

    /// The largest configuration file we read; far beyond any real config, small enough to refuse /dev/zero.
    static let maximumFileSize = 64 << 20

    /// The directory part of `path` (`.` when it has none), from which relative provider paths are resolved.
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `path` itself when absolute, otherwise `path` under `directory`.
    static func resolve(_ path: String, from directory: String) -> String {
        if path.hasPrefix("/") || directory == "." { return path }
        return directory.hasSuffix("/") ? directory + path : directory + "/" + path
    }

    /// Whether a file exists at `path` (of any kind).
    static func fileExists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Why a file could not be read, as a message for the diagnostic.
    struct ReadFailure: Error {
        var message: String
    }

    /// Reads a whole file of at most `maximumFileSize` bytes; `what` names it in messages ("the configuration
    /// file"). With `regularOnly`, devices, FIFOs and directories are refused before anything is read.
    static func readFile(_ path: String, describing what: String, regularOnly: Bool = false) -> Result<
        [UInt8], ReadFailure
    > {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | (regularOnly ? O_NONBLOCK : 0))
        if descriptor < 0 {
            return .failure(ReadFailure(message: "cannot open \(what) \"\(path)\": \(errnoText())"))
        }
        defer { close(descriptor) }
        if regularOnly {
            var status = stat()
            guard fstat(descriptor, &status) == 0 else {
                return .failure(ReadFailure(message: "cannot read \(what) \"\(path)\": \(errnoText())"))
            }
            guard status.st_mode & S_IFMT == S_IFREG else {
                return .failure(ReadFailure(message: "\(what) \"\(path)\" is not a regular file"))
            }
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(ReadFailure(message: "cannot read \(what) \"\(path)\": \(errnoText())"))
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
            if bytes.count > maximumFileSize {
                return .failure(
                    ReadFailure(
                        message: "\(what) \"\(path)\" is larger than \(maximumFileSize >> 20) MiB"))
            }
        }
        return .success(bytes)
    }

    private static func errnoText() -> String {
        let code = errno
        return "\(String(cString: strerror(code))) (errno \(code))"
    }
}
