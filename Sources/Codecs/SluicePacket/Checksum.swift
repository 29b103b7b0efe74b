import SluiceNet

/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624), used by IPv4, TCP, UDP and ICMP.
///
/// Every value crossing this API is a number as read from the wire big-endian (`0x1234` for the bytes
/// `12 34`); store results with `.bigEndian`. Partial sums (`initial`, `pseudoHeaderSum`) are unfolded
/// `UInt32` sums of such 16-bit words and may be added together before being passed as `initial`.
public enum Checksum {
    /// The Internet checksum of `bytes`: the one's complement of the one's complement sum of the 16-bit
    /// big-endian words, an odd trailing byte padded with a zero (RFC 1071 section 1).
    ///
    /// `initial` is added to the sum first (a pseudo-header sum, or the running sum of earlier pieces).
    /// Running this over data that already holds a correct checksum yields 0.
    @inlinable
    public static func internet(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt16 {
        ~fold(UInt64(initial) &+ UInt64(sum(bytes)))
    }

    /// The folded (not complemented) one's complement sum of `bytes` as a big-endian 16-bit value.
    ///
    /// The sum is byte-order independent (RFC 1071 section 2(B)) and may be computed over wider words with
    /// end-around carry (section 2(C)): this sums native 64-bit loads, folds, and swaps once at the end.
    @inlinable
    public static func sum(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        guard let base = bytes.baseAddress else { return 0 }
        let count = bytes.count
        var accumulator: UInt64 = 0
        var offset = 0
        while offset + 32 <= count {
            // Four independent adds per iteration; each carry-out is added back (end-around carry).
            let a = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            let b = base.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
            let c = base.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self)
            let d = base.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self)
            var overflow: Bool
            (accumulator, overflow) = accumulator.addingReportingOverflow(a)
            accumulator &+= overflow ? 1 : 0
            (accumulator, overflow) = accumulator.addingReportingOverflow(b)
            accumulator &+= overflow ? 1 : 0
            (accumulator, overflow) = accumulator.addingReportingOverflow(c)
            accumulator &+= overflow ? 1 : 0
            (accumulator, overflow) = accumulator.addingReportingOverflow(d)
            accumulator &+= overflow ? 1 : 0
            offset += 32
        }
        while offset + 8 <= count {
            let (partial, overflow) = accumulator.addingReportingOverflow(
                base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            accumulator = partial &+ (overflow ? 1 : 0)
            offset += 8
        }
        // Fold to 32 bits so the tail adds below cannot overflow.
        accumulator = (accumulator & 0xFFFF_FFFF) &+ (accumulator >> 32)
        accumulator = (accumulator & 0xFFFF_FFFF) &+ (accumulator >> 32)
        if offset + 4 <= count {
            accumulator &+= UInt64(base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            offset += 4
        }
        if offset + 2 <= count {
            accumulator &+= UInt64(base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            offset += 2
        }
        if offset < count {
            // The odd byte is the first byte of a zero-padded word; in native order that word is this value.
            let byte = base.load(fromByteOffset: offset, as: UInt8.self)
            accumulator &+= UInt64(UInt16(bigEndian: UInt16(byte) << 8))
        }
        // `fold` gives the native-order word; reading its bytes big-endian gives the wire value.
        return UInt16(bigEndian: fold(accumulator))
    }

    /// The unfolded sum of the TCP/UDP/ICMPv6 pseudo-header: both addresses, the protocol and the upper-layer
    /// length (RFC 9293 section 3.1 and RFC 768 for IPv4; RFC 8200 section 8.1 for IPv6, where the length is
    /// a 32-bit field). Pass the result as `initial` to `internet(_:initial:)`.
    @inlinable
    public static func pseudoHeaderSum(
        source: IPAddress, destination: IPAddress, protocol: UInt8, length: Int
    ) -> UInt32 {
        let length = UInt32(truncatingIfNeeded: length)
        return addressSum(source) &+ addressSum(destination) &+ UInt32(`protocol`) &+ (length >> 16)
            &+ (length & 0xFFFF)
    }

    /// The unfolded sum of an address's 16-bit words.
    @inlinable
    public static func addressSum(_ address: IPAddress) -> UInt32 {
        switch address {
        case .v4(let v4): return wordSum(v4.rawValue)
        case .v6(let v6): return wordSum(v6.high) &+ wordSum(v6.low)
        }
    }

    /// The checksum after one 16-bit word of the covered data changes from `old` to `new`:
    /// `HC' = ~(~HC + ~m + m')` (RFC 1624 section 3, eqn. 3), which unlike eqn. 2 never produces the
    /// "negative zero" 0xFFFF for data whose full recomputation gives 0x0000.
    @inlinable
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        ~fold(UInt64(~checksum) &+ UInt64(~old) &+ UInt64(new))
    }

    /// The checksum after a 32-bit field (an IPv4 address, a TCP sequence number) changes: eqn. 3 applied to
    /// both of its words at once.
    @inlinable
    public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        ~fold(UInt64(~checksum) &+ UInt64(wordSum(~old)) &+ UInt64(wordSum(new)))
    }

    /// The checksum after an IPv6 address in the covered data (the pseudo-header) changes: eqn. 3 over its
    /// eight words.
    @inlinable
    public static func update(_ checksum: UInt16, old: IPv6Address, new: IPv6Address) -> UInt16 {
        let removed = UInt64(wordSum(~old.high)) &+ UInt64(wordSum(~old.low))
        let added = UInt64(wordSum(new.high)) &+ UInt64(wordSum(new.low))
        return ~fold(UInt64(~checksum) &+ removed &+ added)
    }

    /// Applies a precomputed change (the unfolded sum of `~old` and `new` words) to a checksum; lets NAT
    /// compute the address change once for both the IPv4 header and the L4 checksum.
    @inlinable
    public static func apply(_ checksum: UInt16, delta: UInt64) -> UInt16 {
        ~fold(UInt64(~checksum) &+ delta)
    }

    /// The sum of the 16-bit words of a 32-bit value.
    @inlinable
    public static func wordSum(_ value: UInt32) -> UInt32 {
        (value >> 16) &+ (value & 0xFFFF)
    }

    /// The sum of the 16-bit words of a 64-bit value.
    @inlinable
    public static func wordSum(_ value: UInt64) -> UInt32 {
        wordSum(UInt32(truncatingIfNeeded: value >> 32)) &+ wordSum(UInt32(truncatingIfNeeded: value))
    }

    /// Folds a wide one's complement sum into 16 bits with end-around carry (RFC 1071 section 4.1).
    @inlinable
    public static func fold(_ sum: UInt64) -> UInt16 {
        var sum = (sum & 0xFFFF_FFFF) &+ (sum >> 32)
        sum = (sum & 0xFFFF_FFFF) &+ (sum >> 32)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        return UInt16(truncatingIfNeeded: sum)
    }
}
