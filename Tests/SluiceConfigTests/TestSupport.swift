import SluiceConfig
import SluiceOutbounds

#if canImport(Glibc)
import Glibc
#endif

/// Helpers shared by the configuration tests.
enum TestSupport {
    /// The package root, found by walking up from this file to the directory holding Package.swift.
    static let packageRoot: String = {
        var components = #filePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        while components.count > 1 {
            components.removeLast()
            let candidate = components.joined(separator: "/")
            if fileExists(candidate + "/Package.swift") { return candidate }
        }
        return "."
    }()

    static func example(_ name: String) -> String {
        packageRoot + "/examples/" + name
    }

    static func fileExists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Loads `yaml` as file `t.yaml`.
    static func load(_ yaml: String) -> ConfigLoadResult {
        ConfigLoader.load(yaml: yaml, fileName: "t.yaml", catalog: OutboundRegistry.catalog)
    }

    /// A loaded proxy's settings as its protocol decodes them (in the tun worker); nil when they are not `S`'s.
    static func settings<S: ProxySettings>(_ proxy: Proxy, as _: S.Type) -> S? {
        guard let decoder = ProxyDecoder(proxy), case .loaded(let settings) = S.decode(decoder) else { return nil }
        return settings
    }

    /// The rendered diagnostics of `yaml`.
    static func messages(_ yaml: String) -> [String] {
        load(yaml).diagnostics.map(\.description)
    }
}
