import SluiceNet
import SluiceTestSupport
import Testing

@testable import SluicePacket

/// Random and mutated buffers: parsers return nil or a consistent view, and nothing traps. A trap would kill
/// the test process, so "never traps" is checked by running at all; consistency by the expectations.
@Suite("Hostile input")
struct HostileInputTests {
    /// Mutations of a valid packet, each aimed at one length or chain the parser trusts.
    static func mutate(_ bytes: inout [UInt8], _ rng: inout SplitMix64, version: UInt8) {
        let mutations = Int.random(in: 1...4, using: &rng)
        for _ in 0..<mutations {
            guard !bytes.isEmpty else { return }
            switch Int.random(in: 0...9, using: &rng) {
            case 0:  // flip a random byte
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 1:  // truncate
                bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng))
            case 2:  // IHL / version nibble
                bytes[0] = UInt8.random(in: 0...255, using: &rng)
            case 3:  // IPv4 total length or IPv6 payload length lies
                guard bytes.count >= 6 else { break }
                let offset = version == 4 ? 2 : 4
                Reference.setWord(&bytes, offset, UInt16.random(in: 0...UInt16.max, using: &rng))
            case 4:  // next header becomes an extension header
                guard bytes.count >= 10 else { break }
                let choices: [UInt8] = [0, 43, 44, 60, 51, 50, 59, 6, 17, 58, 1]
                bytes[version == 4 ? 9 : 6] = choices[Int.random(in: 0..<choices.count, using: &rng)]
            case 5:  // a chain of extension headers pointing at each other, with wild lengths
                guard version == 6, bytes.count >= 48 else { break }
                bytes[6] = [0, 43, 60, 44][Int.random(in: 0...3, using: &rng)]
                var offset = 40
                while offset + 2 <= bytes.count && Int.random(in: 0...5, using: &rng) != 0 {
                    bytes[offset] = [0, 43, 60, 44, 6, 17][Int.random(in: 0...5, using: &rng)]
                    bytes[offset + 1] = Bool.random(using: &rng) ? 0 : UInt8.random(in: 0...255, using: &rng)
                    offset += (Int(bytes[offset + 1]) + 1) * 8
                }
            case 6:  // TCP data offset
                guard bytes.count > 60 else { break }
                bytes[Int.random(in: 20...60, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 7:  // UDP length
                guard bytes.count > 50 else { break }
                Reference.setWord(&bytes, version == 4 ? 24 : 44, UInt16.random(in: 0...UInt16.max, using: &rng))
            case 8:  // fragment fields
                guard bytes.count >= 8 else { break }
                bytes[6] = UInt8.random(in: 0...255, using: &rng)
                bytes[7] = UInt8.random(in: 0...255, using: &rng)
            default:  // grow with garbage
                bytes += rng.bytes(Int.random(in: 1...40, using: &rng))
            }
        }
    }

