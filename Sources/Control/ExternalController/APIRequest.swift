import Foundation
import NIOHTTP1

/// One HTTP request as the router sees it.
struct APIRequest: Sendable {
    var method: HTTPMethod
    /// Percent-decoded path segments: `/proxies/my%20group/delay` is `["proxies", "my group", "delay"]`.
    var segments: [String]
    var rawPath: String
    var query: [String: String]
    var headers: HTTPHeaders
    var body: [UInt8]

    init(head: HTTPRequestHead, body: [UInt8]) {
        method = head.method
        headers = head.headers
        self.body = body
        let uri = head.uri
        let pathPart: Substring
        var query: [String: String] = [:]
        if let mark = uri.firstIndex(of: "?") {
            pathPart = uri[..<mark]
            for pair in uri[uri.index(after: mark)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = Self.decode(parts[0])
                let value = parts.count > 1 ? Self.decode(parts[1]) : ""
                query[key] = value
            }
        } else {
            pathPart = uri[...]
        }
        rawPath = String(pathPart)
        segments = pathPart.split(separator: "/").map { Self.decode($0, plusIsSpace: false) }
        self.query = query
    }

    /// Percent-decoding; `+` is a space in a query.
    static func decode(_ text: Substring, plusIsSpace: Bool = true) -> String {
        let spaced = plusIsSpace ? text.replacingOccurrences(of: "+", with: " ") : String(text)
        return spaced.removingPercentEncoding ?? spaced
    }

    var isWebSocketUpgrade: Bool {
        headers["upgrade"].contains { $0.lowercased() == "websocket" }
    }
}

/// What a route answers.
enum APIReply: Sendable {
    case json(HTTPResponseStatus, [UInt8])
    case noContent
    case file([UInt8], contentType: String)
    case redirect(String)
    /// A stream of JSON lines (HTTP, chunked) or text frames (WebSocket).
    case stream(StreamKind)

    /// mihomo's error shape: `{"message": "..."}`.
    static func error(_ status: HTTPResponseStatus, _ message: String) -> APIReply {
        .json(status, JSON.encode(["message": message]))
    }

    static let notFound = error(.notFound, "Resource not found")
    static let badRequest = error(.badRequest, "Body invalid")
}

/// The streaming endpoints.
enum StreamKind: Sendable, Equatable {
    case traffic
    case memory
    /// `/logs?level=`: lines at `priority` or more urgent; `structured` = mihomo's `format=structured`.
    case logs(priority: UInt8, structured: Bool)
    /// `/connections` over a WebSocket: the snapshot every `intervalMilliseconds`.
    case connections(intervalMilliseconds: Int)
}

enum JSON {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return (try? Array(encoder.encode(value))) ?? Array("{}".utf8)
    }

    /// A JSON object body, or nil when the body is not one.
    static func object(_ body: [UInt8]) -> [String: Any]? {
        guard !body.isEmpty, let value = try? JSONSerialization.jsonObject(with: Data(body)) else { return nil }
        return value as? [String: Any]
    }
}
