import SluiceNet

/// Builds whole IP packets into a caller-provided buffer, for replies the TUN worker synthesises: UDP
/// responses, TCP resets, ICMP errors and echo replies.
///
/// Every builder returns the packet length, or 0 when the packet would not fit in the buffer or in the IP
/// length fields, when the addresses are of different families, or (for error messages) when the rules say
/// not to answer at all. Checksums are computed in full. IPv4 headers carry TTL 64, DF set and ID 0 (RFC 6864
/// section 4.1 allows any ID on atomic datagrams); IPv6 headers carry hop limit 64, traffic class and flow
/// label 0.
///
/// The output buffer may overlap the input (`payload`, or the packet answered): inputs are read, and payloads
/// moved with `memmove` semantics, before anything is written. So a reply can be built in the buffer the
/// request was read into.
public enum PacketBuilder {
    /// The TTL or hop limit of built packets (the Linux default, `net.ipv4.ip_default_ttl`).
    public static let hopLimit: UInt8 = 64
    /// The largest ICMPv4 error datagram (RFC 1812 section 4.3.2.3: the quote may fill up to 576 bytes).
    public static let icmpv4ErrorLimit = 576
    /// The largest ICMPv6 error packet: the minimum IPv6 MTU (RFC 4443 section 2.4(c)).
    public static let icmpv6ErrorLimit = 1280

    /// A UDP datagram (RFC 768) with its checksum computed over the pseudo-header (a result of 0 is sent as
    /// 0xFFFF).
    public static func udp(
        into buffer: UnsafeMutableRawBufferPointer,
        source: IPAddress, sourcePort: UInt16,
        destination: IPAddress, destinationPort: UInt16,
        payload: UnsafeRawBufferPointer
    ) -> Int {
        let headerLength = ipHeaderLength(source: source, destination: destination)
        let udpLength = 8 + payload.count
        let total = headerLength + udpLength
        guard headerLength != 0, udpLength <= 0xFFFF, let base = buffer.baseAddress, total <= buffer.count,
            headerLength == 40 || total <= 0xFFFF
        else { return 0 }
        let udp = base + headerLength
        copyPayload(payload, to: udp + 8)
        writeIPHeader(
            base, source: source, destination: destination, protocol: IPProtocolNumber.udp, payloadLength: udpLength)
        udp.storeBytes(of: sourcePort.bigEndian, toByteOffset: 0, as: UInt16.self)
        udp.storeBytes(of: destinationPort.bigEndian, toByteOffset: 2, as: UInt16.self)
        udp.storeBytes(of: UInt16(udpLength).bigEndian, toByteOffset: 4, as: UInt16.self)
        udp.storeBytes(of: 0, toByteOffset: 6, as: UInt16.self)
        let pseudo = Checksum.pseudoHeaderSum(
            source: source, destination: destination, protocol: IPProtocolNumber.udp, length: udpLength)
        var checksum = Checksum.internet(UnsafeRawBufferPointer(start: udp, count: udpLength), initial: pseudo)
        if checksum == 0 { checksum = 0xFFFF }
        udp.storeBytes(of: checksum.bigEndian, toByteOffset: 6, as: UInt16.self)
        return total
    }

    /// The reset a closed port sends in answer to `packet` (RFC 793 section 3.4 "Reset Generation", now RFC 9293 section
    /// 3.10.7.1):
    /// if the segment has ACK, `<SEQ=SEG.ACK><CTL=RST>`; otherwise `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`,
    /// where SEG.LEN counts SYN and FIN. Addresses and ports are swapped.
    ///
    /// - Returns: 0 as well for segments that must not be answered: resets themselves (RFC 9293: "an incoming
    ///   segment containing a RST is discarded"), fragments, and anything that is not valid TCP.
    public static func tcpReset(into buffer: UnsafeMutableRawBufferPointer, answering packet: IPPacketView) -> Int {
        guard !packet.isFragment, let tcp = TCPHeaderView(packet), !tcp.flags.contains(.rst) else { return 0 }
        // Read everything first: `buffer` may be the buffer `packet` lives in.
        let hasACK = tcp.flags.contains(.ack)
        return tcpReset(
            into: buffer, source: packet.destination, sourcePort: tcp.destinationPort, destination: packet.source,
            destinationPort: tcp.sourcePort, sequence: hasACK ? tcp.acknowledgment : 0,
            acknowledgment: hasACK ? nil : tcp.sequence &+ tcp.sequenceLength)
    }

