import Foundation
import SluiceNet
import SluiceOutbounds

/// Who may use a local proxy port: `authentication` (`user:pass`) or a listener's `users`. Empty: anyone.
public struct ProxyCredentials: Sendable, Equatable {
    /// Username → password.
    public var users: [String: String]

    public init(users: [String: String] = [:]) { self.users = users }

    public var required: Bool { !users.isEmpty }

    /// Whether `user` with `password` may connect.
    public func accepts(_ user: String, _ password: String) -> Bool {
        guard let expected = users[user] else { return false }
        // Compare every byte, whatever the first difference (no early exit to time).
        let a = Array(expected.utf8)
        let b = Array(password.utf8)
        var difference = a.count ^ b.count
        for i in 0..<max(a.count, b.count) {
            difference |= Int((i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0))
        }
        return difference == 0
    }
}

/// The protocol a local proxy client spoke; the names are mihomo's connection types (`/connections` `type`; IN-TYPE
/// spells them in capitals). An HTTP CONNECT is mihomo's `HTTPS`.
public enum LocalProxyProtocol: String, Sendable, Equatable {
    case socks4 = "Socks4"
    case socks5 = "Socks5"
    case http = "HTTP"
    case httpConnect = "HTTPS"
}

/// A client's request on a local proxy port, once its handshake is complete.
public struct LocalProxyRequest: Sendable, Equatable {
    /// Where the client wants to go: a name (`socks5h://`, HTTP) or an address.
    public var target: SocketEndpoint
    public var kind: LocalProxyProtocol
    /// The user it authenticated as; nil without authentication.
    public var user: String?
    /// For the client when the connection goes ahead (SOCKS success, `200 Connection established`; nothing for
    /// a plain HTTP request, whose answer comes from the server).
    public var accepted: [UInt8]
    /// For the client when the rules reject the destination, just before the connection is closed.
    public var refused: [UInt8]
    /// For the destination before anything else the client sends: a plain HTTP request rewritten to origin form,
    /// and whatever the client sent behind its request.
    public var upstream: [UInt8]
}

/// One step of a local proxy client's handshake.
public enum LocalProxyStep: Sendable, Equatable {
    /// Write these bytes to the client (possibly none), then wait for more from it.
    case reply([UInt8])
    /// A TCP connection to the request's target.
    case connect(LocalProxyRequest)
    /// SOCKS5 UDP ASSOCIATE: write `pending` (answers to what the client pipelined before), then
    /// ``LocalProxyServer/socks5Reply(_:bound:)`` naming the port's UDP socket; keep the TCP connection open as long
    /// as the association lasts, and ignore what else comes on it.
    case udpAssociate(user: String?, pending: [UInt8])
    /// Write `reply` (possibly empty) and close: the reason is for the log.
    case refuse(String, reply: [UInt8])
}

/// The server side of the local proxy ports (`mixed-port`, `socks-port`, `port`, `listeners:`) as a pure state
/// machine: the client's bytes in, bytes to answer and the client's request out, no I/O.
///
/// SOCKS5 (RFC 1928: CONNECT and UDP ASSOCIATE, no-auth and username/password of RFC 1929), SOCKS4 and 4a (CONNECT),
/// and HTTP/1.x proxy requests (CONNECT, and plain requests in absolute form, forwarded in origin form with
/// `Connection: close` so that each connection serves one request to one server). A mixed port tells them apart
/// by the first byte as mihomo does: 4 is SOCKS4, 5 is SOCKS5, anything else HTTP.
public struct LocalProxyServer: Sendable {
    public enum Kind: String, Sendable { case mixed, socks, http }

    /// The longest HTTP request head, and the most a client may send before its request is complete.
    public static let maxRequestHead = 16 * 1024

    private enum Stage {
        case first
        case socks5Greeting
        case socks5Auth
        case socks5Request(user: String?)
        case socks4
        case http
        case done
    }

    private let kind: Kind
    private let credentials: ProxyCredentials
    private var stage = Stage.first
    private var buffer: [UInt8] = []
    /// Where the search for the end of an HTTP head goes on (a client sending a byte at a time must not make every
    /// read scan the whole head again).
    private var headSearchedTo = 0

