import SluiceNet

/// Collects diagnostics while one configuration file is decoded and holds the scalar decoders.
///
/// Decoders never stop at the first problem: each one reports what it found and returns nil, and the caller
/// keeps the default, so a single pass reports every error and warning in the file. Public because proxy
/// protocols decode their own settings with it (``ProxyCatalog``), in the loader and again in the tun worker.
public final class DecodingContext {
    public internal(set) var diagnostics: [ConfigDiagnostic] = []

    public init() {}

    public func error(_ mark: SourceMark, _ path: String, _ message: String) {
        diagnostics.append(ConfigDiagnostic(.error, at: mark, keyPath: path, message))
    }

    public func warning(_ mark: SourceMark, _ path: String, _ message: String) {
        diagnostics.append(ConfigDiagnostic(.warning, at: mark, keyPath: path, message))
    }

    /// A short, quoted rendering of what the user wrote, for "got ..." in messages.
    public static func got(_ node: YAMLNode) -> String {
        guard let scalar = node.scalar else { return node.kindName }
        if scalar.isNull { return "null" }
        return quote(scalar.value)
    }

    /// Quotes text for a message, escaping control characters and shortening long values.
    public static func quote(_ text: String) -> String {
        var out = "\""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == 60 {
                out += "..."
                break
            }
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
            count += 1
        }
        return out + "\""
    }

    // MARK: Scalars

    /// The scalar text of `node`, or an error naming `expected` when it is a list or mapping.
    public func scalarText(_ node: YAMLNode, _ path: String, expected: String) -> String? {
        guard let scalar = node.scalar, !scalar.isNull else {
            error(node.mark, path, "expected \(expected), got \(Self.got(node))")
            return nil
        }
        return scalar.value
    }

    /// Any scalar as text, as Go's yaml.v3 does for string fields (`password: 12345` is "12345").
    public func string(_ node: YAMLNode, _ path: String, allowEmpty: Bool = false) -> String? {
        guard let text = scalarText(node, path, expected: "a string") else { return nil }
        if !allowEmpty && text.isEmpty {
            error(node.mark, path, "expected a non-empty string")
            return nil
        }
        return text
    }

    /// true/false in any case, and YAML 1.1's yes/no/on/off, which mihomo configs still use.
    public func bool(_ node: YAMLNode, _ path: String) -> Bool? {
        let expected = "a boolean (true or false)"
        guard let text = scalarText(node, path, expected: expected) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on", "y": return true
        case "false", "no", "off", "n": return false
        default:
            error(node.mark, path, "expected \(expected), got \(Self.got(node))")
            return nil
        }
    }

    /// Parses an integer: decimal, `0x`, `0o` or `0b`, with an optional sign (yaml.v3's int forms).
    public static func parseInteger(_ text: String) -> Int? {
        var body = Substring(text)
        var negative = false
        if body.hasPrefix("+") || body.hasPrefix("-") {
            negative = body.hasPrefix("-")
            body = body.dropFirst()
        }
        var radix = 10
        let lower = body.lowercased()
        if lower.hasPrefix("0x") {
            radix = 16
        } else if lower.hasPrefix("0o") {
            radix = 8
        } else if lower.hasPrefix("0b") {
            radix = 2
        }
        if radix != 10 { body = body.dropFirst(2) }
        guard !body.isEmpty, body.allSatisfy({ $0.isASCII && $0.isHexDigit }),
            let magnitude = Int(body, radix: radix)
        else { return nil }
        return negative ? -magnitude : magnitude
    }

    public func int(_ node: YAMLNode, _ path: String, _ range: ClosedRange<Int>) -> Int? {
        let expected = "an integer \(range.lowerBound)...\(range.upperBound)"
        guard let text = scalarText(node, path, expected: expected) else { return nil }
        guard let value = Self.parseInteger(text), range.contains(value) else {
            error(node.mark, path, "expected \(expected), got \(Self.got(node))")
            return nil
        }
        return value
    }

    public func uint32(_ node: YAMLNode, _ path: String) -> UInt32? {
        int(node, path, 0...Int(UInt32.max)).map { UInt32($0) }
    }

    public func port(_ node: YAMLNode, _ path: String) -> UInt16? {
        int(node, path, 1...65535).map { UInt16($0) }
    }

    /// One of a fixed set of spellings (case-sensitive, as mihomo's are).
    public func choice<T: RawRepresentable<String>>(_ node: YAMLNode, _ path: String, _ options: [T]) -> T? {
        let list = options.map(\.rawValue).joined(separator: ", ")
        guard let text = scalarText(node, path, expected: "one of \(list)") else { return nil }
        guard let value = options.first(where: { $0.rawValue == text }) else {
            error(node.mark, path, "expected one of \(list); got \(Self.got(node))")
            return nil
        }
        return value
    }

    /// A sluice duration: `100ms`, `1s`, `1.5s`, `2m`, `1h`, combinations such as `1m30s`, or a bare integer
    /// meaning seconds.
    public static func parseDuration(_ text: String) -> Duration? {
        if let seconds = parseInteger(text), !text.hasPrefix("0x"), !text.hasPrefix("0o"), !text.hasPrefix("0b") {
            guard seconds >= 0, seconds <= 10_000_000 else { return nil }
            return .seconds(seconds)
        }
        var total = 0.0
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, number.filter({ $0 == "." }).count <= 1, number.first != ".",
                number.last != ".", let value = Double(number)
            else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { $0.isASCII && $0.isLetter }
            rest = rest.dropFirst(unit.count)
            switch unit {
            case "ms": total += value / 1000
            case "s": total += value
            case "m": total += value * 60
            case "h": total += value * 3600
            default: return nil
            }
        }
        guard total <= 10_000_000 else { return nil }
        return .nanoseconds(Int64((total * 1e9).rounded()))
    }

    public func duration(_ node: YAMLNode, _ path: String, minimum: Duration = .zero) -> Duration? {
        let expected = "a duration such as 100ms, 1.5s, 2m or a number of seconds"
        guard let text = scalarText(node, path, expected: expected) else { return nil }
        guard let value = Self.parseDuration(text) else {
            error(node.mark, path, "expected \(expected), got \(Self.got(node))")
            return nil
        }
        guard value >= minimum else {
            error(node.mark, path, "expected a duration of at least \(Self.render(minimum)), got \(Self.got(node))")
            return nil
        }
        return value
    }

    /// Renders a duration the way a user would write it (`100ms`, `1.5s`).
    public static func render(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        return "\(Double(milliseconds) / 1000)s"
    }

    public func prefix(_ node: YAMLNode, _ path: String) -> IPPrefix? {
        let expected = "an IP prefix such as 10.0.0.0/8 or fd00::/8"
        guard let text = scalarText(node, path, expected: expected) else { return nil }
        guard let value = IPPrefix(text) else {
            error(node.mark, path, "expected \(expected), got \(Self.got(node))")
            return nil
        }
        return value
    }

    public func address(_ node: YAMLNode, _ path: String) -> IPAddress? {
        let expected = "an IP address"
        guard let text = scalarText(node, path, expected: expected) else { return nil }
        guard let value = IPAddress(text) else {
            error(node.mark, path, "expected \(expected), got \(Self.got(node))")
            return nil
        }
        return value
    }

    /// A `HOST:PORT` endpoint; host names only where `allowingHostNames`.
    public func endpoint(_ node: YAMLNode, _ path: String, allowingHostNames: Bool) -> SocketEndpoint? {
        let expected =
            allowingHostNames
            ? "HOST:PORT (e.g. 1.2.3.4:53, [::1]:53, vpn.example:51820)"
            : "IP:PORT (e.g. 0.0.0.0:1053 or [::1]:53)"
        guard let text = scalarText(node, path, expected: expected) else { return nil }
        guard let value = SocketEndpoint.parse(text, allowingHostNames: allowingHostNames) else {
            error(node.mark, path, "expected \(expected), got \(Self.got(node))")
            return nil
        }
        return value
    }

    /// A Linux interface name: 1...15 bytes (IFNAMSIZ - 1), no '/', no whitespace, not "." or "..".
    public func interfaceName(_ node: YAMLNode, _ path: String) -> String? {
        guard let text = scalarText(node, path, expected: "an interface name") else { return nil }
        if Self.isValidInterfaceName(text) { return text }
        error(
            node.mark, path,
            "expected an interface name of 1-15 characters without '/' or spaces, got "
                + Self.got(node))
        return nil
    }

    public static func isValidInterfaceName(_ text: String) -> Bool {
        let bytes = text.utf8
        return !bytes.isEmpty && bytes.count <= 15 && text != "." && text != ".."
            && !bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7F }
            )
    }

    // MARK: Collections

    /// The items of a list; a single scalar counts as a one-item list when `allowSingle` (mihomo accepts both
    /// forms for many address keys).
    public func items(_ node: YAMLNode, _ path: String, allowSingle: Bool = false) -> [YAMLNode]? {
        switch node.content {
        case .sequence(let items):
            return items
        case .scalar(let scalar) where allowSingle && !scalar.isNull:
            return [node]
        default:
            error(node.mark, path, "expected a list, got \(Self.got(node))")
            return nil
        }
    }

    /// Decodes every item of a list, reporting each bad item; returns the good ones.
    public func list<T>(
        _ node: YAMLNode, _ path: String, allowSingle: Bool = false,
        _ decode: (YAMLNode, String) -> T?
    ) -> [T]? {
        guard let items = items(node, path, allowSingle: allowSingle) else { return nil }
        var result: [T] = []
        for (index, item) in items.enumerated() {
            // A single scalar keeps the key's own path; list items get an index.
            let itemPath = node.scalar == nil ? "\(path)[\(index)]" : path
            if let value = decode(item, itemPath) { result.append(value) }
        }
        return result
    }

    public func mapping(_ node: YAMLNode, _ path: String) -> MappingReader? {
        guard case .mapping(let pairs) = node.content else {
            error(node.mark, path, "expected a mapping of keys to values, got \(Self.got(node))")
            return nil
        }
        return MappingReader(context: self, node: node, path: path, pairs: pairs)
    }
}