    /// A TCP reset with the given endpoints and numbers: `<SEQ=sequence><CTL=RST>`, or with `acknowledgment`
    /// `<SEQ=sequence><ACK=acknowledgment><CTL=RST,ACK>`. Returns its length, or 0 when the addresses are of
    /// different families or `buffer` is too small.
    public static func tcpReset(
        into buffer: UnsafeMutableRawBufferPointer, source: IPAddress, sourcePort: UInt16, destination: IPAddress,
        destinationPort: UInt16, sequence: UInt32, acknowledgment: UInt32?
    ) -> Int {
        let headerLength = ipHeaderLength(source: source, destination: destination)
        let total = headerLength + 20
        guard headerLength > 0, let base = buffer.baseAddress, total <= buffer.count else { return 0 }
        let flags: TCPFlags = acknowledgment == nil ? .rst : [.rst, .ack]
        writeIPHeader(base, source: source, destination: destination, protocol: IPProtocolNumber.tcp, payloadLength: 20)
        let segment = base + headerLength
        segment.storeBytes(of: sourcePort.bigEndian, toByteOffset: 0, as: UInt16.self)
        segment.storeBytes(of: destinationPort.bigEndian, toByteOffset: 2, as: UInt16.self)
        segment.storeBytes(of: sequence.bigEndian, toByteOffset: 4, as: UInt32.self)
        segment.storeBytes(of: (acknowledgment ?? 0).bigEndian, toByteOffset: 8, as: UInt32.self)
        segment.storeBytes(of: 5 << 4, toByteOffset: 12, as: UInt8.self)  // Data Offset: 5 words, no options
        segment.storeBytes(of: flags.rawValue, toByteOffset: 13, as: UInt8.self)
        segment.storeBytes(of: 0, toByteOffset: 14, as: UInt16.self)  // window
        segment.storeBytes(of: 0, toByteOffset: 16, as: UInt16.self)  // checksum, filled below
        segment.storeBytes(of: 0, toByteOffset: 18, as: UInt16.self)  // urgent pointer
        let pseudo = Checksum.pseudoHeaderSum(
            source: source, destination: destination, protocol: IPProtocolNumber.tcp, length: 20)
        let checksum = Checksum.internet(UnsafeRawBufferPointer(start: segment, count: 20), initial: pseudo)
        segment.storeBytes(of: checksum.bigEndian, toByteOffset: 16, as: UInt16.self)
        return total
    }

