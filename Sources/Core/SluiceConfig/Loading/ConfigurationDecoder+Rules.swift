import SluiceNet

/// The rule providers that loaded, and the names of those left out (rules using them are skipped).
struct RuleProviderTable {
    var loaded: [RuleProvider] = []
    /// Every provider that is defined: loaded, or with errors (the configuration fails on those anyway).
    var names: Set<String> = []
    var leftOut: Set<String> = []
    /// Set while parsing the entries of a classical provider, where RULE-SET cannot appear.
    var insideProvider = false
}

/// What the options of a logical rule's parts (`AND,((IP-CIDR,10.0.0.0/8,no-resolve),(DST-PORT,22)),…`) add up to.
///
/// mihomo gives each part its own `no-resolve`; a rule resolves the domain when any of its IP parts lacks it, and
/// once resolved every part sees the address. So the rule as a whole is `no-resolve` exactly when every part
/// that tests the destination address (IP-CIDR, IP-CIDR6, IP-SUFFIX, GEOIP, IP-ASN, RULE-SET) says so.
struct LogicalPartOptions {
    /// Destination-address parts with `no-resolve`.
    var noResolveParts = 0
    /// Destination-address parts without it.
    var resolvingParts = 0
    /// Options sluice does not know, which mihomo ignores; each gets a warning.
    var unknown: [String] = []
    /// The rule's target was left out (an unsupported proxy): the rule is kept and rejects what it matches.
    var leftOutTarget: String?

    var ruleIsNoResolve: Bool { noResolveParts > 0 && resolvingParts == 0 }

    static let destinationAddressTypes: Set<String> = [
        "IP-CIDR", "IP-CIDR6", "IP-SUFFIX", "GEOIP", "IP-ASN", "RULE-SET",
    ]
}

/// Where a rule is being decoded, for SUB-RULE: the names `sub-rules:` defines, and whether the rule is in one of
/// those sets (there mihomo refuses a SUB-RULE that names no set; in `rules` it accepts one naming a proxy).
struct SubRuleScope {
    var names: Set<String> = []
    var insideSubRules = false
}

/// A decoded rule and where it was written, for diagnostics that come after decoding (sub-rule cycles).
struct LocatedRule {
    var rule: Rule
    var mark: SourceMark
    var path: String
}

/// Why a rule (or a part of a logical rule) could not be used.
enum RuleProblem: Error {
    /// The rule is wrong: an error.
    case invalid(String)
    /// The rule is valid mihomo but sluice skips it: a warning.
    case skipped(String)
}

extension ConfigurationDecoder {
    /// The inbound types mihomo's `C.ParseType` knows (IN-TYPE), of which sluice's connections are `TUN`, `SOCKS4`,
    /// `SOCKS5`, `HTTP` and `HTTPS` (an HTTP CONNECT).
    static let inboundTypes: Set<String> = [
        "HTTP", "HTTPS", "SOCKS4", "SOCKS5", "SHADOWSOCKS", "VMESS", "VLESS", "REDIR", "TPROXY", "TROJAN", "TUNNEL",
        "TUN", "TUIC", "HYSTERIA2", "ANYTLS", "INNER",
    ]

    /// Rule types that mihomo has and sluice does not; such rules are skipped with a warning.
    static let unsupportedRuleTypes: Set<String> = [
        "GEOIP", "GEOSITE", "IP-ASN", "SRC-GEOIP", "SRC-IP-ASN", "SRC-IP-SUFFIX", "PROCESS-NAME-REGEX",
        "PROCESS-PATH-REGEX", "PROCESS-NAME-WILDCARD", "PROCESS-PATH-WILDCARD", "DOMAIN-WILDCARD", "DSCP",
        "SCRIPT", "USER-AGENT", "URL-REGEX",
    ]

    /// How deeply logical rules may nest; deeper text is refused instead of recursing without bound.
    static let maximumRuleNesting = 32

