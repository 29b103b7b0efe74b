import SluiceNet

/// A parsed view of one IPv4 or IPv6 packet in a mutable buffer, as read from a TUN device with `IFF_NO_PI`.
///
/// The view borrows the buffer: it holds a pointer, not a copy, so it is valid only while the buffer is and it
/// sees later writes to the buffer. Parsing validates every length it relies on and never traps; anything
/// malformed gives nil. It allocates nothing. Addresses and TTL are read from the buffer on each access, so
/// they reflect in-place rewrites.
///
/// What is checked:
/// - IPv4 (RFC 791): version 4, IHL >= 5, IHL * 4 <= Total Length <= buffer size. Options are skipped, not
///   interpreted. The header checksum is not verified (see `isHeaderChecksumValid`): packets from the local
///   stack carry correct ones and the check costs a pass over the header.
/// - IPv6 (RFC 8200): version 6, 40 + Payload Length <= buffer size; jumbograms (RFC 2675) are rejected.
///   The extension header chain is walked: Hop-by-Hop (only first, section 4.1), Routing, Fragment and
///   Destination Options, each of which must fit inside the packet, at most `maximumExtensionHeaders` of
///   them. The walk stops at the first other header (upper layer, AH, ESP, No Next Header) and after a
///   Fragment header whose offset is non-zero, because what follows it is the middle of someone's data.
public struct IPPacketView {
    /// The most IPv6 extension headers walked before the packet is rejected. RFC 8200 section 4.1 orders at
    /// most about six; the limit bounds work on hostile chains.
    public static let maximumExtensionHeaders = 8

    @usableFromInline
    let base: UnsafeMutableRawPointer

    /// 4 or 6.
    public let version: UInt8
    /// The upper-layer protocol after any IPv6 extension headers (`IPProtocolNumber`); for a non-first IPv6
    /// fragment, the Next Header of the Fragment header.
    public let transportProtocol: UInt8
    /// The byte offset of the upper-layer header from the start of the packet.
    public let transportOffset: Int
    /// The packet's length from its header (IPv4 Total Length, or 40 + IPv6 Payload Length); the buffer may be
    /// longer.
    public let totalLength: Int
    /// Whether this is a fragment: IPv4 with MF set or a non-zero fragment offset; IPv6 with a Fragment header
    /// (even an "atomic" one with offset 0 and M clear, RFC 8200 section 4.5).
    public let isFragment: Bool
    /// The fragment offset in bytes (the header field times 8); 0 for the first fragment and for whole packets.
    public let fragmentOffset: Int
    /// The More Fragments flag.
    public let moreFragments: Bool
    /// The byte offset of the IPv6 Fragment header, or 0 when there is none (always 0 for IPv4).
    public let fragmentHeaderOffset: Int

