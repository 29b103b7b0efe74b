/// What a sniffer made of a connection's first bytes.
public enum SniffResult: Sendable, Equatable {
    /// The host name the client asked for: lowercase, no trailing dot, host-name characters
    /// only (`a-z 0-9 - _ .`), or an IP literal (an IPv6 one without brackets).
    case name(String)
    /// The bytes so far are a proper beginning of this protocol; more could tell.
    case needMoreBytes
    /// The bytes are not this protocol (or are malformed beyond use).
    case notThisProtocol
    /// This protocol, but it names no host (no SNI, no Host header), or a name sluice does
    /// not take (too long, odd characters), or it needs more than ``Sniffing/maximumBytes``.
    case noName
}

/// Reads the host name from the first bytes a client sends: the TLS ClientHello's
/// server_name (SNI) or the HTTP/1 request's `Host`. Pure functions over bytes: they never
/// trap, never look past ``maximumBytes``, and allocate only the name they return.
public enum Sniffing {
    /// The most a sniffer looks at; a name not found within it is not found.
    public static let maximumBytes = 16 * 1024

    /// Which protocol a sniffer reads.
    public enum Kind: Sendable, Equatable, CaseIterable {
        case tls, http
    }

    /// Tries `kinds` in order on `bytes`: the first name wins, and while any of them needs
    /// more bytes the answer is ``SniffResult/needMoreBytes``.
    public static func sniff(_ bytes: UnsafeRawBufferPointer, kinds: [Kind]) -> (SniffResult, Kind?) {
        var waiting = false
        var named = false
        for kind in kinds {
            let result: SniffResult
            switch kind {
            case .tls: result = TLSClientHello.serverName(in: bytes)
            case .http: result = HTTPRequestHead.host(in: bytes)
            }
            switch result {
            case .name: return (result, kind)
            case .needMoreBytes: waiting = true
            case .noName: named = true
            case .notThisProtocol: break
            }
        }
        if waiting { return (.needMoreBytes, nil) }
        return (named ? .noName : .notThisProtocol, nil)
    }

    public static func sniff(_ bytes: [UInt8], kinds: [Kind]) -> (SniffResult, Kind?) {
        bytes.withUnsafeBytes { sniff($0, kinds: kinds) }
    }

    /// A host name as a sniffer returns it: lowercase, without a trailing dot; nil when it
    /// is empty, longer than 253 bytes or holds anything but `A-Z a-z 0-9 - _ . :` (the
    /// colon for IPv6 literals).
    static func hostName(_ bytes: UnsafeRawBufferPointer) -> String? {
        var count = bytes.count
        if count > 0 && bytes[count - 1] == UInt8(ascii: ".") { count -= 1 }
        guard count > 0, count <= 253 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(count)
        for i in 0..<count {
            var b = bytes[i]
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): b += 32
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"),
                UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"):
                break
            default: return nil
            }
            out.append(b)
        }
        // No empty labels ("a..b", ".a"), except in an IPv6 literal's "::".
        if !out.contains(UInt8(ascii: ":")) {
            var previousDot = true
            for b in out {
                let dot = b == UInt8(ascii: ".")
                if dot && previousDot { return nil }
                previousDot = dot
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