    /// An ICMP Destination Unreachable (ICMPv4 type 3, RFC 792; ICMPv6 type 1, RFC 4443 section 3.1) from
    /// `reporter` to the packet's source, quoting as much of `packet` as fits in 576 bytes (IPv4, RFC 1812
    /// section 4.3.2.3) or 1280 bytes (IPv6, RFC 4443 section 2.4(c)) and in `buffer`.
    ///
    /// - Parameters:
    ///   - reporter: the address the error appears to come from; of the packet's family.
    ///   - code: e.g. 1 host, 3 port (v4) / 4 port (v6) unreachable; 13 (v4) / 1 (v6) administratively
    ///     prohibited.
    /// - Returns: 0 also where no error may be sent (RFC 1122 section 3.2.2, RFC 4443 section 2.4(e)): in answer
    ///   to an ICMP error or to a truncated ICMP message, to a fragment other than the first, to a multicast or
    ///   broadcast destination, or to a source that is unspecified, multicast or broadcast. It also returns 0
    ///   when the buffer cannot hold at least the packet's headers plus 8 bytes.
    public static func icmpUnreachable(
        into buffer: UnsafeMutableRawBufferPointer, answering packet: IPPacketView, reporter: IPAddress, code: UInt8
    ) -> Int {
        let isV4 = packet.version == 4
        guard reporter.isIPv4 == isV4, packet.fragmentOffset == 0, mayAnswerWithError(packet) else { return 0 }
        let headerLength = isV4 ? 20 : 40
        let limit = isV4 ? icmpv4ErrorLimit : icmpv6ErrorLimit
        let quote = min(packet.totalLength, limit - headerLength - 8, buffer.count - headerLength - 8)
        // RFC 792 asks for at least the IP header and 64 bits of data (the ports); insist on that unless the
        // packet is shorter or its IPv6 extension headers alone exceed the limit.
        let required = min(packet.totalLength, packet.transportOffset + 8, limit - headerLength - 8)
        guard let base = buffer.baseAddress, quote >= required else { return 0 }
        let destination = packet.source
        let message = base + headerLength
        (message + 8).copyMemory(from: packet.base, byteCount: quote)  // memmove: may overlap
        let messageLength = 8 + quote
        let icmpProtocol = isV4 ? IPProtocolNumber.icmp : IPProtocolNumber.icmpv6
        writeIPHeader(
            base, source: reporter, destination: destination, protocol: icmpProtocol, payloadLength: messageLength)
        let type = isV4 ? ICMPHeaderView.destinationUnreachableV4 : ICMPHeaderView.destinationUnreachableV6
        message.storeBytes(of: type, toByteOffset: 0, as: UInt8.self)
        message.storeBytes(of: code, toByteOffset: 1, as: UInt8.self)
        message.storeBytes(of: 0, toByteOffset: 2, as: UInt16.self)
        message.storeBytes(of: 0, toByteOffset: 4, as: UInt32.self)  // unused
        let pseudo =
            isV4
            ? 0
            : Checksum.pseudoHeaderSum(
                source: reporter, destination: destination, protocol: icmpProtocol, length: messageLength)
        let checksum = Checksum.internet(UnsafeRawBufferPointer(start: message, count: messageLength), initial: pseudo)
        message.storeBytes(of: checksum.bigEndian, toByteOffset: 2, as: UInt16.self)
        return headerLength + messageLength
    }

    /// An Echo Reply (ICMPv4 type 0, RFC 792; ICMPv6 type 129, RFC 4443 section 4.2) in a whole IP packet.
    /// The ICMPv6 checksum covers the pseudo-header (RFC 4443 section 2.3); the ICMPv4 one does not.
    public static func icmpEchoReply(
        into buffer: UnsafeMutableRawBufferPointer, source: IPAddress, destination: IPAddress,
        identifier: UInt16, sequence: UInt16, payload: UnsafeRawBufferPointer
    ) -> Int {
        icmpEcho(
            into: buffer, request: false, source: source, destination: destination, identifier: identifier,
            sequence: sequence, payload: payload)
    }

    /// An Echo Request (ICMPv4 type 8; ICMPv6 type 128, RFC 4443 section 4.1) in a whole IP packet.
    public static func icmpEchoRequest(
        into buffer: UnsafeMutableRawBufferPointer, source: IPAddress, destination: IPAddress,
        identifier: UInt16, sequence: UInt16, payload: UnsafeRawBufferPointer
    ) -> Int {
        icmpEcho(
            into: buffer, request: true, source: source, destination: destination, identifier: identifier,
            sequence: sequence, payload: payload)
    }