extension String {
    /// Appends a key to a diagnostic key path (`tun` + `mtu` is `tun.mtu`).
    public func key(_ name: String) -> String {
        isEmpty ? name : "\(self).\(name)"
    }

    /// Appends a list index to a diagnostic key path (`proxies` + 2 is `proxies[2]`).
    func index(_ index: Int) -> String {
        "\(self)[\(index)]"
    }
}

/// Reads a YAML mapping key by key, remembering which keys were used so that the rest can be reported.
public final class MappingReader {
    public let context: DecodingContext
    public let node: YAMLNode
    /// The key path of this mapping; callers may refine it once they know a name (`wireguard[0](wg0)`).
    public var path: String
    public let pairs: [YAMLNode.Pair]
    private var used: Set<String> = []

    public init(context: DecodingContext, node: YAMLNode, path: String, pairs: [YAMLNode.Pair]) {
        self.context = context
        self.node = node
        self.path = path
        self.pairs = pairs
    }

    public var mark: SourceMark {
        node.mark
    }

    public func has(_ key: String) -> Bool {
        pairs.contains { $0.key.scalar?.value == key }
    }

    /// The pair for `key` (marking it used), including null values.
    public func pair(_ key: String) -> YAMLNode.Pair? {
        guard let pair = pairs.first(where: { $0.key.scalar?.value == key }) else { return nil }
        used.insert(key)
        return pair
    }

