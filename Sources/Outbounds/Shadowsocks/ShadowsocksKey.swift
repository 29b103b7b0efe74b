import Crypto
import Foundation

/// A Shadowsocks master key and the session subkeys derived from it.
///
/// The master key comes from the password with OpenSSL's `EVP_BytesToKey` (MD5, one
/// round, no salt), as every Shadowsocks implementation does; each session (a TCP
/// direction, a UDP packet) then uses `HKDF-SHA1(master, salt, "ss-subkey")` with the
/// random salt it starts with (SIP004).
public struct ShadowsocksKey: Sendable {
    public let method: ShadowsocksMethod
    public let master: [UInt8]

    public init(method: ShadowsocksMethod, password: String) {
        self.method = method
        self.master = Self.bytesToKey(password: Array(password.utf8), length: method.keyLength)
    }

    /// `EVP_BytesToKey(MD5, password)`: D1 = MD5(password), Di = MD5(Di-1 || password),
    /// concatenated and cut to `length`.
    public static func bytesToKey(password: [UInt8], length: Int) -> [UInt8] {
        var key: [UInt8] = []
        var previous: [UInt8] = []
        while key.count < length {
            previous = Array(Insecure.MD5.hash(data: previous + password))
            key += previous
        }
        return Array(key.prefix(length))
    }

    /// HKDF with SHA-1 (RFC 5869).
    public static func hkdfSHA1(key: [UInt8], salt: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        let derived = HKDF<Insecure.SHA1>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: key), salt: salt, info: info, outputByteCount: length)
        return derived.withUnsafeBytes { Array($0) }
    }

    private static let info = Array("ss-subkey".utf8)

    /// The session subkey for `salt`.
    public func subkey(salt: UnsafeRawBufferPointer) -> SymmetricKey {
        SymmetricKey(data: Self.hkdfSHA1(key: master, salt: Array(salt), info: Self.info, length: method.keyLength))
    }

    func sessionCipher(salt: UnsafeRawBufferPointer) -> SessionCipher {
        SessionCipher(method: method, key: subkey(salt: salt))
    }

    /// A fresh random salt.
    public func randomSalt() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var salt: [UInt8] = []
        salt.reserveCapacity(method.saltLength)
        while salt.count < method.saltLength {
            let word = generator.next() as UInt64
            for shift in stride(from: 0, to: 64, by: 8) where salt.count < method.saltLength {
                salt.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        return salt
    }
}