    /// Decodes a list of rules (`rules`, or one set of `sub-rules`). A SUB-RULE comes back with an empty set; the
    /// caller fills it in (``expandSubRules(_:sets:)``) once every set is decoded.
    func decodeRules(
        _ node: YAMLNode, _ path: String, names: NameTable, providers: RuleProviderTable,
        subRules: SubRuleScope = SubRuleScope()
    ) -> [LocatedRule] {
        guard let items = context.items(node, path) else { return [] }
        var rules: [LocatedRule] = []
        for (index, item) in items.enumerated() {
            let itemPath = path.index(index)
            guard let text = context.string(item, itemPath) else { continue }
            do throws(RuleProblem) {
                var partOptions = LogicalPartOptions()
                if let rule = try parseRule(
                    text, names: names, providers: providers, subRules: subRules, partOptions: &partOptions)
                {
                    rules.append(LocatedRule(rule: rule, mark: item.mark, path: itemPath))
                }
                if let leftOut = partOptions.leftOutTarget {
                    context.warning(
                        item.mark, itemPath,
                        "target \"\(leftOut)\" was left out; this rule rejects what it matches (sluice fails closed: never DIRECT in its place)"
                    )
                }
                for option in partOptions.unknown {
                    context.warning(
                        item.mark, itemPath,
                        "unknown option \(DecodingContext.quote(option)) in a part of a logical rule; ignored (as mihomo does)"
                    )
                }
            } catch {
                switch error {
                case .invalid(let message): context.error(item.mark, itemPath, message)
                case .skipped(let message): context.warning(item.mark, itemPath, message)
                }
            }
        }
        return rules
    }

    /// Parses `TYPE,PAYLOAD,TARGET[,OPTION...]`, `MATCH,TARGET` or `SUB-RULE,(CONDITION),NAME`. Returns nil for a
    /// rule skipped silently.
    func parseRule(
        _ text: String, names: NameTable, providers: RuleProviderTable, subRules: SubRuleScope = SubRuleScope(),
        partOptions: inout LogicalPartOptions
    ) throws(RuleProblem) -> Rule? {
        // Only logical rules and SUB-RULE have structure in their payload; the others split on every comma, as in
        // mihomo, so that a DOMAIN-REGEX with an unbalanced '(' is judged by the regex compiler, not the splitter.
        let leading = text.prefix { $0 != "," }.trimmingSpaces.uppercased()
        let fields =
            ["AND", "OR", "NOT", "SUB-RULE"].contains(leading)
            ? try Self.splitTopLevel(Substring(text))
            : text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        guard let typeField = fields.first, !typeField.isEmpty else {
            throw .invalid("expected TYPE,PAYLOAD,TARGET, got \(DecodingContext.quote(text))")
        }
        let type = typeField.uppercased()
        if type == "SUB-RULE" {
            return try parseSubRule(
                text, fields, names: names, providers: providers, subRules: subRules, partOptions: &partOptions)
        }
        let condition: RuleCondition
        var target: String
        var options: ArraySlice<String> = []
        if type == "MATCH" || type == "FINAL" {
            guard fields.count == 2 else { throw .invalid("expected MATCH,TARGET, got \(DecodingContext.quote(text))") }
            condition = .match
            target = fields[1]
        } else {
            guard fields.count >= 3 else {
                throw .invalid("expected TYPE,PAYLOAD,TARGET, got \(DecodingContext.quote(text))")
            }
            condition = try parseCondition(
                type: type, payload: fields[1], providers: providers, depth: 0, partOptions: &partOptions)
            target = fields[2]
            options = fields[3...]
        }
        switch names.resolve(target) {
        case .builtIn where target == BuiltinTarget.pass.rawValue:
            throw .skipped("target PASS is not supported by sluice (it only continues matching); rule skipped")
        case .builtIn, .proxy, .group:
            break
        case .leftOut:
            // Skipping the rule would let what it matches fall through to later rules, often MATCH,DIRECT: traffic
            // meant for a proxy would leave in the clear. It rejects instead.
            partOptions.leftOutTarget = target
            target = BuiltinTarget.reject.rawValue
        case .unknown:
            throw .invalid(
                "no proxy or group named \"\(target)\"; the target must be a proxy, a group, DIRECT, "
                    + "REJECT or REJECT-DROP")
        }
        var rule = Rule(condition: condition, target: target)
        if partOptions.ruleIsNoResolve { rule.noResolve = true }
        for option in options {
            switch option.lowercased() {
            case "no-resolve": rule.noResolve = true
            case "src": rule.matchSource = true
            default: throw .invalid("unknown rule option \(DecodingContext.quote(option)); expected no-resolve or src")
            }
        }
        return rule
    }

