import Crypto
import SluiceNet
import SluiceTestSupport
import Testing

@testable import SluiceOutbounds

/// Shadowsocks AEAD: key derivation against RFC and OpenSSL values, stream and datagram
/// framing against vectors made with Python's `cryptography` (an independent
/// implementation), and round trips under random segmentation.
@Suite("Shadowsocks AEAD")
struct ShadowsocksTests {
    static let password = "sluice-test"
    static let pattern = (0..<40000).map { UInt8($0 % 251) }

    @Test func evpBytesToKey() {
        // MD5("foobar") = 3858f622...; the second block is MD5(first || "foobar").
        #expect(
            ShadowsocksKey.bytesToKey(password: Array("foobar".utf8), length: 16).hex
                == "3858f62230ac3c915f300c664312c63f")
        #expect(
            ShadowsocksKey.bytesToKey(password: Array("foobar".utf8), length: 32).hex
                == "3858f62230ac3c915f300c664312c63f568378529614d22ddb49237d2f60bfdf")
    }

    @Test func hkdfSHA1MatchesRFC5869TestCase4() {
        let okm = ShadowsocksKey.hkdfSHA1(
            key: Array(repeating: 0x0B, count: 11), salt: Array(0x00...0x0C), info: Array(0xF0...0xF9), length: 42)
        #expect(okm.hex == "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896")
    }

    static let shortVectors: [ShadowsocksMethod: String] = [
        .aes128GCM:
            "000102030405060708090a0b0c0d0e0f852606925110e7ed8ab19ed092abe9f41a82f08de957332e5dd671da93158bfd7d4eb76f8340d0bab0672fb1f995",
        .aes256GCM:
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1ffe37b7447013ce5d999cc5752461a75cad4e8004c7463fd85586e283a9544991df0846ba6cc4a076fc82a06c78c3",
        .chacha20IETFPoly1305:
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa93b42bd9628e06fd0e3f974ebcd6acc65b4756bfcb3a34005a1b3e3ea9caca98bf8a2523205ef197659cf49f5b3",
    ]
    static let longDigests: [ShadowsocksMethod: String] = [
        .aes128GCM: "f3c77266ae2649189b0128e43df988fd011492546fde85e38559da814e033777",
        .aes256GCM: "84fe276f9db0b56e60958c392b64ac9213ea1ce2b79dec9b033fcdb67717e855",
        .chacha20IETFPoly1305: "d0da0792290d13d0f380f755cda54dad7a2fb9c04dc8443c825ea83bcc70413a",
    ]
    static let udpVectors: [ShadowsocksMethod: String] = [
        .aes128GCM: "000102030405060708090a0b0c0d0e0f842056456bad5e47833840a0b945a664a4e4fce9f921a8cb26bff5",
        .aes256GCM:
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fff31575bf6db2454d551174f1f46eb36195b718365e48ed709c413",
        .chacha20IETFPoly1305:
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa83dcce6d79e9752074f4b6d5dd3c8ce4dea5f4e887cb92b4615de",
    ]

    static func fixedSalt(_ method: ShadowsocksMethod) -> [UInt8] { Array(0..<UInt8(method.saltLength)) }

    @Test(arguments: ShadowsocksMethod.allCases)
    func streamKnownAnswers(method: ShadowsocksMethod) {
        let key = ShadowsocksKey(method: method, password: Self.password)
        var sealer = ShadowsocksStreamSealer(key: key, salt: Self.fixedSalt(method))
        var out: [UInt8] = []
        sealer.seal(Array("hello, world".utf8), into: &out)
        #expect(out.hex == Self.shortVectors[method])

        // 40,000 bytes: three chunks, the first two of exactly 0x3FFF bytes.
        var long = ShadowsocksStreamSealer(key: key, salt: Self.fixedSalt(method))
        var sealed: [UInt8] = []
        long.seal(Self.pattern, into: &sealed)
        #expect(Array(SHA256.hash(data: sealed)).hex == Self.longDigests[method])
        #expect(sealed.count == method.saltLength + 3 * (2 + 16 + 16) + 40000)
    }

    @Test(arguments: ShadowsocksMethod.allCases)
    func datagramKnownAnswers(method: ShadowsocksMethod) throws {
        let key = ShadowsocksKey(method: method, password: Self.password)
        let destination = SocketEndpoint(address: IPAddress("10.77.200.2")!, port: 7)
        let packet = Array("ping".utf8).withUnsafeBytes {
            ShadowsocksDatagram.seal($0, to: destination, key: key, salt: Self.fixedSalt(method))
        }
        #expect(packet?.hex == Self.udpVectors[method])
        let opened = try [UInt8](hex: Self.udpVectors[method]!).withUnsafeBytes {
            try ShadowsocksDatagram.open($0, key: key)
        }
        #expect(opened.address == destination)
        #expect(Array(opened.payload) == Array("ping".utf8))
        // Another password cannot open it.
        let other = ShadowsocksKey(method: method, password: "other")
        #expect(throws: ShadowsocksError.self) {
            _ = try [UInt8](hex: Self.udpVectors[method]!).withUnsafeBytes {
                try ShadowsocksDatagram.open($0, key: other)
            }
        }
        // A name travels as a name.
        let byName = SocketEndpoint(host: .name("udp.example"), port: 53)
        let sealed = try #require([1, 2, 3].withUnsafeBytes { ShadowsocksDatagram.seal($0, to: byName, key: key) })
        #expect(try sealed.withUnsafeBytes { try ShadowsocksDatagram.open($0, key: key) }.address == byName)
    }

    @Test(arguments: ShadowsocksMethod.allCases)
    func streamRoundTripsUnderRandomSegmentation(method: ShadowsocksMethod) throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var random = SplitMix64(seed: seed)
        let key = ShadowsocksKey(method: method, password: Self.password)
        var sealer = ShadowsocksStreamSealer(key: key)
        var opener = ShadowsocksStreamOpener(key: key)
        var sent: [UInt8] = []
        var wire: [UInt8] = []
        for _ in 0..<40 {
            let piece = random.bytes(Int.random(in: 0...40000, using: &random))
            sent += piece
            sealer.seal(piece, into: &wire)
        }
        var received: [UInt8] = []
        var offset = 0
        while offset < wire.count {
            let n = min(wire.count - offset, Int.random(in: 1...70000, using: &random))
            try opener.open(Array(wire[offset..<(offset + n)]), into: &received)
            offset += n
        }
        #expect(received == sent, "seed \(seed)")
        #expect(!opener.hasPartialChunk)
    }

    @Test func tamperingAndTruncationAreDetected() throws {
        let key = ShadowsocksKey(method: .aes256GCM, password: Self.password)
        var sealer = ShadowsocksStreamSealer(key: key)
        var wire: [UInt8] = []
        sealer.seal(Array("secret".utf8), into: &wire)
        for index in [key.method.saltLength, wire.count - 1] {
            var altered = wire
            altered[index] ^= 1
            var opener = ShadowsocksStreamOpener(key: key)
            var out: [UInt8] = []
            #expect(throws: ShadowsocksError.authentication) { try opener.open(altered, into: &out) }
        }
        var opener = ShadowsocksStreamOpener(key: key)
        var out: [UInt8] = []
        try opener.open(Array(wire.dropLast()), into: &out)
        #expect(out.isEmpty && opener.hasPartialChunk)
        // A wrong password fails on the first length chunk.
        var wrong = ShadowsocksStreamOpener(key: ShadowsocksKey(method: .aes256GCM, password: "x"))
        #expect(throws: ShadowsocksError.self) { try wrong.open(wire, into: &out) }
    }
}
