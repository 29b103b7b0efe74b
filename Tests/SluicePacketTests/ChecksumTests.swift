import SluiceNet
import SluiceTestSupport
import Testing

@testable import SluicePacket

/// The Internet checksum against published examples and a naive reference, and the RFC 1624 updates against
/// full recomputation.
@Suite("Checksum")
struct ChecksumTests {
    @Test func rfc1071Example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2, so the checksum is 0x220d.
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        bytes.withUnsafeBytes { buffer in
            #expect(Checksum.sum(buffer) == 0xDDF2)
            #expect(Checksum.internet(buffer) == 0x220D)
        }
    }

    @Test func wikipediaIPv4HeaderExample() {
        // The IPv4 header example from Wikipedia's "Internet checksum" article: checksum 0xb861.
        var header = hexBytes("4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7")
        header.withUnsafeBytes { #expect(Checksum.internet($0) == 0xB861) }
        header[10] = 0xB8
        header[11] = 0x61
        header.withUnsafeBytes { #expect(Checksum.internet($0) == 0) }
    }

    @Test func emptyAndOddInputs() {
        [UInt8]().withUnsafeBytes { #expect(Checksum.internet($0) == 0xFFFF) }
        [UInt8]([0xAB]).withUnsafeBytes { #expect(Checksum.internet($0) == ~UInt16(0xAB00)) }
        [UInt8]([0xFF, 0xFF]).withUnsafeBytes { #expect(Checksum.internet($0) == 0) }
    }

    @Test func matchesReferenceAtEveryLengthAndAlignment() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        for iteration in 0..<10_000 {
            let length = iteration < 300 ? iteration : Int.random(in: 0...1600, using: &rng)
            let misalignment = Int.random(in: 0...7, using: &rng)
            let bytes = rng.bytes(misalignment + length)
            let initial = UInt32.random(in: 0...0x00FF_FFFF, using: &rng)
            let data = Array(bytes[misalignment...])
            let expected = Reference.checksum(data)
            bytes.withUnsafeBytes { buffer in
                let slice = UnsafeRawBufferPointer(rebasing: buffer[misalignment...])
                #expect(Checksum.internet(slice) == expected, "seed 0x5EED_0001, iteration \(iteration)")
                // With an initial sum: equal to checksumming the extra words in front (they are even-aligned).
                let prefix: [UInt8] = [
                    UInt8(initial >> 24), UInt8(initial >> 16 & 0xFF), UInt8(initial >> 8 & 0xFF),
                    UInt8(initial & 0xFF),
                ]
                #expect(Checksum.internet(slice, initial: initial) == Reference.checksum(prefix + data))
            }
        }
    }

    @Test func pseudoHeaderSumMatchesReference() {
        var rng = SplitMix64(seed: 0x5EED_0002)
        for _ in 0..<1_000 {
            for version: UInt8 in [4, 6] {
                let source = PacketFactory.address(&rng, version: version)
                let destination = PacketFactory.address(&rng, version: version)
                let length = Int.random(in: 0...65535, using: &rng)
                let proto = UInt8.random(in: 0...255, using: &rng)
                var fake = [UInt8](repeating: 0, count: version == 4 ? 12 : 8)
                fake += PacketFactory.addressBytes(source) + PacketFactory.addressBytes(destination)
                let reference = Reference.checksum(
                    Reference.pseudoHeader(fake, version: version, protocol: proto, length: length))
                let sum = Checksum.pseudoHeaderSum(
                    source: source, destination: destination, protocol: proto, length: length)
                #expect(~Checksum.fold(UInt64(sum)) == reference)
            }
        }
    }

    @Test func incrementalUpdatesMatchRecomputation() {
        var rng = SplitMix64(seed: 0x5EED_0003)
        for iteration in 0..<10_000 {
            // A random even-length block whose checksum covers a 16-, 32- and 128-bit field at known offsets.
            var bytes = rng.bytes(2 * Int.random(in: 12...40, using: &rng))
            let original = Reference.checksum(bytes)
            // 16-bit field at 0.
            let old16 = Reference.word(bytes, 0)
            let new16 = UInt16.random(in: 0...UInt16.max, using: &rng)
            Reference.setWord(&bytes, 0, new16)
            var checksum = Checksum.update(original, old: old16, new: new16)
            #expect(checksum == Reference.checksum(bytes), "iteration \(iteration)")
            // 32-bit field at 2.
            let old32 = UInt32(Reference.word(bytes, 2)) << 16 | UInt32(Reference.word(bytes, 4))
            let new32 = UInt32.random(in: 0...UInt32.max, using: &rng)
            Reference.setWord(&bytes, 2, UInt16(new32 >> 16))
            Reference.setWord(&bytes, 4, UInt16(new32 & 0xFFFF))
            checksum = Checksum.update(checksum, old: old32, new: new32)
            #expect(checksum == Reference.checksum(bytes), "iteration \(iteration)")
            // 128-bit field at 6.
            let oldBytes = Array(bytes[6..<22])
            let old128 = oldBytes.withUnsafeBytes {
                IPv6Address(
                    high: $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self).bigEndian,
                    low: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self).bigEndian)
            }
            let new128 = IPv6Address(high: rng.next(), low: rng.next())
            bytes.replaceSubrange(6..<22, with: PacketFactory.addressBytes(.v6(new128)))
            checksum = Checksum.update(checksum, old: old128, new: new128)
            #expect(checksum == Reference.checksum(bytes), "iteration \(iteration)")
        }
    }

    @Test func updateNeverProducesNegativeZero() {
        // RFC 1624 section 3: eqn. 3 gives 0x0000, not 0xFFFF, when the recomputed checksum is 0x0000. Data
        // 0xFFFF 0x0000 with checksum 0; changing the 0x0000 word to itself or to anything keeps things exact.
        #expect(Checksum.update(0x0000, old: UInt16(0x0000), new: UInt16(0x0000)) == 0x0000)
        // Example from RFC 1624 section 4: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285 gives 0x0000.
        #expect(Checksum.update(0xDD2F, old: UInt16(0x5555), new: UInt16(0x3285)) == 0x0000)
    }
}