    /// Splits on commas that are not inside parentheses, trimming spaces; unbalanced parentheses are an error.
    static func splitTopLevel(_ text: Substring) throws(RuleProblem) -> [String] {
        var fields: [String] = []
        var depth = 0
        var start = text.startIndex
        var index = text.startIndex
        while index < text.endIndex {
            switch text[index] {
            case "(":
                depth += 1
                if depth > maximumRuleNesting { throw .invalid("logical rules nest too deeply") }
            case ")":
                depth -= 1
                if depth < 0 { throw .invalid("unbalanced parentheses: an extra ')'") }
            case "," where depth == 0:
                fields.append(text[start..<index].trimmingSpaces)
                start = text.index(after: index)
            default:
                break
            }
            index = text.index(after: index)
        }
        if depth != 0 { throw .invalid("unbalanced parentheses: a '(' is never closed") }
        fields.append(text[start...].trimmingSpaces)
        return fields
    }

    func parseCondition(
        type: String, payload: String, providers: RuleProviderTable, depth: Int
    ) throws(RuleProblem) -> RuleCondition {
        var partOptions = LogicalPartOptions()
        return try parseCondition(
            type: type, payload: payload, providers: providers, depth: depth, partOptions: &partOptions)
    }

    /// Parses one condition; the options of logical rules' parts are added up in `partOptions`.
    func parseCondition(
        type: String, payload: String, providers: RuleProviderTable, depth: Int,
        partOptions: inout LogicalPartOptions
    ) throws(RuleProblem) -> RuleCondition {
        func nonEmpty() throws(RuleProblem) -> String {
            if payload.isEmpty { throw .invalid("\(type) needs a payload") }
            return payload
        }
        func prefix() throws(RuleProblem) -> IPPrefix {
            guard let prefix = IPPrefix(payload) else {
                throw .invalid(
                    "\(type): expected an IP prefix such as 10.0.0.0/8, got \(DecodingContext.quote(payload))")
            }
            return prefix
        }
        switch type {
        case "DOMAIN":
            return .domain(try Self.domainPayload(type, payload))
        case "DOMAIN-SUFFIX":
            return .domainSuffix(try Self.domainPayload(type, payload))
        case "DOMAIN-KEYWORD":
            return .domainKeyword(try nonEmpty().lowercased())
        case "DOMAIN-REGEX":
            let pattern = try nonEmpty()
            do {
                _ = try Regex(pattern)
            } catch {
                throw .invalid("DOMAIN-REGEX: not a valid regular expression: \(DecodingContext.quote(pattern))")
            }
            return .domainRegex(pattern)
        case "IP-CIDR", "IP-CIDR6":
            return .ipCIDR(try prefix())
        case "IP-SUFFIX":
            return .ipSuffix(try prefix())
        case "SRC-IP-CIDR":
            return .sourceIPCIDR(try prefix())
        case "SRC-PORT":
            return .sourcePort(try Self.portRanges(type, payload))
        case "DST-PORT":
            return .destinationPort(try Self.portRanges(type, payload))
        case "IN-PORT":
            return .inboundPort(try Self.portRanges(type, payload))
        case "IN-TYPE":
            // mihomo's rules/common/in_type.go: "/"-separated, any case; SOCKS means SOCKS4 and SOCKS5.
            var types: [String] = []
            for part in payload.split(separator: "/", omittingEmptySubsequences: false) {
                let name = part.trimmingCharacters(in: .whitespaces).uppercased()
                if name == "SOCKS" {
                    types += ["SOCKS4", "SOCKS5"]
                } else if Self.inboundTypes.contains(name) {
                    types.append(name)
                } else {
                    throw .invalid(
                        "IN-TYPE: unknown type \(DecodingContext.quote(String(part))) (mihomo's: \(Self.inboundTypes.sorted().joined(separator: ", ")), SOCKS)"
                    )
                }
            }
            return .inboundType(types)
        case "IN-USER", "IN-NAME":
            let names = payload.split(separator: "/", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard !names.contains(where: \.isEmpty) else {
                throw .invalid("\(type): an empty name in \(DecodingContext.quote(payload))")
            }
            return type == "IN-USER" ? .inboundUser(names) : .inboundName(names)
        case "NETWORK":
            guard let network = RuleCondition.Network(rawValue: payload.lowercased()) else {
                throw .invalid("NETWORK: expected tcp or udp, got \(DecodingContext.quote(payload))")
            }
            return .network(network)
        case "PROCESS-NAME":
            return .processName(try nonEmpty())
        case "PROCESS-PATH":
            return .processPath(try nonEmpty())
        case "UID":
            let ranges = try Self.ranges(type, payload, limit: UInt32.max)
            return .uid(ranges.map { UIDRange(UInt32($0.lowerBound), UInt32($0.upperBound)) })
        case "RULE-SET":
            if providers.insideProvider { throw .invalid("RULE-SET cannot be used inside a rule provider") }
            let name = try nonEmpty()
            if providers.leftOut.contains(name) {
                throw .skipped("rule provider \"\(name)\" was left out; rule skipped")
            }
            guard providers.names.contains(name) else {
                throw .invalid("RULE-SET: no rule provider named \"\(name)\"; define it under rule-providers")
            }
            return .ruleSet(name)
        case "AND", "OR", "NOT":
            guard depth < Self.maximumRuleNesting else { throw .invalid("logical rules nest too deeply") }
            let conditions = try parseParts(
                type, try Self.parenthesised(type, payload), providers: providers, depth: depth,
                partOptions: &partOptions)
            switch type {
            case "NOT":
                guard conditions.count == 1 else {
                    throw .invalid("NOT takes exactly one condition, got \(conditions.count)")
                }
                return .not(conditions[0])
            case "AND":
                guard conditions.count >= 2 else { throw .invalid("AND needs at least two conditions") }
                return .and(conditions)
            default:
                guard conditions.count >= 2 else { throw .invalid("OR needs at least two conditions") }
                return .or(conditions)
            }
        case "MATCH", "FINAL":
            throw .invalid("MATCH has no payload and cannot be used inside a logical rule")
        case "SUB-RULE":
            // mihomo refuses it in a logical rule ("unsupported rule type [SUB-RULE] on logic rule").
            if providers.insideProvider {
                throw .skipped("SUB-RULE only works in rules and sub-rules, not in a rule provider; entry skipped")
            }
            throw .invalid("SUB-RULE cannot be used inside a logical rule; write it as a rule of its own")
        default:
            if Self.unsupportedRuleTypes.contains(type) {
                throw .skipped("rule type \(type) is not supported by sluice; rule skipped")
            }
            throw .invalid("unknown rule type \(DecodingContext.quote(type))")
        }
    }

    /// Parses the parts of a logical rule or the condition of a SUB-RULE (each `TYPE,PAYLOAD[,OPTION...]`); the
    /// options of the parts are added up in `partOptions`.
    func parseParts(
        _ type: String, _ parts: [String], providers: RuleProviderTable, depth: Int,
        partOptions: inout LogicalPartOptions
    ) throws(RuleProblem) -> [RuleCondition] {
        var conditions: [RuleCondition] = []
        for part in parts {
            let fields = try Self.splitTopLevel(Substring(part))
            guard fields.count >= 2, !fields[0].isEmpty else {
                throw .invalid(
                    "\(type): each part must be (TYPE,PAYLOAD[,OPTION...]), got \(DecodingContext.quote("(\(part))"))"
                )
            }
            // `((A,x),(B,y))` where one part belongs: more than one condition.
            if fields[0].hasPrefix("(") {
                throw .invalid(
                    "\(type): each part must be (TYPE,PAYLOAD[,OPTION...]), got \(DecodingContext.quote("(\(part))"))")
            }
            let subtype = fields[0].uppercased()
            if subtype == "MATCH" || subtype == "RULE-SET" && depth > Self.maximumRuleNesting {
                throw .invalid("\(type): \(subtype) cannot be used inside a logical rule")
            }
            // mihomo passes what follows the payload to the part as its options (logic.go payloadToRule).
            var noResolve = false
            var source = false
            for option in fields[2...] {
                switch option.lowercased() {
                case "no-resolve": noResolve = true
                case "src": source = true
                default: partOptions.unknown.append(option)
                }
            }
            var condition = try parseCondition(
                type: subtype, payload: fields[1], providers: providers, depth: depth + 1,
                partOptions: &partOptions)
            if source {
                switch condition {
                case .ipCIDR(let prefix):
                    condition = .sourceIPCIDR(prefix)
                case .ipSuffix, .ruleSet:
                    throw .skipped(
                        "\(subtype) with src inside a logical rule is not supported by sluice; rule skipped")
                default:
                    break  // mihomo ignores src on parts that test no address
                }
            }
            if LogicalPartOptions.destinationAddressTypes.contains(subtype) && !source {
                if noResolve { partOptions.noResolveParts += 1 } else { partOptions.resolvingParts += 1 }
            }
            conditions.append(condition)
        }
        return conditions
    }

    /// `((A,x),(B,y))` → ["A,x", "B,y"]: the outer parentheses hold a comma-separated list of parenthesised parts.
    static func parenthesised(_ type: String, _ payload: String) throws(RuleProblem) -> [String] {
        let expected =
            "\(type): expected a payload such as ((DOMAIN,example.com),(NETWORK,UDP)), got "
            + DecodingContext.quote(payload)
        guard payload.hasPrefix("("), payload.hasSuffix(")"), payload.count >= 2 else { throw .invalid(expected) }
        let inner = payload.dropFirst().dropLast()
        var parts: [String] = []
        for field in try splitTopLevel(inner) {
            guard field.hasPrefix("("), field.hasSuffix(")"), field.count >= 2 else { throw .invalid(expected) }
            parts.append(String(field.dropFirst().dropLast()))
        }
        return parts
    }

    static func domainPayload(_ type: String, _ payload: String) throws(RuleProblem) -> String {
        let domain = payload.lowercased()
        let valid =
            !domain.isEmpty && domain.utf8.count <= 253
            && domain.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
                    || byte >= 0x80
            }
        guard valid else { throw .invalid("\(type): expected a domain name, got \(DecodingContext.quote(payload))") }
        return domain
    }

