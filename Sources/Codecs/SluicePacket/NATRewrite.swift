import SluiceNet

/// In-place address and port translation of TCP and UDP packets, the core of a "system stack" TUN proxy: the
/// packet is rewritten to reach a local listener and its replies are rewritten back.
///
/// Checksums are updated incrementally (RFC 1624 eqn. 3) rather than recomputed, so the cost does not depend
/// on the payload size. The IPv4 header checksum covers the addresses; the TCP and UDP checksums cover them
/// through the pseudo-header and the ports directly.
public enum NATRewrite {
    /// Rewrites the addresses and ports of a TCP or UDP packet in place and updates its checksums.
    ///
    /// - Returns: false, leaving the packet unchanged, for fragments (the ports of a first fragment could be
    ///   rewritten, but the checksum covers data in later fragments we never see), protocols other than TCP
    ///   and UDP, addresses of the other family, and truncated or insane L4 headers (`TCPHeaderView`,
    ///   `UDPHeaderView`).
    /// - Note: a UDP checksum of 0 means "none" (RFC 768) and stays 0, for IPv6 too (RFC 6935 allows it on
    ///   tunnels; other receivers drop it either way). An updated UDP checksum that comes out as 0 is written as
    ///   0xFFFF, its other one's complement representation (RFC 768).
    /// - Parameter partialChecksum: the L4 checksum field holds only the pseudo-header sum, not complemented, as
    ///   in a packet with `VIRTIO_NET_HDR_F_NEEDS_CSUM` (checksum offload): only the addresses are summed into it
    ///   (plainly: S' = S + delta), since the ports are covered when the checksum is completed later.
    @inlinable
    public static func rewrite(
        _ packet: inout IPPacketView,
        source: IPAddress, sourcePort: UInt16,
        destination: IPAddress, destinationPort: UInt16,
        partialChecksum: Bool = false
    ) -> Bool {
        guard !packet.isFragment else { return false }
        let checksumOffset: Int
        let isUDP: Bool
        switch packet.transportProtocol {
        case IPProtocolNumber.tcp:
            guard TCPHeaderView(packet) != nil else { return false }
            checksumOffset = 16
            isUDP = false
        case IPProtocolNumber.udp:
            guard UDPHeaderView(packet) != nil else { return false }
            checksumOffset = 6
            isUDP = true
        default:
            return false
        }
        let base = packet.base
        // The sum of ~old and new words of every changed field (RFC 1624 eqn. 3, summed over the fields).
        var delta: UInt64
        switch (packet.version, source, destination) {
        case (4, .v4(let newSource), .v4(let newDestination)):
            let oldSource = base.loadUnaligned(fromByteOffset: 12, as: UInt32.self).bigEndian
            let oldDestination = base.loadUnaligned(fromByteOffset: 16, as: UInt32.self).bigEndian
            delta =
                UInt64(Checksum.wordSum(~oldSource)) &+ UInt64(Checksum.wordSum(newSource.rawValue))
                &+ UInt64(Checksum.wordSum(~oldDestination)) &+ UInt64(Checksum.wordSum(newDestination.rawValue))
            base.storeBytes(of: newSource.rawValue.bigEndian, toByteOffset: 12, as: UInt32.self)
            base.storeBytes(of: newDestination.rawValue.bigEndian, toByteOffset: 16, as: UInt32.self)
            // The IPv4 header checksum covers the addresses only (RFC 791).
            let headerChecksum = base.loadUnaligned(fromByteOffset: 10, as: UInt16.self).bigEndian
            base.storeBytes(
                of: Checksum.apply(headerChecksum, delta: delta).bigEndian, toByteOffset: 10, as: UInt16.self)
        case (6, .v6(let newSource), .v6(let newDestination)):
            delta = addressDelta(base, offset: 8, new: newSource) &+ addressDelta(base, offset: 24, new: newDestination)
            storeAddress(base, offset: 8, newSource)
            storeAddress(base, offset: 24, newDestination)
        default:
            return false
        }
        let transport = base + packet.transportOffset
        let oldSourcePort = transport.loadUnaligned(fromByteOffset: 0, as: UInt16.self).bigEndian
        let oldDestinationPort = transport.loadUnaligned(fromByteOffset: 2, as: UInt16.self).bigEndian
        transport.storeBytes(of: sourcePort.bigEndian, toByteOffset: 0, as: UInt16.self)
        transport.storeBytes(of: destinationPort.bigEndian, toByteOffset: 2, as: UInt16.self)
        let oldChecksum = transport.loadUnaligned(fromByteOffset: checksumOffset, as: UInt16.self).bigEndian
        if partialChecksum {
            // ~apply(~S, delta) = S + delta, in one's complement arithmetic.
            transport.storeBytes(
                of: (~Checksum.apply(~oldChecksum, delta: delta)).bigEndian, toByteOffset: checksumOffset,
                as: UInt16.self)
            return true
        }
        delta &+= UInt64(~oldSourcePort) &+ UInt64(sourcePort) &+ UInt64(~oldDestinationPort) &+ UInt64(destinationPort)
        if isUDP && oldChecksum == 0 { return true }
        var newChecksum = Checksum.apply(oldChecksum, delta: delta)
        if isUDP && newChecksum == 0 { newChecksum = 0xFFFF }
        transport.storeBytes(of: newChecksum.bigEndian, toByteOffset: checksumOffset, as: UInt16.self)
        return true
    }

    @inlinable
    static func addressDelta(_ base: UnsafeMutableRawPointer, offset: Int, new: IPv6Address) -> UInt64 {
        let oldHigh = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self).bigEndian
        let oldLow = base.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self).bigEndian
        return UInt64(Checksum.wordSum(~oldHigh)) &+ UInt64(Checksum.wordSum(~oldLow))
            &+ UInt64(Checksum.wordSum(new.high)) &+ UInt64(Checksum.wordSum(new.low))
    }

    @inlinable
    static func storeAddress(_ base: UnsafeMutableRawPointer, offset: Int, _ address: IPv6Address) {
        base.storeBytes(of: address.high.bigEndian, toByteOffset: offset, as: UInt64.self)
        base.storeBytes(of: address.low.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
    }
}
