import Foundation
import SluiceConfig
import SluiceOutbounds
import Testing

/// Real-world mihomo configs (Corpus/*.yaml): sluice loads each with exactly the warnings the file lists, and
/// mihomo v1.19.32 (`mihomo -t`) accepts each too, so these prove sluice accepts what mihomo accepts.
///
/// A corpus file lists its expected diagnostics in comment lines `# expect: LINE:COLUMN: warning: ...` (the
/// rendered diagnostic without the file name), in order.
@Suite("mihomo config corpus")
struct CorpusTests {
    static let directory = TestSupport.packageRoot + "/Tests/SluiceConfigTests/Corpus"

    static let files: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted()
    }()

    /// The `# expect:` lines of a corpus file.
    static func expectations(_ path: String) -> [String] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            line.hasPrefix("# expect: ") ? String(line.dropFirst("# expect: ".count)) : nil
        }
    }

    @Test func corpusIsLargeEnough() {
        #expect(Self.files.count >= 20)
    }

    @Test(arguments: files) func sluiceLoadsIt(_ name: String) throws {
        let path = Self.directory + "/" + name
        let result = ConfigLoader.load(contentsOfFile: path, catalog: OutboundRegistry.catalog)
        // Without the file name, and with the corpus directory spelled CORPUS, so expectations hold anywhere.
        let rendered = result.diagnostics.map {
            String($0.description.dropFirst(path.count + 1)).replacingOccurrences(of: Self.directory, with: "CORPUS")
        }
        #expect(result.errors.isEmpty, "\(name): \(result.errors.map(\.description))")
        #expect(result.configuration != nil)
        #expect(
            rendered == Self.expectations(path),
            "\(name): got\n\(rendered.map { "# expect: " + $0 }.joined(separator: "\n"))")
    }

    /// mihomo from the lab cache (`bash /work/shared/lab/get-mihomo.sh` puts it there), or `$MIHOMO`.
    static let mihomo: String? = {
        let environment = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let explicit = environment["MIHOMO"] { candidates.append(explicit) }
        if let home = environment["HOME"] { candidates.append(home + "/.cache/lab-mihomo/0.2.1/mihomo") }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    @Test(
        .enabled(if: mihomo != nil, "needs the mihomo binary (bash /work/shared/lab/get-mihomo.sh)"), arguments: files)
    func mihomoAcceptsIt(_ name: String) throws {
        let (status, text) = try Self.mihomoTest(Self.directory + "/" + name)
        #expect(status == 0, "\(name): \(text)")
        #expect(text.contains("test is successful"), "\(name): \(text)")
    }

    /// Configurations mihomo refuses, with the error sluice gives at the line and column of the mistake: sluice
    /// refuses them too (accepting what mihomo accepts must not mean accepting more).
    static let refused: [(name: String, yaml: String, error: String)] = [
        (
            "a rule naming an unknown proxy",
            """
            proxies:
              - {name: hk, type: ss, server: 192.0.2.1, port: 8388, cipher: aes-128-gcm, password: x}
            rules:
              - DOMAIN-SUFFIX,example.com,hk
              - DOMAIN-SUFFIX,example.org,jp
              - MATCH,DIRECT
            """,
            "refused.yaml:5:5: rules[1]: no proxy or group named \"jp\"; the target must be a proxy, a group, DIRECT, "
                + "REJECT or REJECT-DROP"
        ),
        (
            "a SUB-RULE naming no set of sub-rules",
            """
            sub-rules:
              web:
                - DOMAIN-SUFFIX,example.com,DIRECT
            rules:
              - SUB-RULE,(NETWORK,tcp),wbe
              - MATCH,DIRECT
            """,
            "refused.yaml:5:5: rules[0]: SUB-RULE: no sub-rule set named \"wbe\"; define it under sub-rules"
        ),
        (
            "sub-rules in a cycle",
            """
            sub-rules:
              a:
                - SUB-RULE,(NETWORK,udp),b
              b:
                - SUB-RULE,(DST-PORT,53),a
            rules:
              - SUB-RULE,(NETWORK,udp),a
            """,
            "refused.yaml:5:7: sub-rules.b[0]: sub-rule sets name each other in a cycle: a -> b -> a; matching "
                + "would never end, so remove one of these SUB-RULEs"
        ),
    ]

    @Test(arguments: refused.map(\.name))
    func sluiceRefusesWhatMihomoRefuses(_ name: String) throws {
        let entry = try #require(Self.refused.first { $0.name == name })
        let result = ConfigLoader.load(yaml: entry.yaml, fileName: "refused.yaml", catalog: OutboundRegistry.catalog)
        #expect(result.configuration == nil)
        #expect(result.errors.map(\.description) == [entry.error])
        if Self.mihomo != nil {
            let file = FileManager.default.temporaryDirectory
                .appendingPathComponent("refused-\(UUID().uuidString).yaml")
            try entry.yaml.write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let (status, text) = try Self.mihomoTest(file.path)
            #expect(status != 0, "mihomo accepted \(name): \(text)")
            #expect(text.contains("test failed"), "\(name): \(text)")
        }
    }

    /// Runs `mihomo -t` on a file; its exit status and output.
    static func mihomoTest(_ path: String) throws -> (Int32, String) {
        let binary = try #require(Self.mihomo)
        // A scratch home directory with the geodata, so GEOIP/GEOSITE entries validate offline.
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-corpus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: home) }
        let geodata = URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("geodata")
        for file in (try? FileManager.default.contentsOfDirectory(atPath: geodata.path)) ?? [] {
            try FileManager.default.copyItem(
                at: geodata.appendingPathComponent(file), to: home.appendingPathComponent(file))
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-t", "-d", home.path, "-f", path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }
}
