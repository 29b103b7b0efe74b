/// The TCP control bits (RFC 9293 section 3.1, with ECE and CWR from RFC 3168).
public struct TCPFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8

    @inlinable
    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)
}

/// A view of the TCP header of a parsed packet; reads fields from the packet buffer on access.
///
/// Valid only while the packet's buffer is. Construction requires the segment to start in this packet (not a
/// later fragment), at least 20 bytes, and a Data Offset of 5...15 words that fits in the segment.
public struct TCPHeaderView {
    @usableFromInline
    let base: UnsafeMutableRawPointer
    /// The segment length: TCP header, options and data.
    public let segmentLength: Int

    /// Views the TCP header of `packet`; nil when the packet is not TCP or the header is truncated or insane.
    @inlinable
    public init?(_ packet: IPPacketView) {
        guard packet.transportProtocol == IPProtocolNumber.tcp, packet.hasTransportHeader else { return nil }
        let segment = packet.payload
        guard segment.count >= 20, let base = segment.baseAddress else { return nil }
        let dataOffset = Int(base.load(fromByteOffset: 12, as: UInt8.self) >> 4) * 4
        guard dataOffset >= 20, dataOffset <= segment.count else { return nil }
        self.base = base
        self.segmentLength = segment.count
    }

    @inlinable
    public var sourcePort: UInt16 {
        base.loadUnaligned(fromByteOffset: 0, as: UInt16.self).bigEndian
    }

    @inlinable
    public var destinationPort: UInt16 {
        base.loadUnaligned(fromByteOffset: 2, as: UInt16.self).bigEndian
    }

    @inlinable
    public var sequence: UInt32 {
        base.loadUnaligned(fromByteOffset: 4, as: UInt32.self).bigEndian
    }

    @inlinable
    public var acknowledgment: UInt32 {
        base.loadUnaligned(fromByteOffset: 8, as: UInt32.self).bigEndian
    }

    /// The header length in bytes, options included (the Data Offset field times 4).
    @inlinable
    public var dataOffset: Int {
        Int(base.load(fromByteOffset: 12, as: UInt8.self) >> 4) * 4
    }

    @inlinable
    public var flags: TCPFlags {
        TCPFlags(rawValue: base.load(fromByteOffset: 13, as: UInt8.self))
    }

    @inlinable
    public var window: UInt16 {
        base.loadUnaligned(fromByteOffset: 14, as: UInt16.self).bigEndian
    }

    @inlinable
    public var checksum: UInt16 {
        base.loadUnaligned(fromByteOffset: 16, as: UInt16.self).bigEndian
    }

    @inlinable
    public var urgentPointer: UInt16 {
        base.loadUnaligned(fromByteOffset: 18, as: UInt16.self).bigEndian
    }

    /// The number of data bytes after the header.
    @inlinable
    public var payloadLength: Int {
        segmentLength - dataOffset
    }

    /// The options: bytes 20 up to the data offset.
    @inlinable
    public var options: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + 20, count: dataOffset - 20)
    }

    /// The segment data after the header.
    @inlinable
    public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + dataOffset, count: segmentLength - dataOffset)
    }

    /// How much sequence space the segment occupies: its data plus one for SYN and one for FIN
    /// (RFC 9293 section 3.4).
    @inlinable
    public var sequenceLength: UInt32 {
        let flags = flags
        return UInt32(truncatingIfNeeded: payloadLength) &+ (flags.contains(.syn) ? 1 : 0)
            &+ (flags.contains(.fin) ? 1 : 0)
    }

    /// The Maximum Segment Size option (kind 2, RFC 9293 section 3.2), or nil when absent or the options are
    /// malformed.
    public var maximumSegmentSize: UInt16? {
        let options = UnsafeRawBufferPointer(self.options)
        var index = 0
        while index < options.count {
            let kind = options[index]
            if kind == 0 { return nil }  // End of Option List
            if kind == 1 {  // No-Operation
                index += 1
                continue
            }
            guard index + 1 < options.count else { return nil }
            let length = Int(options[index + 1])
            guard length >= 2, index + length <= options.count else { return nil }
            if kind == 2 {
                guard length == 4 else { return nil }
                return UInt16(options[index + 2]) << 8 | UInt16(options[index + 3])
            }
            index += length
        }
        return nil
    }
}
