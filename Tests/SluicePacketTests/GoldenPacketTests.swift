import SluiceNet
import Testing

@testable import SluicePacket

/// Hand-assembled packets with every field checked. The bytes (and the checksums written into them) were
/// produced and verified with a separate Python script using only `struct` and RFC 1071 arithmetic; the
/// expected checksum values below come from that script, not from `Checksum`.
@Suite("Golden packets")
struct GoldenPacketTests {
    /// Linux-style SYN: 192.168.1.10:54321 -> 93.184.216.34:443, options MSS 1460, SACK permitted, timestamps,
    /// NOP, window scale 7.
    static let ipv4TCPSyn = hexBytes(
        """
        4500003c1c464000400626e9c0a8010a5db8d822d43101bb1234567800000000a002faf0e0900000020405b40402080a0a1b2c3d
        0000000001030307
        """)
    /// DNS query for example.com A: 10.0.0.2:33333 -> 8.8.8.8:53, no DF. 57 bytes (odd UDP length).
    static let ipv4UDPDNS = hexBytes(
        """
        450000397e0100004011e2a10a00000208080808823500350025e7ecabcd01000001000000000000076578616d706c6503636f6d
        0000010001
        """)
    /// SYN [2001:db8::1]:40000 -> [2001:db8:0:1::2]:80 with MSS 1440 and the usual options.
    static let ipv6TCPSyn = hexBytes(
        """
        600000000028064020010db800000000000000000000000120010db80000000100000000000000029c400050deadbeef00000000
        a002fd20b1490000020405a00402080a010203040000000001030307
        """)
    /// DNS query for www.example.org AAAA: [fd00::2]:51000 -> [fd00::53]:53 (odd UDP length 41).
    static let ipv6UDP = hexBytes(
        """
        6000000000291140fd000000000000000000000000000002fd000000000000000000000000000053c73800350029c341123401000001
        00000000000003777777076578616d706c65036f726700001c0001
        """)
    /// `ping 1.1.1.1` from 10.0.0.2: identifier 0x4d2e, sequence 1, 48 data bytes (an 8-byte timestamp, then 0x10...0x37).
    static let ipv4Echo = hexBytes(
        """
        4500004c3a9f40004001f40e0a000002010101010800af4e4d2e000165f0a1b2000c3500101112131415161718191a1b1c1d1e1f20
        2122232425262728292a2b2c2d2e2f3031323334353637
        """)
    /// `ping -6 2606:4700:4700::1111` from 2001:db8::1: identifier 0x4d2f, sequence 7.
    static let ipv6Echo = hexBytes(
        """
        6000000000383a4020010db800000000000000000000000126064700470000000000000000001111800044034d2f000765f0a1b2
        000c3500101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637
        """)
    /// An MLDv2 report (RFC 3810) fe80::1 -> ff02::16, hop limit 1, behind a Hop-by-Hop header carrying a
    /// Router Alert option (RFC 2711) and PadN: the shape every Linux host sends when it joins a group.
    static let ipv6HopByHop = hexBytes(
        """
        6000000000240001fe800000000000000000000000000001ff0200000000000000000000000000163a000502000001008f007107
        0000000104000000ff0200000000000000000001ff000001
        """)

    /// Checks the L4 checksum with the library (pseudo-header sum plus segment sums to zero) and with the
    /// naive reference.
    static func transportChecksumVerifies(_ packet: IPPacketView, _ bytes: [UInt8]) -> Bool {
        let initial: UInt32 = packet.transportProtocol == IPProtocolNumber.icmp ? 0 : packet.pseudoHeaderSum
        let library = Checksum.internet(UnsafeRawBufferPointer(packet.payload), initial: initial)
        let pseudo =
            packet.transportProtocol == IPProtocolNumber.icmp
            ? []
            : Reference.pseudoHeader(
                bytes, version: packet.version, protocol: packet.transportProtocol, length: packet.payload.count)
        let reference = Reference.checksum(pseudo + Array(bytes[packet.transportOffset..<packet.totalLength]))
        return library == 0 && reference == 0
    }