    /// Parses the packet at the start of `buffer`; nil for anything malformed or of another IP version.
    public init?(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count >= 1 else { return nil }
        let available = buffer.count
        let version = base.load(as: UInt8.self) >> 4
        if version == 4 {
            guard available >= 20 else { return nil }
            let headerLength = Int(base.load(as: UInt8.self) & 0x0F) * 4
            let totalLength = Int(base.loadUnaligned(fromByteOffset: 2, as: UInt16.self).bigEndian)
            guard headerLength >= 20, headerLength <= totalLength, totalLength <= available else { return nil }
            let fragmentField = base.loadUnaligned(fromByteOffset: 6, as: UInt16.self).bigEndian
            let offset = Int(fragmentField & 0x1FFF) * 8
            let more = fragmentField & 0x2000 != 0
            self.base = base
            self.version = 4
            self.transportProtocol = base.load(fromByteOffset: 9, as: UInt8.self)
            self.transportOffset = headerLength
            self.totalLength = totalLength
            self.isFragment = more || offset != 0
            self.fragmentOffset = offset
            self.moreFragments = more
            self.fragmentHeaderOffset = 0
        } else if version == 6 {
            guard available >= 40 else { return nil }
            let totalLength = 40 + Int(base.loadUnaligned(fromByteOffset: 4, as: UInt16.self).bigEndian)
            guard totalLength <= available else { return nil }
            var next = base.load(fromByteOffset: 6, as: UInt8.self)
            var offset = 40
            var headers = 0
            var fragmentHeaderOffset = 0
            var fragmentOffset = 0
            var more = false
            walk: while true {
                switch next {
                case IPProtocolNumber.hopByHop, IPProtocolNumber.routing, IPProtocolNumber.destinationOptions:
                    // Hop-by-Hop may only follow the fixed header (RFC 8200 section 4.1); Linux drops it elsewhere.
                    if next == IPProtocolNumber.hopByHop && headers != 0 { return nil }
                    // Hdr Ext Len counts 8-octet units beyond the first (sections 4.3, 4.4, 4.6).
                    guard offset + 8 <= totalLength else { return nil }
                    let length = (Int(base.load(fromByteOffset: offset + 1, as: UInt8.self)) + 1) * 8
                    guard offset + length <= totalLength else { return nil }
                    next = base.load(fromByteOffset: offset, as: UInt8.self)
                    offset += length
                case IPProtocolNumber.fragment:
                    // A second Fragment header is never valid (section 4.1: each header at most once).
                    guard fragmentHeaderOffset == 0, offset + 8 <= totalLength else { return nil }
                    let field = base.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self).bigEndian
                    fragmentHeaderOffset = offset
                    fragmentOffset = Int(field & 0xFFF8)
                    more = field & 1 != 0
                    next = base.load(fromByteOffset: offset, as: UInt8.self)
                    offset += 8
                    // Past a non-first fragment's header comes the middle of the fragmentable part, not headers.
                    if fragmentOffset != 0 { break walk }
                default:
                    break walk
                }
                headers += 1
                if headers > Self.maximumExtensionHeaders { return nil }
            }
            self.base = base
            self.version = 6
            self.transportProtocol = next
            self.transportOffset = offset
            self.totalLength = totalLength
            self.isFragment = fragmentHeaderOffset != 0
            self.fragmentOffset = fragmentOffset
            self.moreFragments = more
            self.fragmentHeaderOffset = fragmentHeaderOffset
        } else {
            return nil
        }
    }

    /// The whole packet: `totalLength` bytes from the start of the IP header.
    @inlinable
    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: totalLength)
    }

    /// The upper-layer header and data: `totalLength - transportOffset` bytes.
    @inlinable
    public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + transportOffset, count: totalLength - transportOffset)
    }

    /// Whether the upper-layer header is present: not a fragment other than the first.
    @inlinable
    public var hasTransportHeader: Bool {
        fragmentOffset == 0
    }

    /// The source address.
    @inlinable
    public var source: IPAddress {
        version == 4 ? .v4(ipv4Address(at: 12)) : .v6(ipv6Address(at: 8))
    }

    /// The destination address.
    @inlinable
    public var destination: IPAddress {
        version == 4 ? .v4(ipv4Address(at: 16)) : .v6(ipv6Address(at: 24))
    }

    /// The IPv4 Time to Live or the IPv6 Hop Limit.
    @inlinable
    public var ttl: UInt8 {
        base.load(fromByteOffset: version == 4 ? 8 : 7, as: UInt8.self)
    }

    /// The IPv4 Identification, or the IPv6 Fragment header's Identification (0 without one).
    @inlinable
    public var identification: UInt32 {
        if version == 4 {
            return UInt32(base.loadUnaligned(fromByteOffset: 4, as: UInt16.self).bigEndian)
        }
        guard fragmentHeaderOffset != 0 else { return 0 }
        return base.loadUnaligned(fromByteOffset: fragmentHeaderOffset + 4, as: UInt32.self).bigEndian
    }

    /// The IPv4 header length in bytes (IHL * 4) or 40 for IPv6 (the fixed header only).
    @inlinable
    public var headerLength: Int {
        version == 4 ? Int(base.load(as: UInt8.self) & 0x0F) * 4 : 40
    }

    /// Whether the IPv4 header checksum verifies (RFC 1071: the sum over the header is all ones); always true
    /// for IPv6, which has none.
    @inlinable
    public var isHeaderChecksumValid: Bool {
        guard version == 4 else { return true }
        return Checksum.internet(UnsafeRawBufferPointer(start: base, count: headerLength)) == 0
    }

    /// The pseudo-header sum for this packet's upper layer (`Checksum.pseudoHeaderSum`), over `payload.count`.
    @inlinable
    public var pseudoHeaderSum: UInt32 {
        Checksum.pseudoHeaderSum(
            source: source, destination: destination, protocol: transportProtocol,
            length: totalLength - transportOffset)
    }

    @inlinable
    func ipv4Address(at offset: Int) -> IPv4Address {
        IPv4Address(rawValue: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self).bigEndian)
    }

    @inlinable
    func ipv6Address(at offset: Int) -> IPv6Address {
        IPv6Address(
            high: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self).bigEndian,
            low: base.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self).bigEndian)
    }
}
