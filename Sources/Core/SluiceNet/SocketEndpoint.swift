/// A host and port, as in `1.2.3.4:53`, `[::1]:53` or (where the caller allows names) `dns.example:853`.
///
/// IPv6 hosts must be bracketed so the port is unambiguous. Host names are validated as DNS names
/// (labels of letters, digits, `-` and `_`, 1...63 bytes each, 253 bytes in all) and are never resolved here.
public struct SocketEndpoint: Hashable, Sendable {
    /// The host part of an endpoint: a literal address or a name to be resolved later.
    public enum Host: Hashable, Sendable, CustomStringConvertible {
        case address(IPAddress)
        case name(String)

        public var description: String {
            switch self {
            case .address(let address): return address.description
            case .name(let name): return name
            }
        }
    }

    public var host: Host
    public var port: UInt16

    public init(host: Host, port: UInt16) {
        self.host = host
        self.port = port
    }

    public init(address: IPAddress, port: UInt16) {
        self.init(host: .address(address), port: port)
    }

    /// Parses `HOST:PORT` with an IP-literal host only.
    public init?(_ text: some StringProtocol) {
        guard let value = Self.parse(text) else { return nil }
        self = value
    }

    /// Parses `HOST:PORT`, `[V6]:PORT`, and when `defaultPort` is given also `HOST`, `[V6]` and a bare IPv6 address.
    ///
    /// - Parameters:
    ///   - allowingHostNames: accept a DNS name as the host; otherwise only IP literals.
    ///   - defaultPort: the port to use when the text has none; nil means a port is required.
    /// Port 0 is rejected: an endpoint names something to connect to or listen on explicitly.
    public static func parse(
        _ text: some StringProtocol,
        allowingHostNames: Bool = false,
        defaultPort: UInt16? = nil
    ) -> SocketEndpoint? {
        let text = Substring(text)
        var hostText: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            hostText = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.first == ":" else { return nil }
                portText = rest.dropFirst()
            }
            guard case .some(.v6) = IPAddress(hostText) else { return nil }
        } else {
            let colons = text.reduce(0) { $0 + ($1 == ":" ? 1 : 0) }
            if colons > 1 {
                // Unbracketed IPv6 cannot carry a port; accept it only as a host with the default port.
                guard defaultPort != nil else { return nil }
                hostText = text
            } else if colons == 1, let colon = text.firstIndex(of: ":") {
                hostText = text[..<colon]
                portText = text[text.index(after: colon)...]
            } else {
                hostText = text
            }
        }
        let port: UInt16
        if let portText {
            guard let value = parsePort(portText), value != 0 else { return nil }
            port = value
        } else {
            guard let defaultPort else { return nil }
            port = defaultPort
        }
        if let address = IPAddress(hostText) {
            return SocketEndpoint(address: address, port: port)
        }
        guard allowingHostNames, isValidHostName(hostText) else { return nil }
        return SocketEndpoint(host: .name(String(hostText).lowercased()), port: port)
    }

    /// Parses a decimal port 0...65535 without sign or leading zeros.
    public static func parsePort(_ text: some StringProtocol) -> UInt16? {
        guard !text.isEmpty, text.count <= 5, text == "0" || text.first != "0",
            text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let value = Int(text), value <= 65535
        else { return nil }
        return UInt16(value)
    }

    /// Whether `text` is a syntactically valid DNS host name (not an IP literal, not all-numeric).
    public static func isValidHostName(_ text: some StringProtocol) -> Bool {
        var name = Substring(text)
        if name.hasSuffix(".") { name = name.dropLast() }
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        var allNumeric = true
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63, label.first != "-", label.last != "-" else { return false }
            for byte in label.utf8 {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "-"), UInt8(ascii: "_"):
                    allNumeric = false
                case UInt8(ascii: "0")...UInt8(ascii: "9"):
                    break
                default:
                    return false
                }
            }
        }
        // "1.2.3" and "256.0.0.1" are broken addresses, not names.
        return !allNumeric
    }
}

extension SocketEndpoint: CustomStringConvertible, LosslessStringConvertible {
    /// `HOST:PORT`, with IPv6 hosts bracketed.
    public var description: String {
        if case .address(.v6(let v6)) = host { return "[\(v6)]:\(port)" }
        return "\(host):\(port)"
    }
}

extension SocketEndpoint: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = SocketEndpoint.parse(text, allowingHostNames: true) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "invalid endpoint \"\(text)\"")
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