    /// An echo message without an IP header, for `SOCK_RAW`/`SOCK_DGRAM` ICMP sockets: header and payload.
    ///
    /// The ICMPv4 checksum is computed (the kernel recomputes it on ping sockets anyway). The ICMPv6 checksum is
    /// left 0: it covers the pseudo-header, whose source address only the kernel knows, and Linux fills it in
    /// for ICMPv6 sockets (RFC 3542 section 3.1).
    public static func icmpEchoMessage(
        into buffer: UnsafeMutableRawBufferPointer, request: Bool, identifier: UInt16, sequence: UInt16,
        payload: UnsafeRawBufferPointer, family: IPFamily
    ) -> Int {
        let length = 8 + payload.count
        guard let base = buffer.baseAddress, length <= buffer.count, length <= 0xFFFF else { return 0 }
        copyPayload(payload, to: base + 8)
        writeEchoHeader(base, request: request, isV4: family == .v4, identifier: identifier, sequence: sequence)
        if family == .v4 {
            let checksum = Checksum.internet(UnsafeRawBufferPointer(start: base, count: length))
            base.storeBytes(of: checksum.bigEndian, toByteOffset: 2, as: UInt16.self)
        }
        return length
    }

    static func icmpEcho(
        into buffer: UnsafeMutableRawBufferPointer, request: Bool, source: IPAddress, destination: IPAddress,
        identifier: UInt16, sequence: UInt16, payload: UnsafeRawBufferPointer
    ) -> Int {
        let headerLength = ipHeaderLength(source: source, destination: destination)
        let messageLength = 8 + payload.count
        let total = headerLength + messageLength
        guard headerLength != 0, messageLength <= 0xFFFF, let base = buffer.baseAddress, total <= buffer.count,
            headerLength == 40 || total <= 0xFFFF
        else { return 0 }
        let isV4 = headerLength == 20
        let message = base + headerLength
        copyPayload(payload, to: message + 8)
        let icmpProtocol = isV4 ? IPProtocolNumber.icmp : IPProtocolNumber.icmpv6
        writeIPHeader(
            base, source: source, destination: destination, protocol: icmpProtocol, payloadLength: messageLength)
        writeEchoHeader(message, request: request, isV4: isV4, identifier: identifier, sequence: sequence)
        let pseudo =
            isV4
            ? 0
            : Checksum.pseudoHeaderSum(
                source: source, destination: destination, protocol: icmpProtocol, length: messageLength)
        let checksum = Checksum.internet(UnsafeRawBufferPointer(start: message, count: messageLength), initial: pseudo)
        message.storeBytes(of: checksum.bigEndian, toByteOffset: 2, as: UInt16.self)
        return total
    }

    static func writeEchoHeader(
        _ message: UnsafeMutableRawPointer, request: Bool, isV4: Bool, identifier: UInt16, sequence: UInt16
    ) {
        let type: UInt8 =
            switch (request, isV4) {
            case (true, true): ICMPHeaderView.echoRequestV4
            case (false, true): ICMPHeaderView.echoReplyV4
            case (true, false): ICMPHeaderView.echoRequestV6
            case (false, false): ICMPHeaderView.echoReplyV6
            }
        message.storeBytes(of: type, toByteOffset: 0, as: UInt8.self)
        message.storeBytes(of: 0, toByteOffset: 1, as: UInt8.self)
        message.storeBytes(of: 0, toByteOffset: 2, as: UInt16.self)
        message.storeBytes(of: identifier.bigEndian, toByteOffset: 4, as: UInt16.self)
        message.storeBytes(of: sequence.bigEndian, toByteOffset: 6, as: UInt16.self)
    }

    /// Whether RFC 1122 section 3.2.2 and RFC 4443 section 2.4(e) allow an ICMP error about `packet`.
    static func mayAnswerWithError(_ packet: IPPacketView) -> Bool {
        switch (packet.source, packet.destination) {
        case (.v4(let source), .v4(let destination)):
            // Unspecified, broadcast, multicast (224/4) and class E (240/4) do not name a single host.
            if source.rawValue == 0 || source.rawValue >> 28 >= 0xE { return false }
            if destination.rawValue >> 28 >= 0xE { return false }
        case (.v6(let source), .v6(let destination)):
            if source == .any || source.high >> 56 == 0xFF || destination.high >> 56 == 0xFF { return false }
        default:
            return false
        }
        let icmpProtocol = packet.version == 4 ? IPProtocolNumber.icmp : IPProtocolNumber.icmpv6
        if packet.transportProtocol == icmpProtocol {
            guard let icmp = ICMPHeaderView(packet), !icmp.isError else { return false }
        }
        return true
    }

