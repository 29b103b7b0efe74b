import Crypto
import Foundation

/// A Shadowsocks AEAD cipher (SIP004): its key and salt sizes, and sealing with a
/// little-endian nonce counter.
public enum ShadowsocksMethod: String, Sendable, CaseIterable {
    case aes128GCM = "aes-128-gcm"
    case aes256GCM = "aes-256-gcm"
    case chacha20IETFPoly1305 = "chacha20-ietf-poly1305"

    /// Key length in bytes; the salt is as long.
    public var keyLength: Int { self == .aes128GCM ? 16 : 32 }
    public var saltLength: Int { keyLength }
    /// Every sealed piece carries a 16-byte tag.
    public static let tagLength = 16
    public static let nonceLength = 12
}

/// What went wrong while opening Shadowsocks data.
public struct ShadowsocksError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }

    static let authentication = ShadowsocksError(
        "authentication failed: the data was not sealed with this password and cipher (or was altered)")
}

/// One session subkey with its nonce counter (SIP004: a 12-byte little-endian integer
/// starting at zero, incremented after every seal or open).
struct SessionCipher {
    let method: ShadowsocksMethod
    let key: SymmetricKey
    private var nonce = [UInt8](repeating: 0, count: ShadowsocksMethod.nonceLength)

    init(method: ShadowsocksMethod, key: SymmetricKey) {
        self.method = method
        self.key = key
    }

    /// Appends ciphertext and tag of `plaintext`.
    mutating func seal(_ plaintext: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        // Sealing fails only for a key or nonce of the wrong size, which the method fixes.
        switch method {
        case .aes128GCM, .aes256GCM:
            let box = try! AES.GCM.seal(plaintext, using: key, nonce: try! AES.GCM.Nonce(data: nonce))
            out.append(contentsOf: box.ciphertext)
            out.append(contentsOf: box.tag)
        case .chacha20IETFPoly1305:
            let box = try! ChaChaPoly.seal(plaintext, using: key, nonce: try! ChaChaPoly.Nonce(data: nonce))
            out.append(contentsOf: box.ciphertext)
            out.append(contentsOf: box.tag)
        }
        increment()
    }

    mutating func seal(_ plaintext: [UInt8], into out: inout [UInt8]) {
        plaintext.withUnsafeBytes { seal($0, into: &out) }
    }

    /// Opens `sealed` (ciphertext followed by the tag) and appends the plaintext.
    mutating func open(_ sealed: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(ShadowsocksError) {
        guard sealed.count >= ShadowsocksMethod.tagLength else {
            throw ShadowsocksError("sealed data shorter than its tag")
        }
        let split = sealed.count - ShadowsocksMethod.tagLength
        let ciphertext = UnsafeRawBufferPointer(rebasing: sealed[..<split])
        let tag = UnsafeRawBufferPointer(rebasing: sealed[split...])
        do {
            switch method {
            case .aes128GCM, .aes256GCM:
                let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
                out.append(contentsOf: try AES.GCM.open(box, using: key))
            case .chacha20IETFPoly1305:
                let box = try ChaChaPoly.SealedBox(
                    nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
                out.append(contentsOf: try ChaChaPoly.open(box, using: key))
            }
        } catch {
            throw .authentication
        }
        increment()
    }

    private mutating func increment() {
        for i in nonce.indices {
            nonce[i] &+= 1
            if nonce[i] != 0 { return }
        }
    }
}
