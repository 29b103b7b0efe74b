/// The server_name (SNI, RFC 6066 section 3) of a TLS ClientHello, read from the start of
/// a connection. The ClientHello may span several TLS records (RFC 8446 section 5.1 lets
/// a handshake message be fragmented) and several reads; the answer is
/// ``SniffResult/needMoreBytes`` until it is complete.
public enum TLSClientHello {
    private static let handshakeRecord: UInt8 = 22
    private static let clientHello: UInt8 = 1
    /// RFC 8446 5.1: a plaintext record holds at most 2^14 bytes.
    private static let maximumRecord = 16384

    public static func serverName(in input: UnsafeRawBufferPointer) -> SniffResult {
        let truncated = input.count > Sniffing.maximumBytes
        let bytes = truncated ? UnsafeRawBufferPointer(rebasing: input[0..<Sniffing.maximumBytes]) : input
        // Gather the handshake bytes from consecutive handshake records.
        var handshake = [UInt8]()
        var offset = 0
        var wanted: Int?  // 4 + the ClientHello's length, once known
        while true {
            if let wanted, handshake.count >= wanted { break }
            // The record header, checked byte by byte so a few bytes already say "not TLS".
            let available = bytes.count - offset
            if available >= 1 && bytes[offset] != handshakeRecord { return .notThisProtocol }
            if available >= 2 && bytes[offset + 1] != 3 { return .notThisProtocol }
            if available >= 3 && bytes[offset + 2] > 4 { return .notThisProtocol }
            guard available >= 5 else { return truncated ? .noName : .needMoreBytes }
            let length = Int(bytes[offset + 3]) << 8 | Int(bytes[offset + 4])
            guard length > 0, length <= maximumRecord else { return .notThisProtocol }
            let start = offset + 5
            let end = min(start + length, bytes.count)
            handshake.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            if wanted == nil && handshake.count >= 4 {
                guard handshake[0] == clientHello else { return .notThisProtocol }
                let bodyLength = Int(handshake[1]) << 16 | Int(handshake[2]) << 8 | Int(handshake[3])
                // The smallest ClientHello: version, random, three empty vectors.
                guard bodyLength >= 38 else { return .notThisProtocol }
                wanted = 4 + bodyLength
            } else if handshake.count >= 1 && handshake[0] != clientHello {
                return .notThisProtocol
            }
            if end < start + length {
                // The record itself is cut off.
                if let wanted, handshake.count >= wanted { break }
                return truncated ? .noName : .needMoreBytes
            }
            offset = end
        }
        guard let wanted else { return .notThisProtocol }
        return handshake.withUnsafeBytes { parse(UnsafeRawBufferPointer(rebasing: $0[4..<wanted])) }
    }

    public static func serverName(in bytes: [UInt8]) -> SniffResult {
        bytes.withUnsafeBytes { serverName(in: $0) }
    }

    /// The ClientHello body (RFC 8446 4.1.2; TLS 1.0-1.2 have the same layout up to the
    /// extensions, which are optional before TLS 1.3).
    private static func parse(_ body: UnsafeRawBufferPointer) -> SniffResult {
        var reader = Reader(body)
        guard reader.skip(2 + 32),  // legacy_version, random
            reader.skipVector(lengthBytes: 1, maximum: 32),  // legacy_session_id
            reader.skipVector(lengthBytes: 2),  // cipher_suites
            reader.skipVector(lengthBytes: 1)  // legacy_compression_methods
        else { return .notThisProtocol }
        if reader.isAtEnd { return .noName }  // no extensions at all
        guard var extensions = reader.vector(lengthBytes: 2), reader.isAtEnd else { return .notThisProtocol }
        while !extensions.isAtEnd {
            guard let type = extensions.uint16(), var data = extensions.vector(lengthBytes: 2) else {
                return .notThisProtocol
            }
            guard type == 0 else { continue }  // server_name
            guard var list = data.vector(lengthBytes: 2), data.isAtEnd else { return .notThisProtocol }
            while !list.isAtEnd {
                guard let nameType = list.uint8(), let name = list.vector(lengthBytes: 2) else {
                    return .notThisProtocol
                }
                if nameType == 0 {  // host_name
                    return Sniffing.hostName(name.remaining).map { .name($0) } ?? .noName
                }
            }
            return .noName
        }
        return .noName
    }

    /// A bounds-checked cursor over bytes.
    private struct Reader {
        private let bytes: UnsafeRawBufferPointer
        private var position = 0

        init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        var isAtEnd: Bool { position >= bytes.count }
        var remaining: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[position...]) }

        mutating func skip(_ n: Int) -> Bool {
            guard n >= 0, bytes.count - position >= n else { return false }
            position += n
            return true
        }

        mutating func uint8() -> UInt8? {
            guard position < bytes.count else { return nil }
            defer { position += 1 }
            return bytes[position]
        }

        mutating func uint16() -> UInt16? {
            guard bytes.count - position >= 2 else { return nil }
            defer { position += 2 }
            return UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
        }

        mutating func length(_ lengthBytes: Int) -> Int? {
            lengthBytes == 1 ? uint8().map(Int.init) : uint16().map(Int.init)
        }

        mutating func skipVector(lengthBytes: Int, maximum: Int = .max) -> Bool {
            guard let n = length(lengthBytes), n <= maximum else { return false }
            return skip(n)
        }

        mutating func vector(lengthBytes: Int) -> Reader? {
            guard let n = length(lengthBytes), bytes.count - position >= n else { return nil }
            defer { position += n }
            return Reader(UnsafeRawBufferPointer(rebasing: bytes[position..<position + n]))
        }
    }
}
