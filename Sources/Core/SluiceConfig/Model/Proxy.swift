import SluiceNet

/// One outbound from `proxies:` that sluice implements.
public struct Proxy: Sendable, Equatable, Codable {
    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }

    /// The protocol of a proxy and its settings.
    public enum Kind: Sendable, Equatable, Codable {
        case direct(DirectProxy)
        case reject
        case socks5(SOCKS5Proxy)
        case http(HTTPProxy)
        case shadowsocks(ShadowsocksProxy)
    }

    /// Names that refer to built-in outbounds and may not be used for proxies or groups.
    public static let reservedNames: Set<String> = Set([BuiltinTarget.direct, .reject, .rejectDrop, .pass].map(\.rawValue))
}

/// Socket options every dialing proxy shares: which interface and fwmark its connections use.
public struct DialOptions: Sendable, Equatable, Codable {
    /// Bind outbound sockets to this interface (SO_BINDTODEVICE), e.g. `wg0` to send traffic through WireGuard.
    public var interfaceName: String?
    /// Put this fwmark on outbound sockets (SO_MARK); nil means the global `routing-mark`.
    public var routingMark: UInt32?

    public init(interfaceName: String? = nil, routingMark: UInt32? = nil) {
        self.interfaceName = interfaceName
        self.routingMark = routingMark
    }
}

/// A `type: direct` proxy: connect straight to the destination, optionally through a chosen interface.
public struct DirectProxy: Sendable, Equatable, Codable {
    /// Which address families a direct dial may use.
    public enum IPVersion: String, Sendable, Equatable, Codable {
        case ipv4, ipv6, dual
        case ipv4Prefer = "ipv4-prefer"
        case ipv6Prefer = "ipv6-prefer"
    }

    public var dial = DialOptions()
    public var ipVersion: IPVersion = .dual
    public var udp = true

    public init() {}
}

/// A `type: socks5` proxy.
public struct SOCKS5Proxy: Sendable, Equatable, Codable {
    public var server: SocketEndpoint
    public var username: String?
    public var password: String?
    public var udp = false
    public var tls = false
    public var skipCertVerify = false
    public var dial = DialOptions()

    public init(server: SocketEndpoint) {
        self.server = server
    }
}

/// A `type: http` proxy (HTTP CONNECT).
public struct HTTPProxy: Sendable, Equatable, Codable {
    /// One extra request header, kept in file order.
    public struct Header: Sendable, Equatable, Codable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public var server: SocketEndpoint
    public var username: String?
    public var password: String?
    public var tls = false
    public var sni: String?
    public var skipCertVerify = false
    public var headers: [Header] = []
    public var dial = DialOptions()

    public init(server: SocketEndpoint) {
        self.server = server
    }
}

/// A `type: ss` Shadowsocks AEAD proxy.
public struct ShadowsocksProxy: Sendable, Equatable, Codable {
    /// The AEAD ciphers sluice implements.
    public enum Cipher: String, Sendable, Equatable, Codable, CaseIterable {
        case aes128GCM = "aes-128-gcm"
        case aes256GCM = "aes-256-gcm"
        case chacha20IETFPoly1305 = "chacha20-ietf-poly1305"
    }

    public var server: SocketEndpoint
    public var cipher: Cipher
    public var password: String
    public var udp = false
    public var dial = DialOptions()

    public init(server: SocketEndpoint, cipher: Cipher, password: String) {
        self.server = server
        self.cipher = cipher
        self.password = password
    }
}
