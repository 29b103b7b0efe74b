import Foundation
import SluiceNet

/// Shadowsocks AEAD UDP (SIP004): each datagram is a fresh salt followed by one sealed
/// piece (nonce zero) holding the SOCKS-form address and the payload. Client to server
/// the address is the destination; server to client it is the remote that answered.
public enum ShadowsocksDatagram {
    /// Seals `payload` for `destination`. Nil when the name is too long to express.
    public static func seal(
        _ payload: UnsafeRawBufferPointer, to destination: SocketEndpoint, key: ShadowsocksKey, salt: [UInt8]? = nil
    ) -> [UInt8]? {
        var plaintext: [UInt8] = []
        plaintext.reserveCapacity(payload.count + 24)
        guard SOCKSAddress.encode(destination, into: &plaintext) else { return nil }
        plaintext.append(contentsOf: payload)
        let salt = salt ?? key.randomSalt()
        var out = salt
        out.reserveCapacity(salt.count + plaintext.count + ShadowsocksMethod.tagLength)
        var cipher = salt.withUnsafeBytes { key.sessionCipher(salt: $0) }
        cipher.seal(plaintext, into: &out)
        return out
    }

    /// Opens one datagram: the address it carries and the payload.
    public static func open(_ packet: UnsafeRawBufferPointer, key: ShadowsocksKey) throws(ShadowsocksError)
        -> (address: SocketEndpoint, payload: ArraySlice<UInt8>)
    {
        let saltLength = key.method.saltLength
        guard packet.count >= saltLength + ShadowsocksMethod.tagLength else {
            throw ShadowsocksError("datagram too short")
        }
        var cipher = key.sessionCipher(salt: UnsafeRawBufferPointer(rebasing: packet[..<saltLength]))
        var plaintext: [UInt8] = []
        try cipher.open(UnsafeRawBufferPointer(rebasing: packet[saltLength...]), into: &plaintext)
        switch SOCKSAddress.decode(plaintext) {
        case .complete(let address, let length): return (address, plaintext[length...])
        case .incomplete: throw ShadowsocksError("datagram address truncated")
        case .invalid(let reason): throw ShadowsocksError("datagram address: \(reason)")
        }
    }
}
