import IPC
import Testing

/// Byte-exact frames for every message type. These vectors ARE the protocol: if one of them
/// has to change, the protocol version changes too (docs/ipc.md, "Versioning").
@Suite("Golden byte vectors")
struct GoldenVectorTests {
    static let vectors: [String: String] = [
        "hello": "534c434503000001000000010000001800000000010101000010920000000d736c756963656420302e312e30",
        "helloAccept": "534c434503010002000000010000000d0000000001020000004d00000003646e73",
        "error": "534c43450301000300000009000000110000000000020000000b7479706520307830666666",
        "configPush": "534c434503000010000000020000000f00000000000000000000000301000000027b7d",
        "configResult": "534c4345030100110000000200000017000000000000000000000003010000000a74756e2e646576696365",
        "ready": "534c434503000012000000000000000e000000000000000000000003000000027570",
        "heartbeat": "534c43450300002000000005000000100000000000000000000000050102030405060708",
        "heartbeatAck": "534c43450301002100000005000000100000000000000000000000050102030405060708",
        "statsRequest": "534c434503000030000000060000000000000000",
        "statsReport":
            "534c43450301003100000006000000270000000000000002000000016100000000000000010000000162ffffffffffffffff000000010000000178",
        "statusRequest": "534c4345030000320000000b0000000000000000",
        "statusReport": "534c4345030100330000000b0000000600000000000000027b7d",
        "groupStatusRequest": "534c4345030000340000000d0000000000000000",
        "groupStatus": "534c4345030100350000000d0000000600000000000000025b5d",
        "linkStatusRequest": "534c434503000036000000100000000000000000",
        "linkStatus": "534c434503010037000000100000000600000000000000025b5d",
        "select": "534c4345030000420000000e0000000a0000000000000001470000000170",
        "reload": "534c43450300004000000000000000070000000000000003485550",
        "shutdown": "534c434503000041000000000000000c00000000000013880000000473746f70",
        "peerChannel": "534c4345030000500000000000000005010000000200001093",
        "tunDescriptorRequest": "534c434503000056000000140000000000000000",
        "tunDescriptor": "534c434503010057000000140000000001000000",
        "fakeIPLookup": "534c43450300006000000007000000050000000004c6120007",
        "fakeIPAnswer": "534c43450301006100000007000000100000000004c61200070100000006612e74657374",
        "fakeIPAnswer-none": "534c43450301006100000008000000120000000006fdfedcba98760000000000000000000100",
        "mappingEvent": "534c4345030000620000000000000010000000000004c612000700000006612e74657374",
        "fakeIPPin": "534c43450300006300000000000000060000000004c612000701",
        "resolveRequest": "534c4345030000640000000c0000000b0000000000000006612e7465737400",
        "resolveAnswer":
            "534c4345030100650000000c0000001e000000000000000204c612000706fdfedcba98760000000000000000000100000000",
        "processLookup": "534c4345030000800000000f000000080000000000001092000003e8",
        "processInfo": "534c4345030100810000000f00000015000000000000004d0000000d2f7573722f62696e2f6375726c",
        "connectionsRequest": "534c434503000090000000110000000000000000",
        "connections": "534c434503010091000000110000000600000000000000027b7d",
        "closeConnections": "534c4345030000920000001200000005000000000000000137",
        "connectionsClosed": "534c43450301009300000012000000040000000000000001",
        "delayTest": "534c434503000094000000130000000f00000000000000017000000001750000138801",
        "delayResult": "534c4345030100950000001300000011000000000000000100000001700000002a00000000",
        "logSubscribe": "534c43450300009600000000000000010000000006",
        "logRecord": "534c434503000097000000000000000600000000030000000178",
        "cacheFlush": "534c43450300009800000014000000010000000001",
        "cacheFlushed": "534c4345030100990000001400000008000000000000000000000003",
        "dnsPacket":
            "534c4345030000700000000a00000021000000000104c612000714e906fdfedcba987600000000000000000001003500000002abcd",
    ]

    @Test("every known message type has a vector")
    func coversEveryType() {
        let covered = Set(SampleMessages.all.map { $0.1.type })
        #expect(covered == Set(MessageType.known))
        #expect(Set(SampleMessages.all.map { $0.0 }) == Set(Self.vectors.keys))
    }

    @Test("encoding matches the vector", arguments: SampleMessages.all.map { $0.0 })
    func encodes(name: String) throws {
        let (_, message, id, reply) = try #require(SampleMessages.all.first { $0.0 == name })
        let frame = Frame(message, requestID: id, isReply: reply, descriptorCount: message.requiredDescriptorCount)
        #expect(hex(frame.encoded()) == Self.vectors[name])
    }

    @Test("decoding the vector gives the message back", arguments: SampleMessages.all.map { $0.0 })
    func decodes(name: String) throws {
        let (_, message, id, reply) = try #require(SampleMessages.all.first { $0.0 == name })
        var decoder = FrameDecoder()
        decoder.feed(try #require(bytes(hex: Self.vectors[name] ?? "")))
        let frame = try #require(try decoder.nextFrame())
        #expect(frame.header.requestID == id)
        #expect(frame.header.isReply == reply)
        #expect(Int(frame.header.descriptorCount) == message.requiredDescriptorCount)
        #expect(try frame.message() == message)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test("the header layout is pinned field by field")
    func headerLayout() {
        let header = FrameHeader(
            flags: .reply, type: MessageType(rawValue: 0xBEEF), requestID: 0x0102_0304, payloadLength: 0x0A0B_0C0D,
            descriptorCount: 2)
        #expect(
            header.encoded() == [
                0x53, 0x4C, 0x43, 0x45,  // magic "SLCE"
                0x03,  // version
                0x01,  // flags: reply
                0xBE, 0xEF,  // type
                0x01, 0x02, 0x03, 0x04,  // request id
                0x0A, 0x0B, 0x0C, 0x0D,  // payload length
                0x02,  // descriptor count
                0x00, 0x00, 0x00,  // reserved
            ])
    }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}

func bytes(hex: String) -> [UInt8]? {
    let chars = Array(hex.utf8)
    guard chars.count % 2 == 0 else { return nil }
    var out = [UInt8]()
    for i in stride(from: 0, to: chars.count, by: 2) {
        guard let v = UInt8(String(decoding: chars[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
        out.append(v)
    }
    return out
}
