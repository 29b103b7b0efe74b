import SluiceNet
import SluiceTestSupport

@testable import SluicePacket

/// Test-side packet construction and a deliberately naive, byte-at-a-time checksum, written independently of
/// `Checksum` so the library is checked against something that shares none of its code.
enum Reference {
    /// RFC 1071 the slow way: big-endian words, odd byte padded, fold, complement.
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < bytes.count {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.count { sum += UInt32(bytes[index]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    /// The pseudo-header bytes (RFC 9293 section 3.1 / RFC 8200 section 8.1), taken from the packet's own bytes.
    static func pseudoHeader(_ packet: [UInt8], version: UInt8, protocol: UInt8, length: Int) -> [UInt8] {
        if version == 4 {
            return Array(packet[12..<20]) + [0, `protocol`, UInt8(length >> 8), UInt8(length & 0xFF)]
        }
        return Array(packet[8..<40])
            + [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
            + [0, 0, 0, `protocol`]
    }

    /// The checksum a sender would put at `checksumOffset` of the L4 segment, computed from scratch.
    static func transportChecksum(
        _ packet: [UInt8], version: UInt8, protocol: UInt8, transportOffset: Int, length: Int, checksumOffset: Int,
        pseudo: Bool = true
    ) -> UInt16 {
        var segment = Array(packet[transportOffset..<(transportOffset + length)])
        segment[checksumOffset] = 0
        segment[checksumOffset + 1] = 0
        let header = pseudo ? pseudoHeader(packet, version: version, protocol: `protocol`, length: length) : []
        return checksum(header + segment)
    }

    /// The IPv4 header checksum recomputed from scratch.
    static func ipv4HeaderChecksum(_ packet: [UInt8]) -> UInt16 {
        var header = Array(packet[0..<(Int(packet[0] & 0x0F) * 4)])
        header[10] = 0
        header[11] = 0
        return checksum(header)
    }

    static func word(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    static func setWord(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt16) {
        bytes[offset] = UInt8(value >> 8)
        bytes[offset + 1] = UInt8(value & 0xFF)
    }
}

/// A generated packet and what the generator knows about it.
struct GeneratedPacket {
    var bytes: [UInt8]
    var version: UInt8
    var transportProtocol: UInt8
    var transportOffset: Int
    var totalLength: Int

    var checksumOffset: Int {
        transportProtocol == IPProtocolNumber.tcp ? 16 : transportProtocol == IPProtocolNumber.udp ? 6 : 2
    }
}

/// Random but valid IPv4/IPv6 packets with TCP, UDP or ICMP, including IPv4 options, IPv6 extension headers,
/// TCP options, odd payload lengths and slack after the packet in the buffer.
enum PacketFactory {
    static func address(_ rng: inout SplitMix64, version: UInt8) -> IPAddress {
        version == 4
            ? .v4(IPv4Address(rawValue: UInt32.random(in: 0...UInt32.max, using: &rng)))
            : .v6(IPv6Address(high: rng.next(), low: rng.next()))
    }

    static func addressBytes(_ address: IPAddress) -> [UInt8] {
        switch address {
        case .v4(let v4): return withUnsafeBytes(of: v4.rawValue.bigEndian, Array.init)
        case .v6(let v6):
            return withUnsafeBytes(of: v6.high.bigEndian, Array.init)
                + withUnsafeBytes(of: v6.low.bigEndian, Array.init)
        }
    }

    static func random(
        _ rng: inout SplitMix64, version: UInt8, protocol proto: UInt8, maxPayload: Int = 300,
        slack: Bool = true
    ) -> GeneratedPacket {
        let payloadLength = Int.random(in: 0...maxPayload, using: &rng)
        var transport: [UInt8]
        switch proto {
        case IPProtocolNumber.tcp:
            let optionWords = Int.random(in: 0...10, using: &rng)
            transport = [UInt8](repeating: 0, count: 20 + optionWords * 4)
            for index in 0..<12 { transport[index] = UInt8.random(in: 0...255, using: &rng) }
            transport[12] = UInt8(5 + optionWords) << 4
            transport[13] = UInt8.random(in: 0...255, using: &rng)
            transport[14] = UInt8.random(in: 0...255, using: &rng)
            transport[15] = UInt8.random(in: 0...255, using: &rng)
            for index in 20..<transport.count { transport[index] = 1 }  // NOP options
            transport += rng.bytes(payloadLength)
        case IPProtocolNumber.udp:
            transport = rng.bytes(4) + [UInt8((8 + payloadLength) >> 8), UInt8((8 + payloadLength) & 0xFF), 0, 0]
            transport += rng.bytes(payloadLength)
        default:
            transport = [UInt8.random(in: 0...255, using: &rng), 0, 0, 0] + rng.bytes(4) + rng.bytes(payloadLength)
        }
        var header: [UInt8]
        let source = address(&rng, version: version)
        let destination = address(&rng, version: version)
        if version == 4 {
            let optionWords = Int.random(in: 0...3, using: &rng) == 0 ? Int.random(in: 1...10, using: &rng) : 0
            let headerLength = 20 + optionWords * 4
            let total = headerLength + transport.count
            header = [UInt8(0x40 | (5 + optionWords)), UInt8.random(in: 0...255, using: &rng)]
            header += [UInt8(total >> 8), UInt8(total & 0xFF)] + rng.bytes(2)
            header += [Bool.random(using: &rng) ? 0x40 : 0, 0, UInt8.random(in: 1...255, using: &rng), proto, 0, 0]
            header += addressBytes(source) + addressBytes(destination)
            header += [UInt8](repeating: 1, count: optionWords * 4)
            Reference.setWord(&header, 10, Reference.checksum(header))
        } else {
            var extensions: [UInt8] = []
            var next = proto
            // Build the chain back to front: an optional Destination Options, then an optional Hop-by-Hop first.
            for kind in [IPProtocolNumber.destinationOptions, IPProtocolNumber.hopByHop]
            where Int.random(in: 0...3, using: &rng) == 0 {
                let units = Int.random(in: 0...3, using: &rng)
                let length = (units + 1) * 8
                // One PadN option fills the header (RFC 8200 section 4.2).
                let ext = [next, UInt8(units), 1, UInt8(length - 4)] + [UInt8](repeating: 0, count: length - 4)
                extensions = ext + extensions
                next = kind
            }
            let payloadLengthField = extensions.count + transport.count
            header = [0x60 | UInt8.random(in: 0...15, using: &rng)] + rng.bytes(3)
            header += [UInt8(payloadLengthField >> 8), UInt8(payloadLengthField & 0xFF), next]
            header += [UInt8.random(in: 1...255, using: &rng)]
            header += addressBytes(source) + addressBytes(destination) + extensions
        }
        var bytes = header + transport
        let transportOffset = header.count
        let total = bytes.count
        // The L4 checksum, computed from scratch.
        let checksumOffset = proto == IPProtocolNumber.tcp ? 16 : proto == IPProtocolNumber.udp ? 6 : 2
        let usesPseudoHeader = !(proto == IPProtocolNumber.icmp)
        var checksum = Reference.transportChecksum(
            bytes, version: version, protocol: proto, transportOffset: transportOffset, length: transport.count,
            checksumOffset: checksumOffset, pseudo: usesPseudoHeader)
        if proto == IPProtocolNumber.udp {
            if checksum == 0 { checksum = 0xFFFF }
            // IPv4 UDP sometimes without a checksum (RFC 768).
            if version == 4 && Int.random(in: 0...9, using: &rng) == 0 { checksum = 0 }
        }
        Reference.setWord(&bytes, transportOffset + checksumOffset, checksum)
        if slack {
            bytes += rng.bytes(Int.random(in: 0...3, using: &rng) == 0 ? Int.random(in: 1...64, using: &rng) : 0)
        }
        return GeneratedPacket(
            bytes: bytes, version: version, transportProtocol: proto, transportOffset: transportOffset,
            totalLength: total)
    }
}

/// Hex text (whitespace ignored) to bytes.
func hexBytes(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }.utf8.map { byte -> UInt8 in
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return byte - UInt8(ascii: "A") + 10
        }
    }
    return stride(from: 0, to: digits.count - 1, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
}