    @Test func ipv4TCPSynParses() throws {
        let golden = Self.ipv4TCPSyn
        var bytes = golden
        try bytes.withUnsafeMutableBytes { buffer in
            let packet = try #require(IPPacketView(buffer))
            #expect(packet.version == 4)
            #expect(packet.source == IPAddress("192.168.1.10"))
            #expect(packet.destination == IPAddress("93.184.216.34"))
            #expect(packet.transportProtocol == IPProtocolNumber.tcp)
            #expect(packet.transportOffset == 20)
            #expect(packet.totalLength == 60)
            #expect(!packet.isFragment)
            #expect(packet.fragmentKind == nil)
            #expect(packet.ttl == 64)
            #expect(packet.identification == 0x1C46)
            #expect(packet.payload.count == 40)
            #expect(packet.isHeaderChecksumValid)
            #expect(Checksum.internet(UnsafeRawBufferPointer(rebasing: buffer[0..<20])) == 0)
            #expect(Reference.word(golden, 10) == 0x26E9)
            let tcp = try #require(TCPHeaderView(packet))
            #expect(tcp.sourcePort == 54321)
            #expect(tcp.destinationPort == 443)
            #expect(tcp.sequence == 0x1234_5678)
            #expect(tcp.acknowledgment == 0)
            #expect(tcp.flags == .syn)
            #expect(tcp.dataOffset == 40)
            #expect(tcp.window == 64240)
            #expect(tcp.checksum == 0xE090)
            #expect(tcp.urgentPointer == 0)
            #expect(tcp.payloadLength == 0)
            #expect(tcp.options.count == 20)
            #expect(tcp.maximumSegmentSize == 1460)
            #expect(tcp.sequenceLength == 1)
            #expect(Self.transportChecksumVerifies(packet, golden))
            #expect(UDPHeaderView(packet) == nil)
            #expect(ICMPHeaderView(packet) == nil)
        }
    }

    @Test func ipv4UDPDNSQueryParses() throws {
        let golden = Self.ipv4UDPDNS
        var bytes = golden
        try bytes.withUnsafeMutableBytes { buffer in
            let packet = try #require(IPPacketView(buffer))
            #expect(packet.version == 4)
            #expect(packet.source == IPAddress("10.0.0.2"))
            #expect(packet.destination == IPAddress("8.8.8.8"))
            #expect(packet.transportProtocol == IPProtocolNumber.udp)
            #expect(packet.totalLength == 57)
            #expect(!packet.isFragment)
            #expect(packet.ttl == 64)
            #expect(packet.isHeaderChecksumValid)
            #expect(Reference.word(golden, 10) == 0xE2A1)
            let udp = try #require(UDPHeaderView(packet))
            #expect(udp.sourcePort == 33333)
            #expect(udp.destinationPort == 53)
            #expect(udp.length == 37)
            #expect(udp.checksum == 0xE7EC)
            #expect(udp.payload.count == 29)
            // DNS header: ID 0xabcd, RD set, one question.
            #expect(Array(udp.payload.prefix(4)) == [0xAB, 0xCD, 0x01, 0x00])
            #expect(Self.transportChecksumVerifies(packet, golden))
            #expect(TCPHeaderView(packet) == nil)
        }
    }

    @Test func ipv6TCPSynParses() throws {
        let golden = Self.ipv6TCPSyn
        var bytes = golden
        try bytes.withUnsafeMutableBytes { buffer in
            let packet = try #require(IPPacketView(buffer))
            #expect(packet.version == 6)
            #expect(packet.source == IPAddress("2001:db8::1"))
            #expect(packet.destination == IPAddress("2001:db8:0:1::2"))
            #expect(packet.transportProtocol == IPProtocolNumber.tcp)
            #expect(packet.transportOffset == 40)
            #expect(packet.totalLength == 80)
            #expect(!packet.isFragment)
            #expect(packet.ttl == 64)
            #expect(packet.isHeaderChecksumValid)
            let tcp = try #require(TCPHeaderView(packet))
            #expect(tcp.sourcePort == 40000)
            #expect(tcp.destinationPort == 80)
            #expect(tcp.sequence == 0xDEAD_BEEF)
            #expect(tcp.flags == .syn)
            #expect(tcp.dataOffset == 40)
            #expect(tcp.window == 64800)
            #expect(tcp.checksum == 0xB149)
            #expect(tcp.maximumSegmentSize == 1440)
            #expect(Self.transportChecksumVerifies(packet, golden))
        }
    }

