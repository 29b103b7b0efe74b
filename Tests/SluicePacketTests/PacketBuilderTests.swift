import SluiceNet
import SluiceTestSupport
import Testing

@testable import SluicePacket

/// Built packets parse back with the fields asked for and checksums that verify from scratch.
@Suite("Packet builder")
struct PacketBuilderTests {
    /// Parses `bytes[0..<length]` and checks the IP header and the L4 checksum with the naive reference.
    static func expectValid(_ bytes: [UInt8], length: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        var packetBytes = Array(bytes[0..<length])
        packetBytes.withUnsafeMutableBytes { buffer in
            guard let packet = IPPacketView(buffer) else {
                Issue.record("built packet does not parse", sourceLocation: sourceLocation)
                return
            }
            #expect(packet.totalLength == length, sourceLocation: sourceLocation)
            #expect(packet.ttl == 64, sourceLocation: sourceLocation)
            #expect(!packet.isFragment, sourceLocation: sourceLocation)
            if packet.version == 4 {
                #expect(packet.isHeaderChecksumValid, sourceLocation: sourceLocation)
                #expect(buffer[6] == 0x40 && buffer[7] == 0, "DF set", sourceLocation: sourceLocation)
                #expect(buffer[4] == 0 && buffer[5] == 0, "ID 0", sourceLocation: sourceLocation)
            }
            let usesPseudo = packet.transportProtocol != IPProtocolNumber.icmp
            let copy = Array(buffer)
            let pseudo =
                usesPseudo
                ? Reference.pseudoHeader(
                    copy, version: packet.version, protocol: packet.transportProtocol, length: packet.payload.count)
                : []
            #expect(
                Reference.checksum(pseudo + Array(copy[packet.transportOffset..<length])) == 0,
                "L4 checksum", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [UInt8(4), 6])
    func udpRoundTrips(version: UInt8) throws {
        var rng = SplitMix64(seed: 0xC0 + UInt64(version))
        var buffer = [UInt8](repeating: 0, count: 2048)
        for _ in 0..<2_000 {
            let source = PacketFactory.address(&rng, version: version)
            let destination = PacketFactory.address(&rng, version: version)
            let ports = (UInt16.random(in: 0...UInt16.max, using: &rng), UInt16.random(in: 0...UInt16.max, using: &rng))
            let payload = rng.bytes(Int.random(in: 0...1400, using: &rng))
            let length = buffer.withUnsafeMutableBytes { out in
                payload.withUnsafeBytes { data in
                    PacketBuilder.udp(
                        into: out, source: source, sourcePort: ports.0, destination: destination,
                        destinationPort: ports.1, payload: data)
                }
            }
            #expect(length == (version == 4 ? 28 : 48) + payload.count)
            Self.expectValid(buffer, length: length)
            try buffer.withUnsafeMutableBytes { out in
                let packet = try #require(IPPacketView(UnsafeMutableRawBufferPointer(rebasing: out[0..<length])))
                #expect(packet.source == source)
                #expect(packet.destination == destination)
                let udp = try #require(UDPHeaderView(packet))
                #expect(udp.sourcePort == ports.0)
                #expect(udp.destinationPort == ports.1)
                #expect(udp.length == 8 + payload.count)
                #expect(Array(udp.payload) == payload)
                #expect(udp.checksum != 0)
            }
        }
    }

    @Test func udpRefusesWhatDoesNotFit() {
        var buffer = [UInt8](repeating: 0, count: 100)
        let payload = [UInt8](repeating: 7, count: 73)
        let v4 = IPAddress("10.0.0.1")!
        let v6 = IPAddress("fd00::1")!
        buffer.withUnsafeMutableBytes { out in
            payload.withUnsafeBytes { data in
                #expect(
                    PacketBuilder.udp(
                        into: out, source: v4, sourcePort: 1, destination: v4, destinationPort: 2, payload: data) == 0)
                let fits = UnsafeRawBufferPointer(rebasing: data[0..<72])
                #expect(
                    PacketBuilder.udp(
                        into: out, source: v4, sourcePort: 1, destination: v4, destinationPort: 2, payload: fits) == 100
                )
                #expect(
                    PacketBuilder.udp(
                        into: out, source: v4, sourcePort: 1, destination: v6, destinationPort: 2, payload: fits) == 0)
                #expect(
                    PacketBuilder.udp(
                        into: out, source: v6, sourcePort: 1, destination: v6, destinationPort: 2, payload: fits) == 0)
            }
        }
        // A payload past the 16-bit UDP length.
        var big = [UInt8](repeating: 0, count: 70_000)
        let bigPayload = [UInt8](repeating: 1, count: 65_528)
        big.withUnsafeMutableBytes { out in
            bigPayload.withUnsafeBytes { data in
                #expect(
                    PacketBuilder.udp(
                        into: out, source: v6, sourcePort: 1, destination: v6, destinationPort: 2, payload: data) == 0)
                let largest = UnsafeRawBufferPointer(rebasing: data[0..<65_527])
                #expect(
                    PacketBuilder.udp(
                        into: out, source: v6, sourcePort: 1, destination: v6, destinationPort: 2, payload: largest)
                        == 40 + 65_535)
                #expect(
                    PacketBuilder.udp(
                        into: out, source: v4, sourcePort: 1, destination: v4, destinationPort: 2, payload: largest)
                        == 0)
            }
        }
    }

    @Test func udpReplyBuiltInPlaceOverItsRequest() throws {
        // A reply built in the buffer the request was read into, 8 bytes further on: the payload moves forward
        // by 8 bytes and the source and destination regions overlap.
        var bytes = GoldenPacketTests.ipv6UDP + [UInt8](repeating: 0, count: 64)
        let expectedPayload = Array(GoldenPacketTests.ipv6UDP[48...])
        let length = try bytes.withUnsafeMutableBytes { buffer -> Int in
            let packet = try #require(IPPacketView(buffer))
            let udp = try #require(UDPHeaderView(packet))
            let payload = UnsafeRawBufferPointer(udp.payload)
            return PacketBuilder.udp(
                into: UnsafeMutableRawBufferPointer(rebasing: buffer[8...]), source: packet.destination,
                sourcePort: udp.destinationPort, destination: packet.source, destinationPort: udp.sourcePort,
                payload: payload)
        }
        let reply = Array(bytes[8..<(8 + length)])
        Self.expectValid(reply, length: length)
        #expect(Array(reply[48...]) == expectedPayload)
    }

    @Test func resetForSynAcknowledgesIt() throws {
        for golden in [GoldenPacketTests.ipv4TCPSyn, GoldenPacketTests.ipv6TCPSyn] {
            var input = golden
            var output = [UInt8](repeating: 0xAA, count: 100)
            let (length, expectedSequence, request) = try input.withUnsafeMutableBytes { buffer in
                let packet = try #require(IPPacketView(buffer))
                let tcp = try #require(TCPHeaderView(packet))
                let length = output.withUnsafeMutableBytes { PacketBuilder.tcpReset(into: $0, answering: packet) }
                return (
                    length, tcp.sequence &+ 1, (packet.source, packet.destination, tcp.sourcePort, tcp.destinationPort)
                )
            }
            #expect(length == (golden[0] >> 4 == 4 ? 40 : 60))
            Self.expectValid(output, length: length)
            try output.withUnsafeMutableBytes { buffer in
                let packet = try #require(IPPacketView(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])))
                #expect(packet.source == request.1)
                #expect(packet.destination == request.0)
                let tcp = try #require(TCPHeaderView(packet))
                #expect(tcp.sourcePort == request.3)
                #expect(tcp.destinationPort == request.2)
                #expect(tcp.flags == [.rst, .ack])
                #expect(tcp.sequence == 0)
                #expect(tcp.acknowledgment == expectedSequence)
                #expect(tcp.dataOffset == 20)
                #expect(tcp.window == 0)
                #expect(tcp.payloadLength == 0)
            }
        }
    }

    @Test func resetForAckedSegmentUsesItsAck() throws {
        var rng = SplitMix64(seed: 0xD1)
        for version: UInt8 in [4, 6] {
            for _ in 0..<500 {
                var generated = PacketFactory.random(&rng, version: version, protocol: IPProtocolNumber.tcp)
                let flagsOffset = generated.transportOffset + 13
                generated.bytes[flagsOffset] &= ~TCPFlags.rst.rawValue
                var output = [UInt8](repeating: 0, count: 60)
                // Reset built in place, over the segment it answers.
                let expectations = try generated.bytes.withUnsafeMutableBytes { buffer in
                    let packet = try #require(IPPacketView(buffer))
                    let tcp = try #require(TCPHeaderView(packet))
                    let expected = (tcp.flags, tcp.sequence, tcp.acknowledgment, tcp.sequenceLength)
                    let length = PacketBuilder.tcpReset(into: buffer, answering: packet)
                    #expect(length == (version == 4 ? 40 : 60))
                    output = Array(buffer[0..<length])
                    return expected
                }
                Self.expectValid(output, length: output.count)
                try output.withUnsafeMutableBytes { buffer in
                    let packet = try #require(IPPacketView(buffer))
                    let tcp = try #require(TCPHeaderView(packet))
                    if expectations.0.contains(.ack) {
                        #expect(tcp.flags == .rst)
                        #expect(tcp.sequence == expectations.2)
                        #expect(tcp.acknowledgment == 0)
                    } else {
                        #expect(tcp.flags == [.rst, .ack])
                        #expect(tcp.sequence == 0)
                        #expect(tcp.acknowledgment == expectations.1 &+ expectations.3)
                    }
                }
            }
        }
    }

    @Test func noResetForResetOrFragment() throws {
        var reset = GoldenPacketTests.ipv4TCPSyn
        reset[33] = TCPFlags.rst.rawValue
        var fragment = GoldenPacketTests.ipv4TCPSyn
        fragment[6] = 0x20  // MF
        var tooSmall = GoldenPacketTests.ipv6TCPSyn
        for var bytes in [reset, fragment] {
            try bytes.withUnsafeMutableBytes { buffer in
                let packet = try #require(IPPacketView(buffer))
                var output = [UInt8](repeating: 0, count: 100)
                #expect(output.withUnsafeMutableBytes { PacketBuilder.tcpReset(into: $0, answering: packet) } == 0)
            }
        }
        try tooSmall.withUnsafeMutableBytes { buffer in
            let packet = try #require(IPPacketView(buffer))
            var output = [UInt8](repeating: 0, count: 59)
            #expect(output.withUnsafeMutableBytes { PacketBuilder.tcpReset(into: $0, answering: packet) } == 0)
        }
    }

    @Test(arguments: [UInt8(4), 6])
    func unreachableQuotesWithinLimit(version: UInt8) throws {
        var rng = SplitMix64(seed: 0xE0 + UInt64(version))
        let limit = version == 4 ? 576 : 1280
        let headers = version == 4 ? 28 : 48
        for _ in 0..<1_000 {
            var generated = PacketFactory.random(
                &rng, version: version,
                protocol: Bool.random(using: &rng) ? IPProtocolNumber.tcp : IPProtocolNumber.udp,
                maxPayload: 1500)
            // Keep the source and destination unicast so an error may be sent.
            generated.bytes[version == 4 ? 12 : 8] = 10
            generated.bytes[version == 4 ? 16 : 24] = 10
            let reporter = PacketFactory.address(&rng, version: version)
            let code = UInt8.random(in: 0...15, using: &rng)
            let original = Array(generated.bytes[0..<generated.totalLength])
            var output = [UInt8](repeating: 0, count: 1500)
            let length = try generated.bytes.withUnsafeMutableBytes { buffer in
                let packet = try #require(IPPacketView(buffer))
                return output.withUnsafeMutableBytes {
                    PacketBuilder.icmpUnreachable(into: $0, answering: packet, reporter: reporter, code: code)
                }
            }
            let quote = min(original.count, limit - headers)
            #expect(length == headers + quote)
            Self.expectValid(output, length: length)
            try output.withUnsafeMutableBytes { buffer in
                let packet = try #require(IPPacketView(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])))
                #expect(packet.source == reporter)
                #expect(packet.destination == IPAddress.source(of: original, version: version))
                let icmp = try #require(ICMPHeaderView(packet))
                #expect(icmp.type == (version == 4 ? 3 : 1))
                #expect(icmp.code == code)
                #expect(icmp.isError)
                #expect(icmp.identifier == 0 && icmp.sequence == 0)  // "unused" must be zero
                #expect(Array(icmp.payload) == Array(original[0..<quote]))
            }
        }
    }

    @Test func unreachableBuiltInPlace() throws {
        var bytes = GoldenPacketTests.ipv4UDPDNS + [UInt8](repeating: 0, count: 40)
        let original = GoldenPacketTests.ipv4UDPDNS
        let length = try bytes.withUnsafeMutableBytes { buffer in
            let packet = try #require(IPPacketView(buffer))
            return PacketBuilder.icmpUnreachable(into: buffer, answering: packet, reporter: packet.destination, code: 3)
        }
        #expect(length == 28 + original.count)
        Self.expectValid(bytes, length: length)
        #expect(Array(bytes[28..<length]) == original)
        #expect(Array(bytes[12..<16]) == [8, 8, 8, 8])
        #expect(Array(bytes[16..<20]) == [10, 0, 0, 2])
    }

    @Test func noUnreachableWhereRulesForbidIt() throws {
        func answer(_ bytes: [UInt8], bufferSize: Int = 1500) throws -> Int {
            var copy = bytes
            return try copy.withUnsafeMutableBytes { buffer in
                let packet = try #require(IPPacketView(buffer))
                var output = [UInt8](repeating: 0, count: bufferSize)
                let reporter = packet.destination
                return output.withUnsafeMutableBytes {
                    PacketBuilder.icmpUnreachable(into: $0, answering: packet, reporter: reporter, code: 1)
                }
            }
        }
        // Controls: an echo request and a UDP query get an answer.
        #expect(try answer(GoldenPacketTests.ipv4Echo) > 0)
        #expect(try answer(GoldenPacketTests.ipv6Echo) > 0)
        #expect(try answer(GoldenPacketTests.ipv4UDPDNS) > 0)
        // An ICMP error is never answered with one.
        var error = GoldenPacketTests.ipv4Echo
        error[20] = 3
        #expect(try answer(error) == 0)
        var errorV6 = GoldenPacketTests.ipv6Echo
        errorV6[40] = 1
        #expect(try answer(errorV6) == 0)
        // Multicast destinations (the MLD report goes to ff02::16) and multicast or unspecified sources.
        #expect(try answer(GoldenPacketTests.ipv6HopByHop) == 0)
        var multicast = GoldenPacketTests.ipv4UDPDNS
        multicast[16] = 239
        #expect(try answer(multicast) == 0)
        var broadcast = GoldenPacketTests.ipv4UDPDNS
        broadcast.replaceSubrange(16..<20, with: [255, 255, 255, 255])
        #expect(try answer(broadcast) == 0)
        var unspecified = GoldenPacketTests.ipv4UDPDNS
        unspecified.replaceSubrange(12..<16, with: [0, 0, 0, 0])
        #expect(try answer(unspecified) == 0)
        // A non-first fragment.
        var later = GoldenPacketTests.ipv4UDPDNS
        later[7] = 1
        #expect(try answer(later) == 0)
        // A buffer without room for the headers plus IP header and 8 bytes of the original.
        #expect(try answer(GoldenPacketTests.ipv4UDPDNS, bufferSize: 55) == 0)
        #expect(try answer(GoldenPacketTests.ipv4UDPDNS, bufferSize: 56) == 56)
        // Wrong-family reporter.
        var copy = GoldenPacketTests.ipv4UDPDNS
        try copy.withUnsafeMutableBytes { buffer in
            let packet = try #require(IPPacketView(buffer))
            var output = [UInt8](repeating: 0, count: 600)
            #expect(
                output.withUnsafeMutableBytes {
                    PacketBuilder.icmpUnreachable(into: $0, answering: packet, reporter: IPAddress("::1")!, code: 1)
                } == 0)
        }
    }

    @Test func echoReplyAnswersGoldenRequestsInPlace() throws {
        for golden in [GoldenPacketTests.ipv4Echo, GoldenPacketTests.ipv6Echo] {
            var bytes = golden
            let (length, payload) = try bytes.withUnsafeMutableBytes { buffer -> (Int, [UInt8]) in
                let packet = try #require(IPPacketView(buffer))
                let icmp = try #require(ICMPHeaderView(packet))
                let payload = Array(icmp.payload)
                let length = PacketBuilder.icmpEchoReply(
                    into: buffer, source: packet.destination, destination: packet.source,
                    identifier: icmp.identifier, sequence: icmp.sequence, payload: UnsafeRawBufferPointer(icmp.payload))
                return (length, payload)
            }
            #expect(length == golden.count)
            Self.expectValid(bytes, length: length)
            try bytes.withUnsafeMutableBytes { buffer in
                let packet = try #require(IPPacketView(buffer))
                let icmp = try #require(ICMPHeaderView(packet))
                #expect(icmp.isEchoReply)
                #expect(icmp.code == 0)
                #expect(icmp.identifier == (golden[0] >> 4 == 4 ? 0x4D2E : 0x4D2F))
                #expect(icmp.sequence == (golden[0] >> 4 == 4 ? 1 : 7))
                #expect(Array(icmp.payload) == payload)
            }
            // Source and destination swapped relative to the request.
            if golden[0] >> 4 == 4 {
                #expect(Array(bytes[12..<16]) == Array(golden[16..<20]))
                #expect(Array(bytes[16..<20]) == Array(golden[12..<16]))
            } else {
                #expect(Array(bytes[8..<24]) == Array(golden[24..<40]))
                #expect(Array(bytes[24..<40]) == Array(golden[8..<24]))
            }
        }
    }

    @Test func echoRequestMatchesGoldenBytes() throws {
        // Rebuilding the golden ICMPv6 request gives the same ICMP bytes (and checksum) as the Python script.
        let golden = GoldenPacketTests.ipv6Echo
        var output = [UInt8](repeating: 0, count: 200)
        let payload = Array(golden[48...])
        let length = output.withUnsafeMutableBytes { out in
            payload.withUnsafeBytes {
                PacketBuilder.icmpEchoRequest(
                    into: out, source: IPAddress("2001:db8::1")!, destination: IPAddress("2606:4700:4700::1111")!,
                    identifier: 0x4D2F, sequence: 7, payload: $0)
            }
        }
        #expect(length == golden.count)
        #expect(Array(output[40..<length]) == Array(golden[40...]))
        #expect(Array(output[8..<40]) == Array(golden[8..<40]))
        Self.expectValid(output, length: length)
        // And the IPv4 one, whose only differences from the golden packet are the ID (0) and flags (DF).
        var output4 = [UInt8](repeating: 0, count: 200)
        let golden4 = GoldenPacketTests.ipv4Echo
        let length4 = output4.withUnsafeMutableBytes { out in
            Array(golden4[28...]).withUnsafeBytes {
                PacketBuilder.icmpEchoRequest(
                    into: out, source: IPAddress("10.0.0.2")!, destination: IPAddress("1.1.1.1")!,
                    identifier: 0x4D2E, sequence: 1, payload: $0)
            }
        }
        #expect(Array(output4[20..<length4]) == Array(golden4[20...]))
        Self.expectValid(output4, length: length4)
    }

    @Test func echoMessageWithoutIPHeader() {
        let payload: [UInt8] = Array(0..<37)
        var output = [UInt8](repeating: 0xFF, count: 64)
        for family in [IPFamily.v4, .v6] {
            for request in [true, false] {
                let length = output.withUnsafeMutableBytes { out in
                    payload.withUnsafeBytes {
                        PacketBuilder.icmpEchoMessage(
                            into: out, request: request, identifier: 0xBEEF, sequence: 0x0102, payload: $0,
                            family: family)
                    }
                }
                #expect(length == 45)
                let type: UInt8 =
                    switch (family, request) {
                    case (.v4, true): 8
                    case (.v4, false): 0
                    case (.v6, true): 128
                    case (.v6, false): 129
                    }
                #expect(Array(output[0..<2]) == [type, 0])
                #expect(Array(output[4..<8]) == [0xBE, 0xEF, 0x01, 0x02])
                #expect(Array(output[8..<45]) == payload)
                if family == .v4 {
                    #expect(Reference.checksum(Array(output[0..<45])) == 0)
                } else {
                    #expect(Array(output[2..<4]) == [0, 0], "the kernel fills the ICMPv6 checksum")
                }
            }
        }
        output.withUnsafeMutableBytes { out in
            payload.withUnsafeBytes {
                #expect(
                    PacketBuilder.icmpEchoMessage(
                        into: UnsafeMutableRawBufferPointer(rebasing: out[0..<44]), request: true, identifier: 1,
                        sequence: 1, payload: $0, family: .v4) == 0)
            }
        }
    }
}

extension IPAddress {
    /// The source address read from raw packet bytes (test helper, independent of `IPPacketView`).
    static func source(of bytes: [UInt8], version: UInt8) -> IPAddress? {
        if version == 4 {
            return IPAddress(bytes[12..<16].map(String.init).joined(separator: "."))
        }
        let groups = stride(from: 8, to: 24, by: 2).map {
            String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
        }
        return IPAddress(groups.joined(separator: ":"))
    }
}
