import SluiceNet

/// The client side of a SOCKS5 connection setup (RFC 1928), with username/password
/// authentication (RFC 1929) when credentials are given: CONNECT for TCP, UDP ASSOCIATE
/// for UDP (then ``boundEndpoint`` is where datagrams go).
///
/// Method negotiation, authentication and the request go one after the other, each
/// waiting for its answer: some servers read only what each step needs and would lose
/// pipelined bytes.
public struct SOCKS5Handshake: ProxyHandshake {
    public enum Command: UInt8, Sendable {
        case connect = 1
        case udpAssociate = 3
    }

    private enum State {
        case idle
        case awaitingMethod
        case awaitingAuthentication
        case awaitingReply
        case done
    }

    public let command: Command
    public let target: SocketEndpoint
    private let credentials: (username: [UInt8], password: [UInt8])?
    private var state = State.idle
    private var received: [UInt8] = []
    /// BND.ADDR and BND.PORT of the successful reply: for UDP ASSOCIATE, the relay's endpoint.
    public private(set) var boundEndpoint: SocketEndpoint?

    /// - Parameters:
    ///   - target: DST.ADDR/DST.PORT: the destination for CONNECT; for UDP ASSOCIATE the
    ///     address datagrams will come from (`0.0.0.0:0` when unknown, as RFC 1928 allows).
    ///   - username, password: RFC 1929 credentials; nil username offers no authentication.
    public init(command: Command, target: SocketEndpoint, username: String? = nil, password: String? = nil) {
        self.command = command
        self.target = target
        if let username {
            credentials = (Array(username.utf8), Array((password ?? "").utf8))
        } else {
            credentials = nil
        }
    }

    public mutating func start() -> HandshakeStep {
        state = .awaitingMethod
        // Offer "no authentication" too when we have credentials: a server that needs none picks it.
        return .send(credentials == nil ? [5, 1, 0] : [5, 2, 0, 2])
    }

    public mutating func receive(_ bytes: UnsafeRawBufferPointer) -> HandshakeStep {
        received.append(contentsOf: bytes)
        var toSend: [UInt8] = []
        while true {
            switch state {
            case .idle, .done:
                return .failed("SOCKS5: unexpected bytes from the proxy")
            case .awaitingMethod:
                guard received.count >= 2 else { return .send(toSend) }
                guard received[0] == 5 else {
                    return .failed("SOCKS5: the proxy answered with version \(received[0]), not 5")
                }
                let method = received[1]
                received.removeFirst(2)
                switch method {
                case 0:
                    guard let request = request() else { return .failed("SOCKS5: host name longer than 255 bytes") }
                    toSend += request
                    state = .awaitingReply
                case 2:
                    guard let (username, password) = credentials else {
                        return .failed("SOCKS5: the proxy requires a username and password; none are configured")
                    }
                    guard !username.isEmpty, username.count <= 255, password.count <= 255 else {
                        return .failed("SOCKS5: username and password must be 1-255 and 0-255 bytes")
                    }
                    toSend += [1, UInt8(username.count)] + username + [UInt8(password.count)] + password
                    state = .awaitingAuthentication
                case 0xFF:
                    return .failed(
                        credentials == nil
                            ? "SOCKS5: the proxy accepts none of our methods (does it need a username and password?)"
                            : "SOCKS5: the proxy accepts none of our methods (no authentication, username/password)")
                default:
                    return .failed("SOCKS5: the proxy chose method \(method), which we did not offer")
                }
            case .awaitingAuthentication:
                guard received.count >= 2 else { return .send(toSend) }
                // RFC 1929 says version 1; some servers answer 5. Only the status counts.
                let status = received[1]
                received.removeFirst(2)
                guard status == 0 else {
                    return .failed("SOCKS5: the proxy rejected the username or password (status \(status))")
                }
                guard let request = request() else { return .failed("SOCKS5: host name longer than 255 bytes") }
                toSend += request
                state = .awaitingReply
            case .awaitingReply:
                guard received.count >= 4 else { return .send(toSend) }
                guard received[0] == 5 else {
                    return .failed("SOCKS5: the proxy answered with version \(received[0]), not 5")
                }
                let reply = received[1]
                guard reply == 0 else { return .failed("SOCKS5: \(Self.describe(reply: reply))") }
                let address = received.withUnsafeBytes {
                    SOCKSAddress.decode(UnsafeRawBufferPointer(rebasing: $0[3...]))
                }
                switch address {
                case .incomplete:
                    return .send(toSend)
                case .invalid(let reason):
                    return .failed("SOCKS5: bad bound address in the reply: \(reason)")
                case .complete(let bound, let length):
                    boundEndpoint = bound
                    state = .done
                    let leftover = Array(received[(3 + length)...])
                    received = []
                    return .established(leftover: leftover)
                }
            }
        }
    }

    private func request() -> [UInt8]? {
        var out: [UInt8] = [5, command.rawValue, 0]
        guard SOCKSAddress.encode(target, into: &out) else { return nil }
        return out
    }

    /// The reply field of RFC 1928 section 6, for the log.
    public static func describe(reply: UInt8) -> String {
        switch reply {
        case 1: "general SOCKS server failure (1)"
        case 2: "connection not allowed by ruleset (2)"
        case 3: "network unreachable (3)"
        case 4: "host unreachable (4)"
        case 5: "connection refused (5)"
        case 6: "TTL expired (6)"
        case 7: "command not supported (7)"
        case 8: "address type not supported (8)"
        default: "unknown reply \(reply)"
        }
    }
}