    @Test func ipv6UDPParses() throws {
        let golden = Self.ipv6UDP
        var bytes = golden + [0xEE, 0xEE, 0xEE]  // slack after the packet, as in a reused TUN buffer
        try bytes.withUnsafeMutableBytes { buffer in
            let packet = try #require(IPPacketView(buffer))
            #expect(packet.version == 6)
            #expect(packet.source == IPAddress("fd00::2"))
            #expect(packet.destination == IPAddress("fd00::53"))
            #expect(packet.transportProtocol == IPProtocolNumber.udp)
            #expect(packet.totalLength == 81)
            #expect(packet.payload.count == 41)
            let udp = try #require(UDPHeaderView(packet))
            #expect(udp.sourcePort == 51000)
            #expect(udp.destinationPort == 53)
            #expect(udp.length == 41)
            #expect(udp.checksum == 0xC341)
            #expect(udp.payload.count == 33)
            #expect(Self.transportChecksumVerifies(packet, golden))
        }
    }

    @Test func ipv4EchoRequestParses() throws {
        let golden = Self.ipv4Echo
        var bytes = golden
        try bytes.withUnsafeMutableBytes { buffer in
            let packet = try #require(IPPacketView(buffer))
            #expect(packet.source == IPAddress("10.0.0.2"))
            #expect(packet.destination == IPAddress("1.1.1.1"))
            #expect(packet.transportProtocol == IPProtocolNumber.icmp)
            #expect(packet.totalLength == 76)
            #expect(packet.isHeaderChecksumValid)
            #expect(Reference.word(golden, 10) == 0xF40E)
            let icmp = try #require(ICMPHeaderView(packet))
            #expect(icmp.version == 4)
            #expect(icmp.type == 8)
            #expect(icmp.code == 0)
            #expect(icmp.isEchoRequest)
            #expect(!icmp.isEchoReply)
            #expect(!icmp.isError)
            #expect(icmp.identifier == 0x4D2E)
            #expect(icmp.sequence == 1)
            #expect(icmp.checksum == 0xAF4E)
            #expect(icmp.payload.count == 48)
            #expect(icmp.payload[8] == 0x10)
            #expect(Self.transportChecksumVerifies(packet, golden))
        }
    }

    @Test func ipv6EchoRequestParses() throws {
        let golden = Self.ipv6Echo
        var bytes = golden
        try bytes.withUnsafeMutableBytes { buffer in
            let packet = try #require(IPPacketView(buffer))
            #expect(packet.source == IPAddress("2001:db8::1"))
            #expect(packet.destination == IPAddress("2606:4700:4700::1111"))
            #expect(packet.transportProtocol == IPProtocolNumber.icmpv6)
            let icmp = try #require(ICMPHeaderView(packet))
            #expect(icmp.version == 6)
            #expect(icmp.type == 128)
            #expect(icmp.isEchoRequest)
            #expect(icmp.identifier == 0x4D2F)
            #expect(icmp.sequence == 7)
            #expect(icmp.checksum == 0x4403)
            #expect(icmp.payload.count == 48)
            #expect(Self.transportChecksumVerifies(packet, golden))
        }
    }

    @Test func ipv6HopByHopIsWalked() throws {
        let golden = Self.ipv6HopByHop
        var bytes = golden
        try bytes.withUnsafeMutableBytes { buffer in
            let packet = try #require(IPPacketView(buffer))
            #expect(packet.source == IPAddress("fe80::1"))
            #expect(packet.destination == IPAddress("ff02::16"))
            #expect(packet.ttl == 1)
            #expect(packet.transportProtocol == IPProtocolNumber.icmpv6)
            #expect(packet.transportOffset == 48)
            #expect(packet.totalLength == 76)
            #expect(!packet.isFragment)
            let icmp = try #require(ICMPHeaderView(packet))
            #expect(icmp.type == 143)  // MLDv2 Listener Report
            #expect(icmp.checksum == 0x7107)
            #expect(icmp.isError == false)
            #expect(Self.transportChecksumVerifies(packet, golden))
        }
    }

    @Test func crossFamilyICMPIsRejected() throws {
        // ICMPv4's protocol number inside IPv6 (and vice versa) is not an ICMP message we understand.
        let golden = Self.ipv6Echo
        var bytes = golden
        bytes[6] = IPProtocolNumber.icmp
        try bytes.withUnsafeMutableBytes { buffer in
            let packet = try #require(IPPacketView(buffer))
            #expect(ICMPHeaderView(packet) == nil)
        }
    }
}
