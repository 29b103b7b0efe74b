import Foundation

/// Seals a Shadowsocks AEAD TCP stream (SIP004): the salt, then for every piece of at
/// most 0x3FFF bytes a sealed 2-byte big-endian length and the sealed payload.
public struct ShadowsocksStreamSealer {
    /// The largest payload of one chunk.
    public static let maxPayload = 0x3FFF

    private var cipher: SessionCipher
    private var pendingSalt: [UInt8]?

    /// - Parameter salt: the session salt; random unless a test fixes it.
    public init(key: ShadowsocksKey, salt: [UInt8]? = nil) {
        let salt = salt ?? key.randomSalt()
        precondition(salt.count == key.method.saltLength, "salt must be \(key.method.saltLength) bytes")
        cipher = salt.withUnsafeBytes { key.sessionCipher(salt: $0) }
        pendingSalt = salt
    }

    /// Appends the sealed form of `plaintext` (the salt first, once). Empty input adds nothing.
    public mutating func seal(_ plaintext: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard !plaintext.isEmpty else { return }
        if let salt = pendingSalt {
            out += salt
            pendingSalt = nil
        }
        var offset = 0
        while offset < plaintext.count {
            let n = min(Self.maxPayload, plaintext.count - offset)
            cipher.seal([UInt8(n >> 8), UInt8(n & 0xFF)], into: &out)
            cipher.seal(UnsafeRawBufferPointer(rebasing: plaintext[offset..<(offset + n)]), into: &out)
            offset += n
        }
    }

    public mutating func seal(_ plaintext: [UInt8], into out: inout [UInt8]) {
        plaintext.withUnsafeBytes { seal($0, into: &out) }
    }
}

/// Opens a Shadowsocks AEAD TCP stream fed in pieces of any size; keeps at most one
/// incomplete chunk (0x3FFF + 34 bytes) between calls.
public struct ShadowsocksStreamOpener {
    private let key: ShadowsocksKey
    private var cipher: SessionCipher?
    /// The payload length announced by the last length chunk, while its payload is awaited.
    private var payloadLength: Int?
    private var tail: [UInt8] = []

    public init(key: ShadowsocksKey) { self.key = key }

    /// Whether bytes of an unfinished salt or chunk are held: EOF now truncates the stream.
    public var hasPartialChunk: Bool { !tail.isEmpty || payloadLength != nil }

    /// Opens what `ciphertext` completes and appends the plaintext.
    /// - Throws: ``ShadowsocksError`` when a chunk fails authentication or announces more
    ///   than 0x3FFF bytes; the stream is unusable after that.
    public mutating func open(_ ciphertext: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(ShadowsocksError) {
        if tail.isEmpty {
            let used = try consume(ciphertext, into: &out)
            if used < ciphertext.count { tail = Array(ciphertext[used...]) }
        } else {
            tail.append(contentsOf: ciphertext)
            var buffer: [UInt8] = []
            swap(&buffer, &tail)
            // withUnsafeBytes rethrows untyped errors: carry the typed one out in a Result.
            let result = buffer.withUnsafeBytes { bytes in
                Result { () throws(ShadowsocksError) -> Int in try consume(bytes, into: &out) }
            }
            let used = try result.get()
            if used < buffer.count { tail = Array(buffer[used...]) }
        }
    }

    public mutating func open(_ ciphertext: [UInt8], into out: inout [UInt8]) throws(ShadowsocksError) {
        let result = ciphertext.withUnsafeBytes { bytes in
            Result { () throws(ShadowsocksError) in try open(bytes, into: &out) }
        }
        try result.get()
    }

    /// Opens every complete unit at the start of `bytes`; returns how many bytes it used.
    private mutating func consume(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(ShadowsocksError)
        -> Int
    {
        var offset = 0
        let tag = ShadowsocksMethod.tagLength
        if cipher == nil {
            let saltLength = key.method.saltLength
            guard bytes.count >= saltLength else { return 0 }
            cipher = key.sessionCipher(salt: UnsafeRawBufferPointer(rebasing: bytes[..<saltLength]))
            offset = saltLength
        }
        while true {
            if let length = payloadLength {
                guard bytes.count - offset >= length + tag else { return offset }
                try cipher!.open(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length + tag)]), into: &out)
                offset += length + tag
                payloadLength = nil
            } else {
                guard bytes.count - offset >= 2 + tag else { return offset }
                var length: [UInt8] = []
                try cipher!.open(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + 2 + tag)]), into: &length)
                let value = Int(length[0]) << 8 | Int(length[1])
                guard value <= ShadowsocksStreamSealer.maxPayload else {
                    throw ShadowsocksError("chunk length \(value) exceeds 0x3FFF")
                }
                offset += 2 + tag
                payloadLength = value
            }
        }
    }
}
