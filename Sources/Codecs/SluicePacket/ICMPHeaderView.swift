/// A view of an ICMPv4 (RFC 792) or ICMPv6 (RFC 4443) message in a parsed packet.
///
/// Valid only while the packet's buffer is. Construction requires ICMP for IPv4 or ICMPv6 for IPv6 (never
/// crossed), a message starting in this packet, and at least the 8 bytes every message type has
/// (type, code, checksum and four type-specific bytes).
public struct ICMPHeaderView {
    @usableFromInline
    let base: UnsafeMutableRawPointer
    /// The message length: header and body.
    public let messageLength: Int
    /// 4 for ICMPv4, 6 for ICMPv6.
    public let version: UInt8

    /// ICMPv4 Echo Request type (RFC 792).
    public static let echoRequestV4: UInt8 = 8
    /// ICMPv4 Echo Reply type (RFC 792).
    public static let echoReplyV4: UInt8 = 0
    /// ICMPv4 Destination Unreachable type (RFC 792).
    public static let destinationUnreachableV4: UInt8 = 3
    /// ICMPv6 Echo Request type (RFC 4443 section 4.1).
    public static let echoRequestV6: UInt8 = 128
    /// ICMPv6 Echo Reply type (RFC 4443 section 4.2).
    public static let echoReplyV6: UInt8 = 129
    /// ICMPv6 Destination Unreachable type (RFC 4443 section 3.1).
    public static let destinationUnreachableV6: UInt8 = 1

    /// Views the ICMP message of `packet`; nil for other protocols, a family mismatch or a short message.
    @inlinable
    public init?(_ packet: IPPacketView) {
        let expected = packet.version == 4 ? IPProtocolNumber.icmp : IPProtocolNumber.icmpv6
        guard packet.transportProtocol == expected, packet.hasTransportHeader else { return nil }
        let message = packet.payload
        guard message.count >= 8, let base = message.baseAddress else { return nil }
        self.base = base
        self.messageLength = message.count
        self.version = packet.version
    }

    @inlinable
    public var type: UInt8 {
        base.load(fromByteOffset: 0, as: UInt8.self)
    }

    @inlinable
    public var code: UInt8 {
        base.load(fromByteOffset: 1, as: UInt8.self)
    }

    @inlinable
    public var checksum: UInt16 {
        base.loadUnaligned(fromByteOffset: 2, as: UInt16.self).bigEndian
    }

    /// The Identifier of an echo message (bytes 4...5); meaningless for other types.
    @inlinable
    public var identifier: UInt16 {
        base.loadUnaligned(fromByteOffset: 4, as: UInt16.self).bigEndian
    }

    /// The Sequence Number of an echo message (bytes 6...7); meaningless for other types.
    @inlinable
    public var sequence: UInt16 {
        base.loadUnaligned(fromByteOffset: 6, as: UInt16.self).bigEndian
    }

    /// Whether this is an Echo Request of its family.
    @inlinable
    public var isEchoRequest: Bool {
        type == (version == 4 ? Self.echoRequestV4 : Self.echoRequestV6)
    }

    /// Whether this is an Echo Reply of its family.
    @inlinable
    public var isEchoReply: Bool {
        type == (version == 4 ? Self.echoReplyV4 : Self.echoReplyV6)
    }

    /// Whether this is an error message, which must never be answered with another error (RFC 1122 section
    /// 3.2.2, RFC 4443 section 2.4(e)). ICMPv6 errors are types 0...127 (RFC 4443 section 2.1); ICMPv4 errors
    /// are Destination Unreachable (3), Source Quench (4), Redirect (5), Time Exceeded (11) and Parameter
    /// Problem (12).
    @inlinable
    public var isError: Bool {
        let type = type
        if version == 6 { return type < 128 }
        return type == 3 || type == 4 || type == 5 || type == 11 || type == 12
    }

    /// The whole message, header included.
    @inlinable
    public var message: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: messageLength)
    }

    /// The body after the 8-byte header: echo data, or the quoted packet of an error message.
    @inlinable
    public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + 8, count: messageLength - 8)
    }
}