    /// The IP header length for a packet between these addresses: 20, 40, or 0 for mixed families.
    static func ipHeaderLength(source: IPAddress, destination: IPAddress) -> Int {
        switch (source, destination) {
        case (.v4, .v4): return 20
        case (.v6, .v6): return 40
        default: return 0
        }
    }

    /// Writes a 20-byte IPv4 header (RFC 791) with its checksum, or a 40-byte IPv6 header (RFC 8200); the
    /// addresses must be of one family (checked by `ipHeaderLength`).
    static func writeIPHeader(
        _ base: UnsafeMutableRawPointer, source: IPAddress, destination: IPAddress, protocol: UInt8,
        payloadLength: Int
    ) {
        switch (source, destination) {
        case (.v4(let source), .v4(let destination)):
            base.storeBytes(of: 0x45, toByteOffset: 0, as: UInt8.self)  // version 4, IHL 5
            base.storeBytes(of: 0, toByteOffset: 1, as: UInt8.self)  // DSCP/ECN
            base.storeBytes(
                of: UInt16(truncatingIfNeeded: 20 + payloadLength).bigEndian, toByteOffset: 2, as: UInt16.self)
            base.storeBytes(of: 0, toByteOffset: 4, as: UInt16.self)  // identification
            base.storeBytes(of: UInt16(0x4000).bigEndian, toByteOffset: 6, as: UInt16.self)  // DF, offset 0
            base.storeBytes(of: hopLimit, toByteOffset: 8, as: UInt8.self)
            base.storeBytes(of: `protocol`, toByteOffset: 9, as: UInt8.self)
            base.storeBytes(of: 0, toByteOffset: 10, as: UInt16.self)
            base.storeBytes(of: source.rawValue.bigEndian, toByteOffset: 12, as: UInt32.self)
            base.storeBytes(of: destination.rawValue.bigEndian, toByteOffset: 16, as: UInt32.self)
            let checksum = Checksum.internet(UnsafeRawBufferPointer(start: base, count: 20))
            base.storeBytes(of: checksum.bigEndian, toByteOffset: 10, as: UInt16.self)
        case (.v6(let source), .v6(let destination)):
            base.storeBytes(of: UInt32(0x6000_0000).bigEndian, toByteOffset: 0, as: UInt32.self)
            base.storeBytes(of: UInt16(truncatingIfNeeded: payloadLength).bigEndian, toByteOffset: 4, as: UInt16.self)
            base.storeBytes(of: `protocol`, toByteOffset: 6, as: UInt8.self)
            base.storeBytes(of: hopLimit, toByteOffset: 7, as: UInt8.self)
            base.storeBytes(of: source.high.bigEndian, toByteOffset: 8, as: UInt64.self)
            base.storeBytes(of: source.low.bigEndian, toByteOffset: 16, as: UInt64.self)
            base.storeBytes(of: destination.high.bigEndian, toByteOffset: 24, as: UInt64.self)
            base.storeBytes(of: destination.low.bigEndian, toByteOffset: 32, as: UInt64.self)
        default:
            break
        }
    }

    /// Copies `payload` to `destination` with `memmove` semantics, so the two may overlap.
    static func copyPayload(_ payload: UnsafeRawBufferPointer, to destination: UnsafeMutableRawPointer) {
        guard let source = payload.baseAddress, payload.count > 0 else { return }
        destination.copyMemory(from: source, byteCount: payload.count)
    }
}