    /// - Parameter credentials: who may connect; clients from `skip-auth-prefixes` get an empty set.
    public init(kind: Kind, credentials: ProxyCredentials) {
        self.kind = kind
        self.credentials = credentials
    }

    /// Bytes from the client (any segmentation).
    public mutating func receive(_ bytes: UnsafeRawBufferPointer) -> LocalProxyStep {
        buffer.append(contentsOf: bytes)
        var out: [UInt8] = []
        while true {
            let step = advance()
            switch step {
            case .reply(let bytes):
                out += bytes
                // A step that consumed nothing waits for more bytes; one that answered may have more to parse.
                if bytes.isEmpty || buffer.isEmpty { return .reply(out) }
            case .connect(var request):
                request.accepted = out + request.accepted
                return .connect(request)
            case .refuse(let why, let reply):
                return .refuse(why, reply: out + reply)
            case .udpAssociate(let user, let pending):
                return .udpAssociate(user: user, pending: out + pending)
            }
        }
    }

    public mutating func receive(_ bytes: [UInt8]) -> LocalProxyStep { bytes.withUnsafeBytes { receive($0) } }

    /// Parses what the buffer holds in the current stage.
    private mutating func advance() -> LocalProxyStep {
        switch stage {
        case .first:
            guard let first = buffer.first else { return .reply([]) }
            switch (kind, first) {
            case (.mixed, 5), (.socks, 5): stage = .socks5Greeting
            case (.mixed, 4), (.socks, 4): stage = .socks4
            case (.socks, _): return .refuse("not SOCKS (first byte \(first))", reply: [])
            default: stage = .http
            }
            return advance()
        case .socks5Greeting: return socks5Greeting()
        case .socks5Auth: return socks5Auth()
        case .socks5Request(let user): return socks5Request(user: user)
        case .socks4: return socks4()
        case .http: return http()
        case .done: return .refuse("the client spoke after its request", reply: [])
        }
    }

    // MARK: SOCKS5

    private mutating func socks5Greeting() -> LocalProxyStep {
        guard buffer.count >= 2 else { return .reply([]) }
        let count = Int(buffer[1])
        guard buffer.count >= 2 + count else { return .reply([]) }
        let methods = Set(buffer[2..<(2 + count)])
        buffer.removeFirst(2 + count)
        if credentials.required {
            guard methods.contains(2) else {
                stage = .done
                return .refuse(
                    "SOCKS5: the client offers no username/password, which this port requires", reply: [5, 0xFF])
            }
            stage = .socks5Auth
            return .reply([5, 2])
        }
        if methods.contains(0) {
            stage = .socks5Request(user: nil)
            return .reply([5, 0])
        }
        if methods.contains(2) {
            // Credentials offered where none are needed: take them, check nothing.
            stage = .socks5Auth
            return .reply([5, 2])
        }
        stage = .done
        return .refuse("SOCKS5: no acceptable authentication method offered", reply: [5, 0xFF])
    }

    private mutating func socks5Auth() -> LocalProxyStep {
        guard buffer.count >= 2 else { return .reply([]) }
        guard buffer[0] == 1 else {
            stage = .done
            return .refuse("SOCKS5: username/password version \(buffer[0]) (expected 1)", reply: [1, 1])
        }
        let userLength = Int(buffer[1])
        guard buffer.count >= 3 + userLength else { return .reply([]) }
        let passwordLength = Int(buffer[2 + userLength])
        guard buffer.count >= 3 + userLength + passwordLength else { return .reply([]) }
        let user = String(decoding: buffer[2..<(2 + userLength)], as: UTF8.self)
        let password = String(decoding: buffer[(3 + userLength)..<(3 + userLength + passwordLength)], as: UTF8.self)
        buffer.removeFirst(3 + userLength + passwordLength)
        if credentials.required && !credentials.accepts(user, password) {
            stage = .done
            return .refuse("SOCKS5: wrong username or password (user \"\(user)\")", reply: [1, 1])
        }
        stage = .socks5Request(user: credentials.required ? user : nil)
        return .reply([1, 0])
    }

