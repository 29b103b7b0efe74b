import SluiceConfig
import SluiceOutbounds
import SluiceTestSupport
import Testing

/// Randomly mutated versions of the full example never trap the loader and always yield well-formed diagnostics.
@Suite("Mutation fuzzing")
struct FuzzTests {
    @Test func mutatedFullExample() throws {
        let path = TestSupport.example("full.yaml")
        let original = try #require(Self.readBytes(path))
        var random = SplitMix64(seed: 0x51_0CE_F022)
        let alphabet = Array(":-[]{}&*<>,'\"#|!%@ \n\t0123456789abcxyz\\".utf8)
        for iteration in 0..<2_000 {
            var bytes = original
            let mutations = 1 + Int(random.next() % 8)
            for _ in 0..<mutations where !bytes.isEmpty {
                let position = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 5 {
                case 0: bytes[position] ^= UInt8(truncatingIfNeeded: 1 << (random.next() % 8))
                case 1: bytes.removeSubrange(position...)
                case 2: bytes.insert(alphabet[Int(random.next() % UInt64(alphabet.count))], at: position)
                case 3: bytes.remove(at: position)
                default:
                    let length = min(bytes.count - position, Int(random.next() % 64))
                    let chunk = Array(bytes[position..<(position + length)])
                    bytes.insert(contentsOf: chunk, at: Int(random.next() % UInt64(bytes.count)))
                }
            }
            let result = ConfigLoader.load(bytes: bytes, fileName: "fuzz.yaml", catalog: OutboundRegistry.catalog)
            #expect(result.hasErrors == (result.configuration == nil), "iteration \(iteration)")
            for diagnostic in result.diagnostics {
                #expect(diagnostic.line >= 1 && diagnostic.column >= 1, "iteration \(iteration): \(diagnostic)")
                #expect(diagnostic.file == "fuzz.yaml")
            }
        }
    }

    static func readBytes(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return bytes
    }
}

#if canImport(Glibc)
import Glibc
#endif
