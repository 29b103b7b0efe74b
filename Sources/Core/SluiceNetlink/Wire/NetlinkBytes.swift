import SluiceNet

/// A bounds-checked view for reading kernel-supplied bytes: every read returns nil instead of trapping when it
/// would run past the end.
///
/// Netlink integers are in host byte order (the kernel and we share a CPU); addresses are in network byte order.
/// Reads are unaligned-safe because attribute payloads are only guaranteed 4-byte alignment and we slice freely.
package struct NetlinkBytes: Sendable {
    package let bytes: [UInt8]

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    package var count: Int { bytes.count }

    package func u8(at offset: Int) -> UInt8? {
        guard offset >= 0, offset < bytes.count else { return nil }
        return bytes[offset]
    }

    package func u16(at offset: Int) -> UInt16? { load(UInt16.self, at: offset) }
    package func u32(at offset: Int) -> UInt32? { load(UInt32.self, at: offset) }
    package func i32(at offset: Int) -> Int32? { load(Int32.self, at: offset) }
    package func u64(at offset: Int) -> UInt64? { load(UInt64.self, at: offset) }
    package func i64(at offset: Int) -> Int64? { load(Int64.self, at: offset) }

    /// `count` bytes from `offset`, or nil when they are not all there.
    package func slice(at offset: Int, count: Int) -> [UInt8]? {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else { return nil }
        return Array(bytes[offset..<(offset + count)])
    }

    private func load<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T? {
        let size = MemoryLayout<T>.size
        guard offset >= 0, offset <= bytes.count - size else { return nil }
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }
}

extension IPAddress {
    /// Decodes a network-order address attribute: 4 bytes for IPv4, 16 for IPv6, anything else is nil.
    package init?(netlinkBytes payload: [UInt8]) {
        switch payload.count {
        case 4:
            let value = payload.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            self = .v4(IPv4Address(rawValue: value))
        case 16:
            let high = payload[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = payload[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(IPv6Address(high: high, low: low))
        default:
            return nil
        }
    }

    /// The address in network byte order, as rtnetlink address attributes carry it.
    package var netlinkBytes: [UInt8] {
        switch self {
        case .v4(let address):
            return (0..<4).map { UInt8(truncatingIfNeeded: address.rawValue >> (24 - 8 * UInt32($0))) }
        case .v6(let address):
            let high = (0..<8).map { UInt8(truncatingIfNeeded: address.high >> (56 - 8 * UInt64($0))) }
            let low = (0..<8).map { UInt8(truncatingIfNeeded: address.low >> (56 - 8 * UInt64($0))) }
            return high + low
        }
    }

    /// The rtnetlink family byte (`AF_INET` / `AF_INET6`).
    package var netlinkFamily: UInt8 { isIPv4 ? NetlinkConstant.familyInet : NetlinkConstant.familyInet6 }
}