    private mutating func socks5Request(user: String?) -> LocalProxyStep {
        guard buffer.count >= 4 else { return .reply([]) }
        guard buffer[0] == 5 else {
            stage = .done
            return .refuse("SOCKS5: request version \(buffer[0])", reply: [])
        }
        let command = buffer[1]
        let decoded = buffer.withUnsafeBytes { SOCKSAddress.decode(UnsafeRawBufferPointer(rebasing: $0[3...])) }
        switch decoded {
        case .incomplete: return .reply([])
        case .invalid(let why):
            stage = .done
            return .refuse("SOCKS5: \(why)", reply: Self.socks5Reply(8, bound: nil))
        case .complete(let target, let length):
            buffer.removeFirst(3 + length)
            stage = .done
            switch command {
            case 1:
                let upstream = buffer
                buffer = []
                return .connect(
                    LocalProxyRequest(
                        target: target, kind: .socks5, user: user, accepted: Self.socks5Reply(0, bound: nil),
                        refused: Self.socks5Reply(2, bound: nil), upstream: upstream))
            case 3:
                buffer = []
                return .udpAssociate(user: user, pending: [])
            default:
                return .refuse("SOCKS5: command \(command) is not supported", reply: Self.socks5Reply(7, bound: nil))
            }
        }
    }

    /// A SOCKS5 reply (RFC 1928 section 6): `code` 0 succeeded, 2 not allowed by ruleset, 7 command not supported,
    /// 8 address type not supported; `bound` the address it names (0.0.0.0:0 when nil).
    public static func socks5Reply(_ code: UInt8, bound: SocketEndpoint?) -> [UInt8] {
        var out: [UInt8] = [5, code, 0]
        let endpoint = bound ?? SocketEndpoint(address: .v4(IPv4Address(rawValue: 0)), port: 0)
        SOCKSAddress.encode(endpoint, into: &out)
        return out
    }

    // MARK: SOCKS4

    private mutating func socks4() -> LocalProxyStep {
        // VN CD DSTPORT(2) DSTIP(4) USERID NUL [DOMAIN NUL]
        guard buffer.count >= 9 else { return .reply([]) }
        let refused: [UInt8] = [0, 0x5B, 0, 0, 0, 0, 0, 0]
        guard buffer[1] == 1 else {
            stage = .done
            return .refuse("SOCKS4: command \(buffer[1]) is not supported", reply: refused)
        }
        guard let userEnd = buffer[8...].firstIndex(of: 0) else {
            return buffer.count > 8 + 256 ? .refuse("SOCKS4: user id too long", reply: refused) : .reply([])
        }
        let port = UInt16(buffer[2]) << 8 | UInt16(buffer[3])
        let user = String(decoding: buffer[8..<userEnd], as: UTF8.self)
        var consumed = userEnd + 1
        var host: SocketEndpoint.Host = .address(.v4(IPv4Address(buffer[4], buffer[5], buffer[6], buffer[7])))
        if buffer[4] == 0, buffer[5] == 0, buffer[6] == 0, buffer[7] != 0 {
            // SOCKS4a: the name follows the user id.
            guard let nameEnd = buffer[consumed...].firstIndex(of: 0) else {
                return buffer.count > consumed + 256 ? .refuse("SOCKS4a: name too long", reply: refused) : .reply([])
            }
            let name = String(decoding: buffer[consumed..<nameEnd], as: UTF8.self)
            consumed = nameEnd + 1
            guard let parsed = SocketEndpoint.parse(name, allowingHostNames: true, defaultPort: port) else {
                stage = .done
                return .refuse("SOCKS4a: \"\(name.prefix(64))\" is not a host name", reply: refused)
            }
            host = parsed.host
        }
        stage = .done
        // SOCKS4 carries no password: an authenticated port takes the user id with an empty one, as mihomo does.
        if credentials.required && !credentials.accepts(user, "") {
            return .refuse("SOCKS4: this port requires authentication, which SOCKS4 cannot carry", reply: refused)
        }
        buffer.removeFirst(consumed)
        let upstream = buffer
        buffer = []
        return .connect(
            LocalProxyRequest(
                target: SocketEndpoint(host: host, port: port), kind: .socks4, user: credentials.required ? user : nil,
                accepted: [0, 0x5A, 0, 0, 0, 0, 0, 0], refused: refused, upstream: upstream))
    }

