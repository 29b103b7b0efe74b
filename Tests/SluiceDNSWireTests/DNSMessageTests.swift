import Logging
import SluiceConfig
import SluiceNet
import SluiceSystem
import SluiceTestSupport
import Testing

@testable import SluiceDNSWire

@Suite("DNS messages")
struct DNSMessageTests {
    @Test("a query parses: ID, question with the client's casing, EDNS size and DO bit")
    func parsesQuery() throws {
        let bytes = wireQuery(name: "WwW.Example.COM", type: 28, edns: (4096, 0, true))
        let query = try DNSQuery.parse(bytes).get()
        #expect(query.id == 0x1234)
        #expect(query.question.name == "www.example.com")
        #expect(query.question.type == 28)
        #expect(query.edns == EDNSInfo(udpPayloadSize: 4096, version: 0, dnssecOK: true))
        #expect(query.maxUDPResponse == 4096)
        // The answer echoes the question byte for byte (0x20 casing) and carries an OPT.
        let answer = DNSResponse.build(for: query, answers: [.init(address: IPAddress("fd00::1")!, ttl: 1)])
        #expect(Array(answer[12..<(12 + query.question.wireName.count)]) == query.question.wireName)
        #expect(answer[0] == 0x12 && answer[1] == 0x34)
        #expect(answer[2] & 0x80 != 0, "QR")
        #expect(answer[3] & 0x80 != 0, "RA")
        let parsed = try DNSResponse.parseUpstream(answer).get()
        #expect(parsed.addresses == [IPAddress("fd00::1")!])
        #expect(parsed.trailingOPT != nil)
    }

