/// The `Host` of an HTTP/1 request (RFC 9112 section 3 and RFC 9110 section 7.2), read from
/// the start of a connection: the request line is checked byte by byte (method, target,
/// `HTTP/1.x`), so a few bytes of something else already say ``SniffResult/notThisProtocol``;
/// header names are case-insensitive; the port is stripped; `[v6]:port` gives the bare
/// IPv6 literal.
public enum HTTPRequestHead {
    /// The longest method accepted (`PROPPATCH`, `MKCALENDAR`, ... fit).
    private static let maximumMethod = 20

    public static func host(in input: UnsafeRawBufferPointer) -> SniffResult {
        let truncated = input.count > Sniffing.maximumBytes
        let bytes = truncated ? UnsafeRawBufferPointer(rebasing: input[0..<Sniffing.maximumBytes]) : input
        let more: SniffResult = truncated ? .noName : .needMoreBytes
        var i = 0
        // Method: upper-case letters and '-', then one space.
        while i < bytes.count && bytes[i] != UInt8(ascii: " ") {
            let b = bytes[i]
            guard (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z")) || b == UInt8(ascii: "-"), i < maximumMethod else {
                return .notThisProtocol
            }
            i += 1
        }
        guard i < bytes.count else { return more }
        guard i > 0 else { return .notThisProtocol }
        i += 1
        // Request target: visible ASCII up to one space.
        let targetStart = i
        while i < bytes.count && bytes[i] != UInt8(ascii: " ") {
            guard bytes[i] > 0x20 && bytes[i] < 0x7F else { return .notThisProtocol }
            i += 1
        }
        guard i < bytes.count else { return more }
        guard i > targetStart else { return .notThisProtocol }
        i += 1
        // "HTTP/1." DIGIT, then CRLF (or a bare LF, which RFC 9112 2.2 lets a recipient accept).
        let version = Array("HTTP/1.".utf8)
        for expected in version {
            guard i < bytes.count else { return more }
            guard bytes[i] == expected else { return .notThisProtocol }
            i += 1
        }
        guard i < bytes.count else { return more }
        guard bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9") else { return .notThisProtocol }
        i += 1
        if i < bytes.count && bytes[i] == UInt8(ascii: "\r") { i += 1 }
        guard i < bytes.count else { return more }
        guard bytes[i] == UInt8(ascii: "\n") else { return .notThisProtocol }
        i += 1
        // Header lines, until the empty line.
        while true {
            var end = i
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            guard end < bytes.count else { return more }
            var lineEnd = end
            if lineEnd > i && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            if lineEnd == i { return .noName }  // the end of the header block, and no Host
            let line = UnsafeRawBufferPointer(rebasing: bytes[i..<lineEnd])
            i = end + 1
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                // An obsolete folded line (leading space) continues the previous field; anything else is broken.
                if line[0] == UInt8(ascii: " ") || line[0] == UInt8(ascii: "\t") { continue }
                return .notThisProtocol
            }
            guard colon == 4, isHost(line) else { continue }
            return hostValue(UnsafeRawBufferPointer(rebasing: line[5...]))
        }
    }

    public static func host(in bytes: [UInt8]) -> SniffResult {
        bytes.withUnsafeBytes { host(in: $0) }
    }

    private static func isHost(_ line: UnsafeRawBufferPointer) -> Bool {
        let name: [UInt8] = Array("host".utf8)
        for k in 0..<4 where line[k] | 0x20 != name[k] { return false }
        return true
    }

    /// `name`, `name:port`, `1.2.3.4:port`, `[v6]` or `[v6]:port`, between optional spaces.
    private static func hostValue(_ raw: UnsafeRawBufferPointer) -> SniffResult {
        var start = 0
        var end = raw.count
        while start < end && (raw[start] == UInt8(ascii: " ") || raw[start] == UInt8(ascii: "\t")) { start += 1 }
        while end > start && (raw[end - 1] == UInt8(ascii: " ") || raw[end - 1] == UInt8(ascii: "\t")) { end -= 1 }
        guard start < end else { return .noName }
        var value = UnsafeRawBufferPointer(rebasing: raw[start..<end])
        if value[0] == UInt8(ascii: "[") {
            guard let close = value.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return .noName }
            let after = UnsafeRawBufferPointer(rebasing: value[(close + 1)...])
            guard after.isEmpty || isPortSuffix(after) else { return .noName }
            value = UnsafeRawBufferPointer(rebasing: value[1..<close])
            guard value.contains(UInt8(ascii: ":")) else { return .noName }
        } else if let colon = value.lastIndex(of: UInt8(ascii: ":")) {
            guard value.firstIndex(of: UInt8(ascii: ":")) == colon,
                isPortSuffix(UnsafeRawBufferPointer(rebasing: value[colon...]))
            else { return .noName }
            value = UnsafeRawBufferPointer(rebasing: value[..<colon])
        }
        return Sniffing.hostName(value).map { .name($0) } ?? .noName
    }

    /// `:` and up to five digits (an empty port is allowed: RFC 3986 3.2.3).
    private static func isPortSuffix(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 1, bytes.count <= 6, bytes[0] == UInt8(ascii: ":") else { return false }
        return bytes.dropFirst().allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }
}
