/// `struct virtio_net_hdr` (10 bytes, host byte order on a little-endian host), which a TUN device opened with
/// IFF_VNET_HDR puts in front of every packet it reads and expects in front of every packet written to it.
///
/// With checksum and TCP segmentation offload (TUNSETOFFLOAD) the kernel hands over TCP super-packets of up to
/// 64 KiB in one read (`gsoType` TCPv4/TCPv6, `gsoSize` the segment size to cut them into) whose TCP checksum is
/// partial: `needsChecksum` set, and the checksum field holding only the pseudo-header sum, to be completed over
/// `csumStart...` by whoever sends the packet on. One read and one write per 64 KiB instead of per 1.5 KiB is
/// what makes forwarded traffic fast.
public struct VirtioNetHeader: Sendable, Equatable {
    public static let size = 10

    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum is partial (pseudo-header sum only).
    public static let needsChecksumFlag: UInt8 = 1
    /// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was verified.
    public static let dataValidFlag: UInt8 = 2
    /// `VIRTIO_NET_HDR_GSO_*`.
    public static let gsoNone: UInt8 = 0
    public static let gsoTCPv4: UInt8 = 1
    public static let gsoUDP: UInt8 = 3
    public static let gsoTCPv6: UInt8 = 4
    public static let gsoECN: UInt8 = 0x80

    public var flags: UInt8 = 0
    public var gsoType: UInt8 = 0
    public var headerLength: UInt16 = 0
    public var gsoSize: UInt16 = 0
    public var csumStart: UInt16 = 0
    public var csumOffset: UInt16 = 0

    /// A plain packet with complete checksums (what sluice writes for packets it builds).
    public static let plain = VirtioNetHeader()

    public init() {}

    /// Reads the header from the first ``size`` bytes of `bytes`; nil when they are fewer.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.size else { return nil }
        flags = bytes[0]
        gsoType = bytes[1]
        headerLength = bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self).littleEndian
        gsoSize = bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self).littleEndian
        csumStart = bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self).littleEndian
        csumOffset = bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self).littleEndian
    }

    /// The L4 checksum field holds the pseudo-header sum only.
    public var needsChecksum: Bool { flags & Self.needsChecksumFlag != 0 }

    /// A super-packet the receiver cuts into `gsoSize` segments.
    public var isSegmented: Bool { gsoType & ~Self.gsoECN != Self.gsoNone }

    /// The 10 bytes, as the kernel expects them.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.size)
        out[0] = flags
        out[1] = gsoType
        out.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
            raw.storeBytes(of: gsoSize.littleEndian, toByteOffset: 4, as: UInt16.self)
            raw.storeBytes(of: csumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
            raw.storeBytes(of: csumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
        }
        return out
    }
}
