import SluiceNet
import SluiceTestSupport
import Testing

@testable import SluicePacket

/// NAT rewrites: incremental checksums equal full recomputation, and rewriting back restores every byte.
@Suite("NAT rewrite")
struct NATRewriteTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var version: UInt8
        var transportProtocol: UInt8
        var seed: UInt64
        var testDescription: String {
            "IPv\(version) \(transportProtocol == IPProtocolNumber.tcp ? "TCP" : "UDP") seed \(seed)"
        }
    }

    static let cases = [
        Case(version: 4, transportProtocol: IPProtocolNumber.tcp, seed: 0xA1),
        Case(version: 4, transportProtocol: IPProtocolNumber.udp, seed: 0xA2),
        Case(version: 6, transportProtocol: IPProtocolNumber.tcp, seed: 0xA3),
        Case(version: 6, transportProtocol: IPProtocolNumber.udp, seed: 0xA4),
    ]

    /// Checks the packet's checksums against a from-scratch computation.
    static func expectChecksumsExact(_ generated: GeneratedPacket, _ bytes: [UInt8], originalL4Checksum: UInt16) {
        if generated.version == 4 {
            #expect(Reference.word(bytes, 10) == Reference.ipv4HeaderChecksum(bytes))
        }
        let field = Reference.word(bytes, generated.transportOffset + generated.checksumOffset)
        if generated.transportProtocol == IPProtocolNumber.udp && originalL4Checksum == 0 {
            #expect(field == 0)
            return
        }
        var expected = Reference.transportChecksum(
            bytes, version: generated.version, protocol: generated.transportProtocol,
            transportOffset: generated.transportOffset, length: generated.totalLength - generated.transportOffset,
            checksumOffset: generated.checksumOffset)
        if generated.transportProtocol == IPProtocolNumber.udp && expected == 0 { expected = 0xFFFF }
        #expect(field == expected)
    }

    @Test(arguments: cases)
    func incrementalEqualsFullAndRoundTrips(_ testCase: Case) throws {
        var rng = SplitMix64(seed: testCase.seed)
        for iteration in 0..<10_000 {
            let generated = PacketFactory.random(
                &rng, version: testCase.version, protocol: testCase.transportProtocol, maxPayload: 200)
            let original = generated.bytes
            let originalL4Checksum = Reference.word(original, generated.transportOffset + generated.checksumOffset)
            var bytes = original
            let newSource = PacketFactory.address(&rng, version: testCase.version)
            let newDestination = PacketFactory.address(&rng, version: testCase.version)
            let newSourcePort = UInt16.random(in: 0...UInt16.max, using: &rng)
            let newDestinationPort = UInt16.random(in: 0...UInt16.max, using: &rng)
            var oldSource: IPAddress?
            var oldDestination: IPAddress?
            var oldPorts: (UInt16, UInt16) = (0, 0)
            let rewritten = bytes.withUnsafeMutableBytes { buffer -> Bool in
                guard var packet = IPPacketView(buffer) else { return false }
                oldSource = packet.source
                oldDestination = packet.destination
                oldPorts = (
                    Reference.word(original, generated.transportOffset),
                    Reference.word(original, generated.transportOffset + 2)
                )
                let done = NATRewrite.rewrite(
                    &packet, source: newSource, sourcePort: newSourcePort, destination: newDestination,
                    destinationPort: newDestinationPort)
                #expect(packet.source == newSource)
                #expect(packet.destination == newDestination)
                return done
            }
            try #require(rewritten, "\(testCase) iteration \(iteration)")
            Self.expectChecksumsExact(generated, bytes, originalL4Checksum: originalL4Checksum)
            #expect(Reference.word(bytes, generated.transportOffset) == newSourcePort)
            #expect(Reference.word(bytes, generated.transportOffset + 2) == newDestinationPort)
            // And back again: every byte as it was, slack included.
            let restored = bytes.withUnsafeMutableBytes { buffer -> Bool in
                guard var packet = IPPacketView(buffer), let oldSource, let oldDestination else { return false }
                return NATRewrite.rewrite(
                    &packet, source: oldSource, sourcePort: oldPorts.0, destination: oldDestination,
                    destinationPort: oldPorts.1)
            }
            #expect(restored)
            #expect(bytes == original, "\(testCase) iteration \(iteration)")
        }
    }

    /// Checksum offload (`VIRTIO_NET_HDR_F_NEEDS_CSUM`): the field holds only the pseudo-header sum. After the
    /// rewrite, completing it the way the kernel does (summing the segment from `csum_start` with the field as
    /// it is, complemented) must give the checksum of the rewritten packet computed from scratch.
    @Test(arguments: [UInt8(4), 6])
    func partialChecksumCompletesToTheFullOne(version: UInt8) throws {
        var rng = SplitMix64(seed: 0xC0 + UInt64(version))
        for iteration in 0..<5_000 {
            let generated = PacketFactory.random(
                &rng, version: version, protocol: IPProtocolNumber.tcp, maxPayload: 300)
            var bytes = generated.bytes
            let field = generated.transportOffset + generated.checksumOffset
            let length = generated.totalLength - generated.transportOffset
            // What the kernel leaves in a CHECKSUM_PARTIAL packet: the folded pseudo-header sum, not complemented.
            let partial = bytes.withUnsafeBytes { raw -> UInt16 in
                let packet = IPPacketView(UnsafeMutableRawBufferPointer(mutating: raw))!
                return Checksum.fold(
                    UInt64(
                        Checksum.pseudoHeaderSum(
                            source: packet.source, destination: packet.destination, protocol: IPProtocolNumber.tcp,
                            length: length)))
            }
            bytes[field] = UInt8(partial >> 8)
            bytes[field + 1] = UInt8(partial & 0xFF)
            let newSource = PacketFactory.address(&rng, version: version)
            let newDestination = PacketFactory.address(&rng, version: version)
            let ports = (UInt16.random(in: 0...UInt16.max, using: &rng), UInt16.random(in: 0...UInt16.max, using: &rng))
            let rewritten = bytes.withUnsafeMutableBytes { buffer -> Bool in
                guard var packet = IPPacketView(buffer) else { return false }
                return NATRewrite.rewrite(
                    &packet, source: newSource, sourcePort: ports.0, destination: newDestination,
                    destinationPort: ports.1,
                    partialChecksum: true)
            }
            try #require(rewritten)
            if version == 4 { #expect(Reference.word(bytes, 10) == Reference.ipv4HeaderChecksum(bytes)) }
            // Completion: one's complement sum over the segment, the partial field included, complemented.
            let completed = bytes.withUnsafeBytes { raw in
                Checksum.internet(
                    UnsafeRawBufferPointer(rebasing: raw[generated.transportOffset..<generated.totalLength]))
            }
            var full = bytes
            full[field] = 0
            full[field + 1] = 0
            let expected = Reference.transportChecksum(
                full, version: version, protocol: IPProtocolNumber.tcp, transportOffset: generated.transportOffset,
                length: length, checksumOffset: generated.checksumOffset)
            #expect(completed == expected, "IPv\(version) iteration \(iteration)")
        }
    }

    @Test("virtio-net header: fields little-endian at their offsets, round trip, flags")
    func virtioNetHeader() throws {
        let wire: [UInt8] = [0x01, 0x01, 0x36, 0x00, 0xa8, 0x05, 0x14, 0x00, 0x10, 0x00]
        let header = try #require(wire.withUnsafeBytes { VirtioNetHeader($0) })
        #expect(header.needsChecksum && header.isSegmented)
        #expect(header.gsoType == VirtioNetHeader.gsoTCPv4 && header.headerLength == 54 && header.gsoSize == 1448)
        #expect(header.csumStart == 20 && header.csumOffset == 16)
        #expect(header.bytes == wire)
        #expect(VirtioNetHeader.plain.bytes == [UInt8](repeating: 0, count: 10))
        #expect(!VirtioNetHeader.plain.isSegmented && !VirtioNetHeader.plain.needsChecksum)
        var ecn = VirtioNetHeader()
        ecn.gsoType = VirtioNetHeader.gsoTCPv6 | VirtioNetHeader.gsoECN
        #expect(ecn.isSegmented)
        #expect([UInt8](repeating: 0, count: 9).withUnsafeBytes { VirtioNetHeader($0) } == nil, "short")
    }

    /// UDP's checksum that computes to zero must go out as 0xFFFF (RFC 768); build packets where the rewrite
    /// lands exactly there, and packets that start there.
    @Test(arguments: [UInt8(4), 6])
    func udpZeroChecksumBecomesAllOnes(version: UInt8) throws {
        var rng = SplitMix64(seed: 0xB0 + UInt64(version))
        for _ in 0..<2_000 {
            var generated = PacketFactory.random(&rng, version: version, protocol: IPProtocolNumber.udp, maxPayload: 64)
            let offset = generated.transportOffset
            if Reference.word(generated.bytes, offset + 6) == 0 {
                // Give the IPv4 "no checksum" packets a real one, so the 0xFFFF rule is what is being tested.
                let computed = Reference.transportChecksum(
                    generated.bytes, version: version, protocol: IPProtocolNumber.udp, transportOffset: offset,
                    length: generated.totalLength - offset, checksumOffset: 6)
                Reference.setWord(&generated.bytes, offset + 6, computed == 0 ? 0xFFFF : computed)
            }
            let newSource = PacketFactory.address(&rng, version: version)
            let newDestination = PacketFactory.address(&rng, version: version)
            let newSourcePort = UInt16.random(in: 0...UInt16.max, using: &rng)
            // Choose the destination port so that the new checksum computes to 0: the data, with that port
            // word 0, must sum to ~port.
            var probe = generated.bytes
            probe.replaceSubrange(
                (version == 4 ? 12 : 8)..<(version == 4 ? 20 : 40),
                with: PacketFactory.addressBytes(newSource) + PacketFactory.addressBytes(newDestination))
            Reference.setWord(&probe, offset, newSourcePort)
            Reference.setWord(&probe, offset + 2, 0)
            let length = generated.totalLength - offset
            let partial = Reference.transportChecksum(
                probe, version: version, protocol: IPProtocolNumber.udp, transportOffset: offset, length: length,
                checksumOffset: 6)
            let destinationPort = partial  // sum S with port 0 has ~S == partial; adding partial gives 0xFFFF.
            guard destinationPort != 0 else { continue }
            var bytes = generated.bytes
            let originalChecksum = Reference.word(bytes, offset + 6)
            let done = bytes.withUnsafeMutableBytes { buffer -> Bool in
                guard var packet = IPPacketView(buffer) else { return false }
                return NATRewrite.rewrite(
                    &packet, source: newSource, sourcePort: newSourcePort, destination: newDestination,
                    destinationPort: destinationPort)
            }
            try #require(done)
            #expect(Reference.word(bytes, offset + 6) == 0xFFFF)
            generated.bytes = bytes
            Self.expectChecksumsExact(generated, bytes, originalL4Checksum: originalChecksum)
        }
    }

    @Test func ipv4UDPWithoutChecksumStaysWithout() throws {
        var bytes = GoldenPacketTests.ipv4UDPDNS
        bytes[26] = 0
        bytes[27] = 0
        try bytes.withUnsafeMutableBytes { buffer in
            var packet = try #require(IPPacketView(buffer))
            #expect(
                NATRewrite.rewrite(
                    &packet, source: IPAddress("198.18.0.1")!, sourcePort: 1, destination: IPAddress("127.0.0.1")!,
                    destinationPort: 5353))
            #expect(packet.isHeaderChecksumValid)
            #expect(UDPHeaderView(packet)?.checksum == 0)
        }
    }

    @Test func goldenSynRewrittenToLocalListener() throws {
        // What the TUN worker does with a SYN: send it to the local listener, replies come back rewritten.
        var bytes = GoldenPacketTests.ipv4TCPSyn
        try bytes.withUnsafeMutableBytes { buffer in
            var packet = try #require(IPPacketView(buffer))
            #expect(
                NATRewrite.rewrite(
                    &packet, source: IPAddress("198.18.0.7")!, sourcePort: 40001,
                    destination: IPAddress("172.19.0.1")!, destinationPort: 7890))
            #expect(packet.isHeaderChecksumValid)
            let tcp = try #require(TCPHeaderView(packet))
            #expect(tcp.sourcePort == 40001)
            #expect(tcp.destinationPort == 7890)
            #expect(tcp.sequence == 0x1234_5678)
            #expect(Checksum.internet(UnsafeRawBufferPointer(packet.payload), initial: packet.pseudoHeaderSum) == 0)
        }
    }

    @Test func refusesWhatItCannotRewrite() throws {
        let v4 = IPAddress("10.1.1.1")!
        let v6 = IPAddress("fd00::1")!
        func attempt(_ bytes: [UInt8], source: IPAddress, destination: IPAddress) throws -> Bool {
            var copy = bytes
            let result = try copy.withUnsafeMutableBytes { buffer in
                var packet = try #require(IPPacketView(buffer))
                return NATRewrite.rewrite(
                    &packet, source: source, sourcePort: 1, destination: destination, destinationPort: 2)
            }
            if !result { #expect(copy == bytes, "a refused rewrite must leave the packet unchanged") }
            return result
        }
        // Family mismatch, either address.
        #expect(try !attempt(GoldenPacketTests.ipv4TCPSyn, source: v6, destination: v6))
        #expect(try !attempt(GoldenPacketTests.ipv4TCPSyn, source: v4, destination: v6))
        #expect(try !attempt(GoldenPacketTests.ipv6TCPSyn, source: v6, destination: v4))
        // Other protocols.
        #expect(try !attempt(GoldenPacketTests.ipv4Echo, source: v4, destination: v4))
        #expect(try !attempt(GoldenPacketTests.ipv6HopByHop, source: v6, destination: v6))
        // Fragments: MF set on an otherwise fine packet.
        var fragment = GoldenPacketTests.ipv4UDPDNS
        fragment[6] |= 0x20
        #expect(try !attempt(fragment, source: v4, destination: v4))
        // Truncated L4 header: a TCP packet 10 bytes into its header.
        var truncated = Array(GoldenPacketTests.ipv4TCPSyn[0..<30])
        Reference.setWord(&truncated, 2, 30)
        #expect(try !attempt(truncated, source: v4, destination: v4))
        // A UDP length larger than the datagram.
        var badLength = GoldenPacketTests.ipv6UDP
        Reference.setWord(&badLength, 44, 200)
        #expect(try !attempt(badLength, source: v6, destination: v6))
        // And the control: the golden packets themselves are accepted.
        #expect(try attempt(GoldenPacketTests.ipv6UDP, source: v6, destination: v6))
    }
}
