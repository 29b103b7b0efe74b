import Logging
import SluiceConfig
import SluiceNet
import SluiceSystem
import SluiceTestSupport
import Testing

@testable import SluiceDNS
@testable import SluiceDNSWire

@Suite("DNS server under hostile queries")
struct DNSServerFuzzTests {
    @Test(
        "10,000 random and mutated messages: every answer is a well-formed reply with the query's ID, never a crash (seed 0xD45)"
    )
    func fuzz() throws {
        var configuration = SluiceConfiguration()
        configuration.dns.enable = true
        configuration.dns.enhancedMode = .fakeIP
        let sockets = try UDPUpstreamSockets(handed: [:])
        let server = DNSServer(configuration, sockets: sockets, storePath: nil, logger: Logger(label: "fuzz"))
        var rng = SplitMix64(seed: 0xD45)
        let seeds = [
            wireQuery(name: "a.test"), wireQuery(name: "b.example.com", type: 28, edns: (1232, 0, true)),
            wireQuery(name: "x.y.z", type: 65), wireQuery(name: "mail.test", type: 15),
        ]
        var answered = 0
        var dropped = 0
        for i in 0..<10_000 {
            var message: [UInt8]
            if i % 4 == 0 {
                message = rng.bytes(Int.random(in: 0..<80, using: &rng))
            } else {
                message = seeds[i % seeds.count]
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0 where !message.isEmpty:
                        message[Int.random(in: 0..<message.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    case 1 where !message.isEmpty:
                        message.removeLast(Int.random(in: 1...min(8, message.count), using: &rng))
                    case 2: message += rng.bytes(Int.random(in: 1...8, using: &rng))
                    default:
                        // Counts: claim more records than there are.
                        if message.count >= 12 {
                            message[Int.random(in: 4...11, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                        }
                    }
                }
            }
            let replies = Locked<[[UInt8]]>([])
            message.withUnsafeBytes { raw in server.handle(raw, udp: true) { r in replies.withLock { $0.append(r) } } }
            let got = replies.withLock { $0 }
            // Queries that reach the (absent) upstream fail at once; fake and error answers
            // are synchronous: so every reply is here by now.
            #expect(got.count <= 1)
            guard let reply = got.first else {
                dropped += 1
                continue
            }
            answered += 1
            #expect(reply.count >= 12 && reply[0] == message[0] && reply[1] == message[1], "ID echoed (message \(i))")
            #expect(reply[2] & 0x80 != 0, "QR set (message \(i))")
            if case .failure(let error) = DNSQuery.parse(message) {
                #expect(!error.drop)
                #expect(UInt16(reply[3] & 0xF) == error.responseCode & 0xF, "rcode of message \(i)")
            }
        }
        #expect(answered > 1000 && dropped > 100, "answered \(answered), dropped \(dropped)")
    }
}
