import IPC
import SluiceNet
import SluiceTestSupport
import Testing

/// Seeded random messages round-trip exactly; mutated payloads give typed errors.
@Suite("Message codec")
struct MessageCodecTests {
    static func randomAddress(_ rng: inout SplitMix64) -> IPAddress {
        Bool.random(using: &rng)
            ? .v4(IPv4Address(rawValue: rng.next() >> 32 == 0 ? 0 : UInt32(truncatingIfNeeded: rng.next())))
            : .v6(IPv6Address(high: rng.next(), low: rng.next()))
    }

    static func randomMessage(_ rng: inout SplitMix64) -> Message {
        let role = PeerRole.allCases.randomElement(using: &rng)!
        let text = rng.string(maxLength: 40)
        switch Int.random(in: 0..<28, using: &rng) {
        case 0:
            return .hello(
                Hello(
                    role: role, minimumVersion: UInt8.random(in: 0...255, using: &rng),
                    maximumVersion: UInt8.random(in: 0...255, using: &rng),
                    pid: UInt32.random(in: 0...UInt32.max, using: &rng),
                    software: String(text.prefix(60))))
        case 1:
            return .helloAccept(HelloAccept(version: 1, role: role, pid: 1, software: String(text.prefix(60))))
        case 2: return .error(ErrorReport(code: .rejected, message: text))
        case 3:
            return .configPush(
                ConfigPush(generation: rng.next(), document: rng.bytes(Int.random(in: 0..<300, using: &rng))))
        case 4:
            return .configResult(
                ConfigResult(
                    generation: rng.next(),
                    outcome: [.applied, .restartRequired, .rejected].randomElement(using: &rng)!, detail: text))
        case 5: return .ready(Ready(generation: rng.next(), detail: text))
        case 6: return .heartbeat(Heartbeat(sequence: rng.next(), timestamp: rng.next()))
        case 7: return .heartbeatAck(Heartbeat(sequence: rng.next(), timestamp: rng.next()))
        case 8: return .statsRequest
        case 9:
            let entries = (0..<Int.random(in: 0..<20, using: &rng)).map { _ in
                StatsReport.Entry(String(rng.string(maxLength: 20).prefix(50)), Int64(bitPattern: rng.next()))
            }
            let problems = (0..<Int.random(in: 0..<3, using: &rng)).map { _ in rng.string(maxLength: 40) }
            return .statsReport(StatsReport(entries: entries, problems: problems))
        case 10: return .reload(Reload(reason: text))
        case 11:
            return .shutdown(Shutdown(graceMilliseconds: UInt32.random(in: 0...UInt32.max, using: &rng), reason: text))
        case 12: return .peerChannel(PeerChannel(peer: role, peerPID: UInt32.random(in: 0...UInt32.max, using: &rng)))
        case 13: return .fakeIPLookup(FakeIPLookup(address: randomAddress(&rng)))
        case 14:
            return .fakeIPAnswer(
                FakeIPAnswer(
                    address: randomAddress(&rng), name: Bool.random(using: &rng) ? String(text.prefix(50)) : nil))
        case 15:
            return .mappingEvent(
                MappingEvent(
                    kind: Bool.random(using: &rng) ? .assigned : .released, address: randomAddress(&rng),
                    name: String(text.prefix(50))))
        case 18: return .statusRequest
        case 19: return .statusReport(document: rng.bytes(Int.random(in: 0..<200, using: &rng)))
        case 16: return .fakeIPPin(FakeIPPin(address: randomAddress(&rng), pinned: Bool.random(using: &rng)))
        case 25: return .processLookup(ProcessLookup(inode: UInt32.random(in: 0...UInt32.max, using: &rng), uid: 0))
        case 26: return .processInfo(ProcessIdentity(pid: UInt32.random(in: 0...UInt32.max, using: &rng), path: text))
        case 27: return Bool.random(using: &rng) ? .tunDescriptorRequest : .tunDescriptor
        case 22: return Bool.random(using: &rng) ? .groupStatusRequest : .linkStatusRequest
        case 23:
            let document = rng.bytes(Int.random(in: 0..<200, using: &rng))
            return Bool.random(using: &rng) ? .groupStatus(document: document) : .linkStatus(document: document)
        case 24: return .select(Select(group: String(text.prefix(30)), member: String(text.suffix(30))))
        case 20: return .resolveRequest(ResolveRequest(name: String(text.prefix(50)), ipv6: Bool.random(using: &rng)))
        case 21:
            return .resolveAnswer(
                ResolveAnswer(
                    addresses: (0..<Int.random(in: 0..<4, using: &rng)).map { _ in randomAddress(&rng) }, error: text))
        default:
            return .dnsPacket(
                DNSPacket(
                    transport: Bool.random(using: &rng) ? .udp : .tcp, client: randomAddress(&rng),
                    clientPort: UInt16.random(in: 0...UInt16.max, using: &rng), server: randomAddress(&rng),
                    serverPort: 53, message: rng.bytes(Int.random(in: 0..<600, using: &rng))))
        }
    }

