import SluiceNet

/// The header of a datagram relayed by a SOCKS5 UDP ASSOCIATE (RFC 1928 section 7):
/// `RSV(2) FRAG(1)`, the address, then the payload.
public enum SOCKS5Datagram {
    /// Appends the header for a datagram to `destination` (unfragmented). False when the
    /// name is too long to express.
    @discardableResult
    public static func encodeHeader(_ destination: SocketEndpoint, into out: inout [UInt8]) -> Bool {
        out += [0, 0, 0]
        return SOCKSAddress.encode(destination, into: &out)
    }

    /// Parses a relayed datagram: the remote it came from and where its payload starts.
    /// Nil for a runt, a bad address, or a fragment (FRAG != 0: reassembly is optional in
    /// the RFC and we, like most clients, drop fragments).
    public static func decode(_ datagram: UnsafeRawBufferPointer) -> (source: SocketEndpoint, payloadOffset: Int)? {
        guard datagram.count >= 4, datagram[2] == 0 else { return nil }
        guard
            case .complete(let source, let length) = SOCKSAddress.decode(
                UnsafeRawBufferPointer(rebasing: datagram[3...]))
        else {
            return nil
        }
        return (source, 3 + length)
    }
}
