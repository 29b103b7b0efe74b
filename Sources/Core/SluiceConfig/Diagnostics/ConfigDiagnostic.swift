/// One finding about a configuration file: an error that stops it from loading or a warning about something
/// sluice ignores or changes. Rendered like a compiler message so editors and terminals can jump to it:
///
///     config.yaml:12:5: tun.mtu: expected an integer 576...65535, got "big"
///     config.yaml:3:1: warning: mixed-port: not supported by sluice; ignored
public struct ConfigDiagnostic: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Whether a diagnostic stops the configuration from loading.
    public enum Severity: String, Sendable, Equatable, Hashable, Codable {
        case error
        case warning
    }

    public var severity: Severity
    /// The file path exactly as the caller passed it to the loader.
    public var file: String
    /// 1-based line of the offending node.
    public var line: Int
    /// 1-based column of the offending node.
    public var column: Int
    /// Where in the configuration the problem is, e.g. `tun.mtu`, `proxies[2].cipher`; empty for file-level
    /// problems such as YAML syntax errors.
    public var keyPath: String
    /// What is wrong, what was expected and, where useful, what to do.
    public var message: String

    public init(severity: Severity, file: String, line: Int, column: Int, keyPath: String, message: String) {
        self.severity = severity
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    public init(_ severity: Severity, at mark: SourceMark, keyPath: String, _ message: String) {
        self.init(
            severity: severity, file: mark.file, line: mark.line, column: mark.column, keyPath: keyPath,
            message: message)
    }

    public var isError: Bool {
        severity == .error
    }

    public var description: String {
        var text = "\(file):\(line):\(column): "
        if severity == .warning { text += "warning: " }
        if !keyPath.isEmpty { text += "\(keyPath): " }
        return text + message
    }
}

/// The outcome of loading a configuration: the typed model when there were no errors, and every diagnostic.
public struct ConfigLoadResult: Sendable {
    /// The loaded configuration; nil when any diagnostic is an error.
    public var configuration: SluiceConfiguration?
    /// Errors and warnings in source order (by line, then column).
    public var diagnostics: [ConfigDiagnostic]

    public init(configuration: SluiceConfiguration?, diagnostics: [ConfigDiagnostic]) {
        self.configuration = configuration
        self.diagnostics = diagnostics
    }

    /// Whether any diagnostic is an error.
    public var hasErrors: Bool {
        diagnostics.contains { $0.isError }
    }

    /// Only the errors.
    public var errors: [ConfigDiagnostic] {
        diagnostics.filter(\.isError)
    }

    /// Only the warnings.
    public var warnings: [ConfigDiagnostic] {
        diagnostics.filter { !$0.isError }
    }
}