    @Test("malformed queries: FORMERR, NOTIMP or BADVERS with the client's ID; runts and responses are dropped")
    func malformed() throws {
        func code(_ bytes: [UInt8]) -> (drop: Bool, rcode: UInt16, reply: [UInt8]?) {
            switch DNSQuery.parse(bytes) {
            case .success:
                Issue.record("parsed: \(bytes)")
                return (false, 0, nil)
            case .failure(let e):
                return (e.drop, e.responseCode, bytes.withUnsafeBytes { DNSResponse.error(answering: $0, e) })
            }
        }
        #expect(code(Array(repeating: 0, count: 11)).drop)
        var response = wireQuery(name: "a.test")
        response[2] |= 0x80
        #expect(code(response).drop)
        var two = wireQuery(name: "a.test")
        two[5] = 2
        #expect(code(two).rcode == 1)
        var none = wireQuery(name: "a.test")
        none[5] = 0
        #expect(code(none).rcode == 1)
        #expect(code(Array(wireQuery(name: "a.test").dropLast(3))).rcode == 1, "truncated question")
        // A pointer to itself (a loop) and a forward pointer.
        var loop = Array(wireQuery(name: "a.test")[0..<12])
        loop += [0xC0, 12, 0, 1, 0, 1]
        #expect(code(loop).rcode == 1)
        var forward = Array(wireQuery(name: "a.test")[0..<12])
        forward += [0xC0, 20, 0, 1, 0, 1, 0, 0]
        #expect(code(forward).rcode == 1)
        var extended = Array(wireQuery(name: "a.test")[0..<12])
        extended += [0x41, 0, 0, 1, 0, 1]
        #expect(code(extended).rcode == 1)
        let notimp = code(wireQuery(name: "a.test", flags: 0x2800))  // opcode 5 (UPDATE)
        #expect(notimp.rcode == 4)
        let badvers = code(wireQuery(name: "a.test", edns: (1232, 1, false)))
        #expect(badvers.rcode == 16)
        let reply = try #require(badvers.reply)
        #expect(
            reply[0] == 0x12 && reply[1] == 0x34 && reply[3] & 0xF == 0 && reply[11] == 1, "BADVERS lives in the OPT")
        #expect(reply[reply.count - 6] == 1, "extended rcode 1 << 4 = 16")
        let formerr = try #require(code(two).reply)
        #expect(formerr[0] == 0x12 && formerr[1] == 0x34 && formerr[2] & 0x80 != 0 && formerr[3] & 0xF == 1)
    }

    @Test("a long chain of backward pointers is fine; a name over 255 bytes is not")
    func nameLimits() throws {
        var chain = Array(wireQuery(name: "a.test")[0..<12])
        chain += [1, UInt8(ascii: "a"), 0]  // offset 12: "a"
        var previous = 12
        for _ in 0..<50 {
            let here = chain.count
            chain += [1, UInt8(ascii: "b"), 0xC0, UInt8(previous)]
            previous = here
        }
        try chain.withUnsafeBytes { raw in
            var out: [UInt8] = []
            let end = try withUnsafeMutablePointer(to: &out) { try DNSReader.readName(raw, at: previous, into: $0) }
            #expect(end == previous + 4)
            #expect(out.count == 50 * 2 + 2 + 1)
        }
        var long = Array(wireQuery(name: "a.test")[0..<12])
        for _ in 0..<5 { long += [63] + Array(repeating: UInt8(ascii: "x"), count: 63) }
        long += [0, 0, 1, 0, 1]
        #expect((try? DNSQuery.parse(long).get()) == nil)
    }

    @Test(
        "upstream answers are adapted: client ID and casing, aged TTLs, OPT dropped for non-EDNS clients, TC past 512")
    func adapt() throws {
        let upstreamQuery = try DNSQuery.parse(wireQuery(id: 7, name: "a.test", edns: (1232, 0, false))).get()
        let many = (0..<40).map {
            DNSResponse.Record(address: .v4(IPv4Address(rawValue: 0x0A00_0000 + UInt32($0))), ttl: 300)
        }
        let raw = DNSResponse.build(for: upstreamQuery, answers: many)
        let upstream = try DNSResponse.parseUpstream(raw).get()
        #expect(upstream.minimumAnswerTTL == 300)
        #expect(upstream.cacheTTL(minimum: 0, maximum: 86400) == 300)
        #expect(upstream.cacheTTL(minimum: 0, maximum: 60) == 60)
        #expect(upstream.cacheTTL(minimum: 600, maximum: 86400) == 600)

        let client = try DNSQuery.parse(wireQuery(id: 99, name: "A.TeSt")).get()
        let overTCP = DNSResponse.adapt(upstream, for: client, age: 100, udp: false)
        let parsed = try DNSResponse.parseUpstream(overTCP).get()
        #expect(parsed.id == 99)
        #expect(parsed.question.wireName == client.question.wireName)
        #expect(parsed.minimumAnswerTTL == 200)
        #expect(parsed.trailingOPT == nil && overTCP[11] == 0, "no OPT for a client without EDNS")
        #expect(parsed.addresses.count == 40)
        // 40 A records do not fit 512 bytes: over UDP the client gets TC and retries on TCP.
        let overUDP = DNSResponse.adapt(upstream, for: client, age: 0, udp: true)
        #expect(overUDP[2] & 0x02 != 0)
        #expect(overUDP.count <= 512)
        let ednsClient = try DNSQuery.parse(wireQuery(id: 5, name: "a.test", edns: (4096, 0, false))).get()
        #expect(DNSResponse.adapt(upstream, for: ednsClient, age: 0, udp: true)[2] & 0x02 == 0)
    }

    @Test("negative answers are cached for the SOA minimum; SERVFAIL is not cached")
    func negativeTTL() throws {
        // NXDOMAIN with an SOA in the authority section: TTL 3600, MINIMUM 30.
        var bytes: [UInt8] = [0, 1, 0x81, 0x83, 0, 1, 0, 0, 0, 1, 0, 0]
        bytes += [2, 0x6E, 0x78, 4, 0x74, 0x65, 0x73, 0x74, 0, 0, 1, 0, 1]
        var soa: [UInt8] = [1, 0x61, 0, 1, 0x62, 0]  // mname "a", rname "b"
        soa += [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 30]
        bytes += [0xC0, 15, 0, 6, 0, 1, 0, 0, 0x0E, 0x10, 0, UInt8(soa.count)] + soa
        let answer = try DNSResponse.parseUpstream(bytes).get()
        #expect(answer.rcode == 3)
        #expect(answer.negativeTTL == 30)
        #expect(answer.cacheTTL(minimum: 0, maximum: 86400) == 30)
        bytes[3] = 0x82
        #expect(try DNSResponse.parseUpstream(bytes).get().cacheTTL(minimum: 0, maximum: 86400) == nil)
    }

}