    /// Ports as mihomo writes them: `80`, `1000-2000`, or several joined by `/` (`80/443/8000-9000`).
    static func portRanges(_ type: String, _ payload: String) throws(RuleProblem) -> [PortRange] {
        try ranges(type, payload, limit: 65535).map { PortRange(UInt16($0.lowerBound), UInt16($0.upperBound)) }
    }

    static func ranges(_ type: String, _ payload: String, limit: UInt32) throws(RuleProblem) -> [ClosedRange<UInt64>] {
        let expected =
            "\(type): expected a number, a range such as 1000-2000, or several joined by '/', got "
            + DecodingContext.quote(payload)
        var result: [ClosedRange<UInt64>] = []
        for part in payload.split(separator: "/", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            var numbers: [UInt64] = []
            for bound in bounds {
                let text = bound.trimmingSpaces
                guard !text.isEmpty, text.count <= 10, text.allSatisfy({ $0.isASCII && $0.isNumber }),
                    let value = UInt64(text), value <= UInt64(limit)
                else { throw .invalid(expected) }
                numbers.append(value)
            }
            let lower = numbers[0]
            let upper = numbers.count == 2 ? numbers[1] : lower
            guard lower <= upper else { throw .invalid(expected) }
            result.append(lower...upper)
        }
        return result
    }
}