    // MARK: HTTP

    private mutating func http() -> LocalProxyStep {
        guard let end = HTTPConnectHandshake.headerEnd(buffer, from: headSearchedTo) else {
            headSearchedTo = max(0, buffer.count - 3)
            if buffer.count > Self.maxRequestHead {
                stage = .done
                return .refuse(
                    "HTTP: request head longer than \(Self.maxRequestHead) bytes",
                    reply: Self.httpStatus(431, "Request Header Fields Too Large"))
            }
            return .reply([])
        }
        stage = .done
        let head = String(decoding: buffer[..<(end - 4)], as: UTF8.self)
        let rest = Array(buffer[end...])
        buffer = []
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true)
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else {
            return .refuse(
                "HTTP: not a proxy request: \"\(head.prefix(80))\"", reply: Self.httpStatus(400, "Bad Request"))
        }
        let method = String(requestLine[0])
        let uri = String(requestLine[1])
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append(
                (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var user: String?
        if credentials.required {
            guard let (name, password) = Self.basicCredentials(headers), credentials.accepts(name, password) else {
                return .refuse(
                    "HTTP: missing or wrong Proxy-Authorization",
                    reply: Self.httpStatus(
                        407, "Proxy Authentication Required", extra: "Proxy-Authenticate: Basic realm=\"sluice\"\r\n"))
            }
            user = name
        }
        let forbidden = Self.httpStatus(403, "Forbidden")
        if method == "CONNECT" {
            guard let target = SocketEndpoint.parse(uri, allowingHostNames: true) else {
                return .refuse(
                    "HTTP CONNECT: \"\(uri.prefix(80))\" is not HOST:PORT", reply: Self.httpStatus(400, "Bad Request"))
            }
            return .connect(
                LocalProxyRequest(
                    target: target, kind: .httpConnect, user: user,
                    accepted: Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8), refused: forbidden,
                    upstream: rest))
        }
        // A plain request: absolute form, http only.
        guard uri.lowercased().hasPrefix("http://") else {
            return .refuse(
                "HTTP: \(method) \(uri.prefix(80)) is not a proxy request (absolute http:// URI or CONNECT expected)",
                reply: Self.httpStatus(400, "Bad Request"))
        }
        let afterScheme = uri.dropFirst("http://".count)
        let authorityEnd = afterScheme.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? afterScheme.endIndex
        var authority = afterScheme[..<authorityEnd]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var path = String(afterScheme[authorityEnd...])
        if path.isEmpty || !path.hasPrefix("/") { path = "/" + path }
        guard let target = SocketEndpoint.parse(authority, allowingHostNames: true, defaultPort: 80) else {
            return .refuse(
                "HTTP: \"\(authority.prefix(80))\" is not a host", reply: Self.httpStatus(400, "Bad Request"))
        }
        var text = "\(method) \(path) \(requestLine[2])\r\n"
        let dropped: Set<String> = ["proxy-authorization", "proxy-connection", "connection", "keep-alive"]
        if !headers.contains(where: { $0.name.lowercased() == "host" }) { text += "Host: \(authority)\r\n" }
        for header in headers where !dropped.contains(header.name.lowercased()) {
            text += "\(header.name): \(header.value)\r\n"
        }
        text += "Connection: close\r\n\r\n"
        return .connect(
            LocalProxyRequest(
                target: target, kind: .http, user: user, accepted: [], refused: forbidden,
                upstream: Array(text.utf8) + rest))
    }

    /// The user and password of a `Proxy-Authorization: Basic` header.
    private static func basicCredentials(_ headers: [(name: String, value: String)]) -> (String, String)? {
        guard let value = headers.first(where: { $0.name.lowercased() == "proxy-authorization" })?.value else {
            return nil
        }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic", let data = Data(base64Encoded: String(parts[1]))
        else {
            return nil
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    static func httpStatus(_ code: Int, _ reason: String, extra: String = "") -> [UInt8] {
        Array("HTTP/1.1 \(code) \(reason)\r\n\(extra)Content-Length: 0\r\nConnection: close\r\n\r\n".utf8)
    }
}
