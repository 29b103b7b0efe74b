import IPC
import SluiceTestSupport
import Testing

/// Hostile and awkward byte streams: the decoder answers with typed errors, never traps.
@Suite("FrameDecoder")
struct FrameDecoderTests {
    private func frameBytes(_ message: Message, id: UInt32 = 1) -> [UInt8] {
        Frame(message, requestID: id).encoded()
    }

    @Test("frames fed one byte at a time come out whole")
    func byteByByte() throws {
        let stream = SampleMessages.all.flatMap { frameBytes($0.1, id: $0.2) }
        var decoder = FrameDecoder()
        var out: [Message] = []
        for byte in stream {
            decoder.feed([byte])
            while let frame = try decoder.nextFrame() { out.append(try frame.message()) }
        }
        #expect(out == SampleMessages.all.map { $0.1 })
        try decoder.finish()
    }

    @Test("many frames in one chunk")
    func oneChunk() throws {
        var decoder = FrameDecoder()
        for _ in 0..<100 { decoder.feed(frameBytes(.statsRequest)) }
        var count = 0
        while try decoder.nextFrame() != nil { count += 1 }
        #expect(count == 100)
    }

    @Test("wrong magic is a fatal badMagic error, and stays one")
    func wrongMagic() {
        var decoder = FrameDecoder()
        var bytes = frameBytes(.statsRequest)
        bytes[0] = 0x47  // "GLCE"
        decoder.feed(bytes)
        #expect(throws: IPCError.self) { try decoder.nextFrame() }
        do {
            _ = try decoder.nextFrame()
            Issue.record("expected the decoder to stay failed")
        } catch {
            #expect(error.code == .badMagic)
            #expect(error.isFatal)
        }
    }

    @Test("an HTTP request on the socket is refused as bad magic")
    func httpGarbage() {
        var decoder = FrameDecoder()
        decoder.feed(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(throwsCode(.badMagic) { try decoder.nextFrame() })
    }

    @Test("unsupported versions are refused", arguments: [UInt8(0), FrameHeader.currentVersion + 1, 255])
    func versions(version: UInt8) {
        var bytes = frameBytes(.statsRequest)
        bytes[4] = version
        var decoder = FrameDecoder()
        decoder.feed(bytes)
        #expect(throwsCode(.unsupportedVersion) { try decoder.nextFrame() })
    }

    @Test("an oversized length is refused before any payload is buffered")
    func oversized() {
        let header = FrameHeader(type: .configPush, payloadLength: UInt32.max)
        var decoder = FrameDecoder(maxPayload: 1 << 20)
        decoder.feed(header.encoded())
        #expect(throwsCode(.oversizedFrame) { try decoder.nextFrame() })
        var small = FrameDecoder(maxPayload: 10)
        small.feed(frameBytes(.reload(Reload(reason: "this is longer than ten bytes"))))
        #expect(throwsCode(.oversizedFrame) { try small.nextFrame() })
    }

    @Test("too many descriptors announced")
    func tooManyDescriptors() {
        var bytes = frameBytes(.statsRequest)
        bytes[16] = 17
        var decoder = FrameDecoder()
        decoder.feed(bytes)
        #expect(throwsCode(.tooManyDescriptors) { try decoder.nextFrame() })
    }

    @Test("unknown flag bits and reserved bytes are ignored")
    func reservedIgnored() throws {
        var bytes = frameBytes(.statsRequest)
        bytes[5] = 0xFE  // every bit but `reply`
        bytes[17] = 0xAA
        bytes[19] = 0x55
        var decoder = FrameDecoder()
        decoder.feed(bytes)
        let frame = try #require(try decoder.nextFrame())
        #expect(frame.header.flags == [])
        #expect(try frame.message() == .statsRequest)
    }

    @Test("a stream that ends mid-frame is reported as truncated")
    func truncatedStream() throws {
        let whole = frameBytes(.reload(Reload(reason: "x")))
        for cut in 1..<whole.count {
            var decoder = FrameDecoder()
            decoder.feed(whole[0..<cut])
            #expect(try decoder.nextFrame() == nil)
            #expect(throwsCode(.truncated) { try decoder.finish() })
        }
    }

    @Test("an unknown type is a non-fatal error at message level")
    func unknownType() throws {
        let header = FrameHeader(type: MessageType(rawValue: 0x0FFF), requestID: 4, payloadLength: 3)
        var decoder = FrameDecoder()
        decoder.feed(header.encoded() + [1, 2, 3] + frameBytes(.statsRequest))
        let unknown = try #require(try decoder.nextFrame())
        do {
            _ = try unknown.message()
            Issue.record("expected unknownMessageType")
        } catch {
            #expect(error.code == .unknownMessageType)
            #expect(!error.isFatal)
        }
        // The stream is still in sync.
        #expect(try decoder.nextFrame()?.message() == .statsRequest)
    }

    @Test("10,000 random streams never trap (seed 0x51CE)")
    func randomGarbage() {
        var rng = SplitMix64(seed: 0x51CE)
        var typedErrors = 0
        for _ in 0..<10_000 {
            var decoder = FrameDecoder(maxPayload: 4096)
            var stream = rng.bytes(Int.random(in: 0..<64, using: &rng))
            if Bool.random(using: &rng) {
                // Give half of them a valid magic and version so the deeper checks run.
                stream = [0x53, 0x4C, 0x43, 0x45, 0x01] + stream
            }
            decoder.feed(stream)
            do {
                while let frame = try decoder.nextFrame() { _ = try? frame.message() }
                try decoder.finish()
            } catch {
                typedErrors += 1
            }
        }
        #expect(typedErrors > 9_000)
    }
}

/// True when `body` throws an ``IPCError`` with `code`.
func throwsCode<T>(_ code: IPCError.Code, _ body: () throws -> T) -> Bool {
    do {
        _ = try body()
        return false
    } catch {
        return (error as? IPCError)?.code == code
    }
}
