import Foundation
import SluiceNet

/// The client side of an HTTP CONNECT tunnel (RFC 9110 section 9.3.6), with basic
/// authentication (RFC 7617) when credentials are given.
///
/// The proxy's response header must end within ``maxResponseHeader`` bytes; any bytes
/// after it belong to the tunnel and come back as the leftover.
public struct HTTPConnectHandshake: ProxyHandshake {
    /// The longest response header accepted.
    public static let maxResponseHeader = 16 * 1024

    public let target: SocketEndpoint
    private let request: [UInt8]
    private var received: [UInt8] = []
    private var started = false

    /// - Parameters:
    ///   - headers: extra request headers, in order; a `Host` among them replaces ours.
    public init(
        target: SocketEndpoint, username: String? = nil, password: String? = nil,
        headers: [(name: String, value: String)] = []
    ) {
        self.target = target
        let authority = target.description
        var text = "CONNECT \(authority) HTTP/1.1\r\n"
        if !headers.contains(where: { $0.name.lowercased() == "host" }) { text += "Host: \(authority)\r\n" }
        if let username {
            let token = Data("\(username):\(password ?? "")".utf8).base64EncodedString()
            text += "Proxy-Authorization: Basic \(token)\r\n"
        }
        for header in headers { text += "\(header.name): \(header.value)\r\n" }
        text += "\r\n"
        request = Array(text.utf8)
    }

    public mutating func start() -> HandshakeStep {
        started = true
        return .send(request)
    }

    public mutating func receive(_ bytes: UnsafeRawBufferPointer) -> HandshakeStep {
        guard started else { return .failed("HTTP CONNECT: the proxy spoke before the request") }
        let searchFrom = max(0, received.count - 3)
        received.append(contentsOf: bytes)
        guard let end = Self.headerEnd(received, from: searchFrom) else {
            if received.count > Self.maxResponseHeader {
                return .failed("HTTP CONNECT: the proxy's response header exceeds \(Self.maxResponseHeader) bytes")
            }
            return .send([])
        }
        let statusLine = received.prefix { $0 != UInt8(ascii: "\r") }
        let line = String(decoding: statusLine, as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...599).contains(status)
        else {
            return .failed("HTTP CONNECT: not an HTTP response: \"\(line.prefix(80))\"")
        }
        guard (200...299).contains(status) else {
            let reason = parts.count > 2 ? " \(parts[2])" : ""
            let hint = status == 407 ? " (proxy authentication required: check username and password)" : ""
            return .failed("HTTP CONNECT: the proxy answered \(status)\(reason)\(hint)")
        }
        let leftover = Array(received[end...])
        received = []
        return .established(leftover: leftover)
    }

    /// The index just past the first "\r\n\r\n" at or after `from`.
    package static func headerEnd(_ bytes: [UInt8], from: Int) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var i = from
        while i + 3 < bytes.count {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i + 4 }
            i += 1
        }
        return nil
    }
}
