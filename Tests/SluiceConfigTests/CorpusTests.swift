import Foundation
import SluiceConfig
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
        #expect(Self.files.count >= 10)
    }

    @Test(arguments: files) func sluiceLoadsIt(_ name: String) throws {
        let path = Self.directory + "/" + name
        let result = ConfigLoader.load(contentsOfFile: path)
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
        process.arguments = ["-t", "-d", home.path, "-f", Self.directory + "/" + name]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(name): \(text)")
        #expect(text.contains("test is successful"), "\(name): \(text)")
    }
}