    @Test("5,000 random messages round-trip through frames (seed 0xC0DEC)")
    func roundTrip() throws {
        var rng = SplitMix64(seed: 0xC0DEC)
        var decoder = FrameDecoder()
        for i in 0..<5_000 {
            let message = Self.randomMessage(&rng)
            let id = UInt32.random(in: 0...UInt32.max, using: &rng)
            decoder.feed(Frame(message, requestID: id, isReply: i % 2 == 0).encoded())
            let frame = try #require(try decoder.nextFrame(), "message \(i)")
            #expect(frame.header.requestID == id)
            #expect(try frame.message() == message, "message \(i) seed 0xC0DEC")
        }
    }

    /// Where a sample's payload ends in an older protocol version, before fields a later version appended: a
    /// prefix cut there is a whole older message, not a truncated one.
    static func olderVersionLength(_ message: Message) -> Int? {
        guard case .statsReport(var report) = message, !report.problems.isEmpty else { return nil }
        report.problems = []
        return Message.statsReport(report).encodedPayload().count - 4  // without the (empty) problems count
    }

    @Test(
        "every proper prefix of every sample payload is a non-fatal malformedPayload (or an older version's whole message)"
    )
    func truncatedPayloads() {
        for (name, message, _, _) in SampleMessages.all {
            let payload = message.encodedPayload()
            for cut in 0..<payload.count {
                do {
                    let decoded = try Message.decode(type: message.type, payload: Array(payload[0..<cut]))
                    if cut == Self.olderVersionLength(message) { continue }
                    Issue.record("\(name) decoded from \(cut) of \(payload.count) bytes: \(decoded)")
                } catch {
                    #expect(error.code == .malformedPayload, "\(name) cut \(cut): \(error)")
                    #expect(!error.isFatal)
                }
            }
        }
    }

    @Test("trailing bytes after known fields are ignored (room for appended fields)")
    func trailingBytes() throws {
        for (name, message, _, _) in SampleMessages.all {
            let payload = message.encodedPayload() + [0xDE, 0xAD]
            #expect(try Message.decode(type: message.type, payload: payload) == message, "\(name)")
        }
    }

    @Test("20,000 mutated payloads decode or throw typed errors (seed 0xF00D)")
    func mutatedPayloads() {
        var rng = SplitMix64(seed: 0xF00D)
        var decoded = 0
        var refused = 0
        for _ in 0..<20_000 {
            let sample = SampleMessages.all.randomElement(using: &rng)!.1
            var payload = sample.encodedPayload()
            for _ in 0..<Int.random(in: 1...4, using: &rng) where !payload.isEmpty {
                let i = Int.random(in: 0..<payload.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: payload[i] = UInt8.random(in: 0...255, using: &rng)
                case 1: payload.removeSubrange(i...)
                default: payload.insert(contentsOf: rng.bytes(4), at: i)
                }
            }
            do {
                _ = try Message.decode(type: sample.type, payload: payload)
                decoded += 1
            } catch {
                refused += 1
            }
        }
        #expect(decoded + refused == 20_000)
        #expect(refused > 0)
    }

    @Test("a version-2 stats report (no problems list) decodes with no problems")
    func statsReportOfVersionTwo() throws {
        var w = WireWriter()
        w.u32(1)
        w.string("dns.queries")
        w.i64(7)
        let message = try Message.decode(type: .statsReport, payload: w.bytes)
        #expect(message == .statsReport(StatsReport(entries: [.init("dns.queries", 7)])))
    }

    @Test("a hostile element count cannot make the decoder allocate")
    func hostileCount() {
        var w = WireWriter()
        w.u32(UInt32.max)  // entries.count
        do {
            _ = try Message.decode(type: .statsReport, payload: w.bytes)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .malformedPayload)
        }
    }

    @Test("invalid UTF-8 in a string field is malformed, not a crash")
    func invalidUTF8() {
        var w = WireWriter()
        w.blob([0xFF, 0xFE, 0x80])
        #expect(throwsCode(.malformedPayload) { try Message.decode(type: .reload, payload: w.bytes) })
    }

    @Test("cacheFlush names a cache sluice knows; another is malformed, naming the field")
    func unknownCache() {
        for what: UInt8 in [0, 3, 0xFF] {
            do {
                _ = try Message.decode(type: .cacheFlush, payload: [what])
                Issue.record("cache \(what) decoded")
            } catch {
                #expect(error.code == .malformedPayload && "\(error)".contains("cacheFlush.what"), "\(error)")
            }
        }
        #expect((try? Message.decode(type: .cacheFlush, payload: [2])) == .cacheFlush(CacheFlush(target: .dnsAnswers)))
    }

    @Test("version negotiation picks the highest common version or fails clearly")
    func negotiation() throws {
        let hello = Hello(role: .supervisor, minimumVersion: 1, maximumVersion: 3, pid: 1, software: "future")
        #expect(try hello.negotiate(localMinimum: 1, localMaximum: 1) == 1)
        #expect(try hello.negotiate(localMinimum: 1, localMaximum: 2) == 2)
        let tooNew = Hello(role: .supervisor, minimumVersion: 4, maximumVersion: 5, pid: 1, software: "far future")
        #expect(throwsCode(.handshakeFailed) { try tooNew.negotiate(localMinimum: 1, localMaximum: 1) })
    }
}
