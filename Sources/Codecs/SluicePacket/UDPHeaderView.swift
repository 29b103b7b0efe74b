/// A view of the UDP header (RFC 768) of a parsed packet; reads fields from the packet buffer on access.
///
/// Valid only while the packet's buffer is. Construction requires the datagram to start in this packet, at
/// least 8 bytes, and a Length field of 8 up to the bytes the IP layer carries (a shorter Length leaves
/// trailing padding outside `payload`). A first fragment therefore does not parse: its Length covers data
/// that is not here.
public struct UDPHeaderView {
    @usableFromInline
    let base: UnsafeMutableRawPointer

    /// Views the UDP header of `packet`; nil when the packet is not UDP or the header or Length is bad.
    @inlinable
    public init?(_ packet: IPPacketView) {
        guard packet.transportProtocol == IPProtocolNumber.udp, packet.hasTransportHeader else { return nil }
        let datagram = packet.payload
        guard datagram.count >= 8, let base = datagram.baseAddress else { return nil }
        let length = Int(base.loadUnaligned(fromByteOffset: 4, as: UInt16.self).bigEndian)
        guard length >= 8, length <= datagram.count else { return nil }
        self.base = base
    }

    @inlinable
    public var sourcePort: UInt16 {
        base.loadUnaligned(fromByteOffset: 0, as: UInt16.self).bigEndian
    }

    @inlinable
    public var destinationPort: UInt16 {
        base.loadUnaligned(fromByteOffset: 2, as: UInt16.self).bigEndian
    }

    /// The Length field: header plus data, in bytes.
    @inlinable
    public var length: Int {
        Int(base.loadUnaligned(fromByteOffset: 4, as: UInt16.self).bigEndian)
    }

    /// The Checksum field; 0 means "not computed" (allowed for IPv4, RFC 768; not for IPv6, RFC 8200 8.1).
    @inlinable
    public var checksum: UInt16 {
        base.loadUnaligned(fromByteOffset: 6, as: UInt16.self).bigEndian
    }

    /// The whole datagram, header included: `length` bytes.
    @inlinable
    public var datagram: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: length)
    }

    /// The data after the 8-byte header: `length - 8` bytes.
    @inlinable
    public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + 8, count: length - 8)
    }
}