    /// The value for `key`, or nil when absent or null (null means "use the default").
    public func value(_ key: String) -> YAMLNode? {
        guard let pair = pair(key), !pair.value.isNull else { return nil }
        return pair.value
    }

    /// Decodes `key` with `decode` and returns the result; nil when absent, null or invalid.
    public func decode<T>(_ key: String, _ decode: (YAMLNode, String) -> T?) -> T? {
        guard let node = value(key) else { return nil }
        return decode(node, path.key(key))
    }

    /// Decodes `key` into `target` when present and valid; otherwise leaves the default.
    public func decode<T>(_ key: String, into target: inout T, _ decode: (YAMLNode, String) -> T?) {
        if let value = self.decode(key, decode) { target = value }
    }

    /// Decodes `key` into an optional `target`.
    public func decode<T>(_ key: String, intoOptional target: inout T?, _ decode: (YAMLNode, String) -> T?) {
        if let value = self.decode(key, decode) { target = value }
    }

    public func bool(_ key: String, into target: inout Bool) {
        decode(key, into: &target, context.bool)
    }

    public func string(_ key: String, into target: inout String) {
        decode(key, into: &target) { self.context.string($0, $1) }
    }

    public func string(_ key: String, into target: inout String?) {
        decode(key, intoOptional: &target) { self.context.string($0, $1) }
    }

    public func int(_ key: String, _ range: ClosedRange<Int>, into target: inout Int) {
        decode(key, into: &target) { self.context.int($0, $1, range) }
    }

    public func int(_ key: String, _ range: ClosedRange<Int>, into target: inout Int?) {
        decode(key, intoOptional: &target) { self.context.int($0, $1, range) }
    }

    public func duration(_ key: String, minimum: Duration = .zero, into target: inout Duration) {
        decode(key, into: &target) { self.context.duration($0, $1, minimum: minimum) }
    }

    /// Marks keys as known without decoding them (accepted silently).
    public func accept(_ keys: String...) {
        for key in keys where has(key) { used.insert(key) }
    }

    /// Warns about `keys` that are present: sluice knows them but ignores them.
    public func ignore(_ keys: [String], because reason: String = "not supported by sluice; ignored") {
        for key in keys {
            guard let pair = pairs.first(where: { $0.key.scalar?.value == key }), !used.contains(key) else { continue }
            used.insert(key)
            context.warning(pair.key.mark, path.key(key), reason)
        }
    }

    /// Warns about every key that nothing asked for.
    public func finish() {
        for pair in pairs {
            let name = pair.key.scalar?.value ?? ""
            if used.contains(name) { continue }
            context.warning(pair.key.mark, path.key(name), "unknown key; ignored (check the spelling)")
        }
    }
}