    static func exercise(_ bytes: inout [UInt8], _ rng: inout SplitMix64, scratch: inout [UInt8], note: String) {
        let before = bytes
        var rewriteRefused = false
        bytes.withUnsafeMutableBytes { buffer in
            guard var packet = IPPacketView(buffer) else { return }
            // Consistency of the view with the buffer it came from.
            #expect(packet.version == 4 || packet.version == 6, "\(note)")
            #expect(packet.totalLength <= buffer.count, "\(note)")
            #expect(packet.transportOffset >= (packet.version == 4 ? 20 : 40), "\(note)")
            #expect(packet.transportOffset <= packet.totalLength, "\(note)")
            #expect(packet.payload.count == packet.totalLength - packet.transportOffset, "\(note)")
            #expect(packet.bytes.count == packet.totalLength, "\(note)")
            _ = (packet.source, packet.destination, packet.ttl, packet.identification, packet.isHeaderChecksumValid)
            _ = packet.fragmentKind
            if let tcp = TCPHeaderView(packet) {
                #expect(tcp.dataOffset >= 20 && tcp.dataOffset <= packet.payload.count, "\(note)")
                #expect(tcp.payloadLength >= 0, "\(note)")
                #expect(tcp.options.count + 20 + tcp.payload.count == packet.payload.count, "\(note)")
                _ = (tcp.sourcePort, tcp.flags, tcp.sequenceLength, tcp.maximumSegmentSize)
            }
            if let udp = UDPHeaderView(packet) {
                #expect(udp.length >= 8 && udp.length <= packet.payload.count, "\(note)")
                #expect(udp.payload.count == udp.length - 8, "\(note)")
            }
            if let icmp = ICMPHeaderView(packet) {
                #expect(icmp.payload.count == packet.payload.count - 8, "\(note)")
                _ = (icmp.type, icmp.identifier, icmp.isError)
            }
            // Builders answering a hostile packet, into a separate buffer and in place.
            scratch.withUnsafeMutableBytes { out in
                let reset = PacketBuilder.tcpReset(into: out, answering: packet)
                if reset > 0 { #expect(IPPacketView(UnsafeMutableRawBufferPointer(rebasing: out[0..<reset])) != nil) }
                let error = PacketBuilder.icmpUnreachable(
                    into: out, answering: packet, reporter: packet.destination, code: 3)
                if error > 0 { #expect(IPPacketView(UnsafeMutableRawBufferPointer(rebasing: out[0..<error])) != nil) }
            }
            // A rewrite with random addresses of either family.
            let version: UInt8 =
                Int.random(in: 0...3, using: &rng) == 0 ? (packet.version == 4 ? 6 : 4) : packet.version
            let done = NATRewrite.rewrite(
                &packet, source: PacketFactory.address(&rng, version: version), sourcePort: 1234,
                destination: PacketFactory.address(&rng, version: version), destinationPort: 80)
            rewriteRefused = !done
        }
        if rewriteRefused { #expect(bytes == before, "a refused rewrite changed the packet: \(note)") }
        bytes.withUnsafeMutableBytes { buffer in
            if let packet = IPPacketView(buffer) {
                _ = PacketBuilder.icmpUnreachable(into: buffer, answering: packet, reporter: packet.source, code: 1)
            }
        }
    }

    @Test func randomBuffers() {
        var rng = SplitMix64(seed: 0xF00D)
        var scratch = [UInt8](repeating: 0, count: 1500)
        for iteration in 0..<20_000 {
            var bytes = rng.bytes(Int.random(in: 0...120, using: &rng))
            // Mostly plausible version nibbles, so the parser gets past the first check.
            if !bytes.isEmpty && Int.random(in: 0...3, using: &rng) != 0 {
                bytes[0] = (Bool.random(using: &rng) ? 0x40 : 0x60) | (bytes[0] & 0x0F)
            }
            Self.exercise(&bytes, &rng, scratch: &scratch, note: "random seed 0xF00D iteration \(iteration)")
        }
    }

    @Test func mutatedPackets() {
        var rng = SplitMix64(seed: 0xBAD)
        var scratch = [UInt8](repeating: 0, count: 1500)
        let protocols: [UInt8] = [IPProtocolNumber.tcp, IPProtocolNumber.udp, 0]
        for iteration in 0..<30_000 {
            let version: UInt8 = Bool.random(using: &rng) ? 4 : 6
            var proto = protocols[Int.random(in: 0..<protocols.count, using: &rng)]
            if proto == 0 { proto = version == 4 ? IPProtocolNumber.icmp : IPProtocolNumber.icmpv6 }
            var bytes = PacketFactory.random(&rng, version: version, protocol: proto, maxPayload: 80).bytes
            Self.mutate(&bytes, &rng, version: version)
            Self.exercise(&bytes, &rng, scratch: &scratch, note: "mutated seed 0xBAD iteration \(iteration)")
        }
    }

    @Test func extensionHeaderEdgeCases() {
        // Fixed header + extension bytes + 8 bytes of UDP-ish data, payload length set to cover it all.
        func packet(next: UInt8, extensions: [UInt8], tail: [UInt8] = [0, 1, 0, 2, 0, 8, 0, 0]) -> [UInt8] {
            let payloadLength = extensions.count + tail.count
            var bytes: [UInt8] = [0x60, 0, 0, 0, UInt8(payloadLength >> 8), UInt8(payloadLength & 0xFF), next, 64]
            bytes += [UInt8](repeating: 0xFD, count: 32)
            return bytes + extensions + tail
        }
        func parse(_ bytes: [UInt8]) -> (UInt8, Int, Bool)? {
            var copy = bytes
            return copy.withUnsafeMutableBytes { buffer in
                IPPacketView(buffer).map { ($0.transportProtocol, $0.transportOffset, $0.isFragment) }
            }
        }
        let pad6: [UInt8] = [1, 4, 0, 0, 0, 0]  // PadN filling an 8-byte header
        // Hop-by-hop then destination options then UDP.
        let chain = packet(next: 0, extensions: [60, 0] + pad6 + [17, 0] + pad6)
        #expect(parse(chain).map { [$0.0 == 17, $0.1 == 56, !$0.2] } == [true, true, true])
        // Hop-by-hop not first: rejected.
        #expect(parse(packet(next: 60, extensions: [0, 0] + pad6 + [17, 0] + pad6)) == nil)
        // A header whose length runs past the packet.
        #expect(parse(packet(next: 60, extensions: [17, 5] + pad6)) == nil)
        // A chain of nine destination-options headers exceeds the walk limit; eight is fine.
        let eight = (0..<7).flatMap { _ in [60, 0] + pad6 } + [17, 0] + pad6
        #expect(parse(packet(next: 60, extensions: eight))?.0 == 17)
        let nine = (0..<8).flatMap { _ in [60, 0] + pad6 } + [17, 0] + pad6
        #expect(parse(packet(next: 60, extensions: nine)) == nil)
        // Fragment header, first fragment: walked through to UDP; later fragment: stops at it.
        let first = packet(next: 44, extensions: [17, 0, 0x00, 0x01, 0, 0, 0x12, 0x34])
        #expect(parse(first).map { [$0.0 == 17, $0.1 == 48, $0.2] } == [true, true, true])
        let later = packet(next: 44, extensions: [17, 0, 0x00, 0xB8, 0, 0, 0x12, 0x34])
        var laterBytes = later
        laterBytes.withUnsafeMutableBytes { buffer in
            let view = IPPacketView(buffer)
            #expect(view?.fragmentOffset == 0xB8)
            #expect(view?.fragmentKind == .ipv6Subsequent)
            #expect(view?.identification == 0x1234)
            #expect(view.map { UDPHeaderView($0) == nil } == true)
        }
        // Two fragment headers.
        #expect(parse(packet(next: 44, extensions: [44, 0, 0, 1, 0, 0, 0, 1, 17, 0, 0, 1, 0, 0, 0, 1])) == nil)
        // AH and ESP stop the walk; No Next Header is a complete packet.
        #expect(parse(packet(next: 51, extensions: []))?.0 == 51)
        #expect(parse(packet(next: 50, extensions: []))?.0 == 50)
        #expect(parse(packet(next: 59, extensions: [], tail: []))?.1 == 40)
        // A jumbogram (payload length 0 with a Hop-by-Hop header) is rejected.
        var jumbo = packet(next: 0, extensions: [17, 0, 0xC2, 4, 0, 1, 0, 0])
        jumbo[4] = 0
        jumbo[5] = 0
        #expect(parse(jumbo) == nil)
    }

    @Test func ipv4LengthEdgeCases() {
        func parse(_ bytes: [UInt8]) -> IPPacketViewSummary? {
            var copy = bytes
            return copy.withUnsafeMutableBytes { buffer in IPPacketView(buffer).map(IPPacketViewSummary.init) }
        }
        let golden = GoldenPacketTests.ipv4UDPDNS
        #expect(parse(golden) != nil)
        #expect(parse(Array(golden.dropLast())) == nil, "total length larger than the buffer")
        var ihlTooSmall = golden
        ihlTooSmall[0] = 0x44
        #expect(parse(ihlTooSmall) == nil)
        var ihlPastTotal = golden
        ihlPastTotal[0] = 0x4F
        Reference.setWord(&ihlPastTotal, 2, 56)
        #expect(parse(ihlPastTotal) == nil)
        var headerOnly = golden
        Reference.setWord(&headerOnly, 2, 20)
        #expect(parse(headerOnly)?.payloadCount == 0)
        var shorter = golden + [1, 2, 3]
        Reference.setWord(&shorter, 2, 40)
        #expect(parse(shorter)?.totalLength == 40)
        #expect(parse([]) == nil)
        #expect(parse([0x45]) == nil)
        #expect(parse(Array(golden[0..<19])) == nil)
        var version5 = golden
        version5[0] = 0x55
        #expect(parse(version5) == nil)
        var later = golden
        later[6] = 0
        later[7] = 3
        #expect(parse(later)?.fragmentKind == .ipv4Subsequent)
        later.withUnsafeMutableBytes { buffer in
            #expect(IPPacketView(buffer).map { UDPHeaderView($0) == nil && TCPHeaderView($0) == nil } == true)
        }
        var first = golden
        first[6] = 0x20
        #expect(parse(first)?.fragmentKind == .ipv4First)
    }

    @Test func fragmentCountersCount() {
        var counters = FragmentCounters()
        var rng = SplitMix64(seed: 0xF4)
        var expected = [FragmentKind: UInt64]()
        for _ in 0..<1_000 {
            var bytes = Bool.random(using: &rng) ? GoldenPacketTests.ipv4UDPDNS : GoldenPacketTests.ipv6UDP
            let kind: FragmentKind?
            if bytes[0] >> 4 == 4 {
                switch Int.random(in: 0...2, using: &rng) {
                case 0: kind = nil
                case 1:
                    bytes[6] = 0x20
                    kind = .ipv4First
                default:
                    bytes[7] = 0x10
                    kind = .ipv4Subsequent
                }
            } else {
                switch Int.random(in: 0...2, using: &rng) {
                case 0: kind = nil
                case let choice:
                    // Insert a Fragment header in front of the UDP header.
                    let offsetField: [UInt8] = choice == 1 ? [0, 1] : [0x05, 0xA8]
                    bytes.insert(contentsOf: [17, 0] + offsetField + [0xCA, 0xFE, 0xBA, 0xBE], at: 40)
                    bytes[6] = 44
                    Reference.setWord(&bytes, 4, Reference.word(bytes, 4) + 8)
                    kind = choice == 1 ? .ipv6First : .ipv6Subsequent
                }
            }
            bytes.withUnsafeMutableBytes { buffer in
                guard let packet = IPPacketView(buffer) else {
                    Issue.record("fragment did not parse")
                    return
                }
                #expect(counters.record(packet) == kind)
            }
            if let kind { expected[kind, default: 0] += 1 }
        }
        for kind in FragmentKind.allCases { #expect(counters[kind] == expected[kind, default: 0]) }
        #expect(counters.total == expected.values.reduce(0, +))
        var merged = counters
        merged += counters
        #expect(merged.total == 2 * counters.total)
    }
}

/// The parts of a view worth comparing in tests, as a value that outlives the buffer.
struct IPPacketViewSummary: Equatable {
    var totalLength: Int
    var payloadCount: Int
    var fragmentKind: FragmentKind?

    init(_ packet: IPPacketView) {
        totalLength = packet.totalLength
        payloadCount = packet.payload.count
        fragmentKind = packet.fragmentKind
    }
}
