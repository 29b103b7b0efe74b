import SluiceNet

/// The address form SOCKS5 (RFC 1928 section 5) and Shadowsocks share: `ATYP`, then 4
/// bytes (IPv4, 1), a length-prefixed name (3) or 16 bytes (IPv6, 4), then the port in
/// network order.
public enum SOCKSAddress {
    /// The longest name the one-byte length allows.
    public static let maxNameLength = 255

    public enum DecodeResult: Equatable, Sendable {
        /// The address, and how many bytes it took.
        case complete(SocketEndpoint, length: Int)
        /// More bytes are needed.
        case incomplete
        /// An unknown ATYP, or a name that is not text.
        case invalid(String)
    }

    /// Appends `endpoint`. A name longer than 255 bytes cannot be expressed: false, nothing appended.
    @discardableResult
    public static func encode(_ endpoint: SocketEndpoint, into out: inout [UInt8]) -> Bool {
        switch endpoint.host {
        case .address(.v4(let a)):
            out.append(1)
            out.append(contentsOf: [
                UInt8(a.rawValue >> 24), UInt8(a.rawValue >> 16 & 0xFF), UInt8(a.rawValue >> 8 & 0xFF),
                UInt8(a.rawValue & 0xFF),
            ])
        case .address(.v6(let a)):
            out.append(4)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(a.high >> UInt64(shift) & 0xFF)) }
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(a.low >> UInt64(shift) & 0xFF)) }
        case .name(let name):
            let bytes = Array(name.utf8)
            guard !bytes.isEmpty, bytes.count <= maxNameLength else { return false }
            out.append(3)
            out.append(UInt8(bytes.count))
            out.append(contentsOf: bytes)
        }
        out.append(UInt8(endpoint.port >> 8))
        out.append(UInt8(endpoint.port & 0xFF))
        return true
    }

    /// Reads an address from the start of `bytes`.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> DecodeResult {
        guard let atyp = bytes.first else { return .incomplete }
        let hostLength: Int
        let hostStart: Int
        switch atyp {
        case 1: (hostStart, hostLength) = (1, 4)
        case 4: (hostStart, hostLength) = (1, 16)
        case 3:
            guard bytes.count >= 2 else { return .incomplete }
            (hostStart, hostLength) = (2, Int(bytes[1]))
            if hostLength == 0 { return .invalid("empty host name") }
        default: return .invalid("unknown address type \(atyp)")
        }
        let total = hostStart + hostLength + 2
        guard bytes.count >= total else { return .incomplete }
        let host: SocketEndpoint.Host
        switch atyp {
        case 1:
            host = .address(.v4(IPv4Address(bytes[1], bytes[2], bytes[3], bytes[4])))
        case 4:
            var high: UInt64 = 0
            var low: UInt64 = 0
            for i in 1...8 { high = high << 8 | UInt64(bytes[i]) }
            for i in 9...16 { low = low << 8 | UInt64(bytes[i]) }
            host = .address(.v6(IPv6Address(high: high, low: low)))
        default:
            guard let name = String(validating: bytes[hostStart..<(hostStart + hostLength)], as: UTF8.self) else {
                return .invalid("host name is not UTF-8")
            }
            host = .name(name)
        }
        let port = UInt16(bytes[total - 2]) << 8 | UInt16(bytes[total - 1])
        return .complete(SocketEndpoint(host: host, port: port), length: total)
    }

    /// Reads an address from the start of an array.
    public static func decode(_ bytes: [UInt8]) -> DecodeResult {
        bytes.withUnsafeBytes { decode($0) }
    }
}
