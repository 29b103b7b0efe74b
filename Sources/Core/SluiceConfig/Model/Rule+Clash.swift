/// How the Clash API (mihomo's `/rules`, a connection's `rule` and `rulePayload`) names a rule.
extension RuleCondition {
    /// mihomo's `RuleType.String()`: `DomainSuffix`, `IPCIDR`, `Match`...
    public var clashType: String {
        switch self {
        case .domain: "Domain"
        case .domainSuffix: "DomainSuffix"
        case .domainKeyword: "DomainKeyword"
        case .domainRegex: "DomainRegex"
        case .ipCIDR: "IPCIDR"
        case .ipSuffix: "IPSuffix"
        case .sourceIPCIDR: "SrcIPCIDR"
        case .sourcePort: "SrcPort"
        case .destinationPort: "DstPort"
        case .inboundPort: "InPort"
        case .inboundType: "InType"
        case .inboundUser: "InUser"
        case .inboundName: "InName"
        case .network: "Network"
        case .processName: "ProcessName"
        case .processPath: "ProcessPath"
        case .uid: "Uid"
        case .and: "AND"
        case .or: "OR"
        case .not: "NOT"
        case .ruleSet: "RuleSet"
        case .match: "Match"
        case .subRule: "SubRules"
        }
    }

    /// The rule's argument as mihomo prints it (`example.com`, `10.0.0.0/8`, `80/443`, `(DOMAIN,a),(NETWORK,UDP)`).
    public var clashPayload: String {
        func ports(_ ranges: [PortRange]) -> String {
            ranges.map { $0.lower == $0.upper ? "\($0.lower)" : "\($0.lower)-\($0.upper)" }.joined(separator: "/")
        }
        func nested(_ c: RuleCondition) -> String {
            c.clashPayload.isEmpty ? "(\(c.ruleKeyword))" : "(\(c.ruleKeyword),\(c.clashPayload))"
        }
        switch self {
        case .domain(let d), .domainSuffix(let d), .domainKeyword(let d), .domainRegex(let d): return d
        case .ipCIDR(let p), .ipSuffix(let p), .sourceIPCIDR(let p): return p.description
        case .sourcePort(let r), .destinationPort(let r), .inboundPort(let r): return ports(r)
        case .network(let n): return n.rawValue.uppercased()
        case .processName(let n), .processPath(let n): return n
        case .inboundType(let list), .inboundUser(let list), .inboundName(let list): return list.joined(separator: "/")
        case .uid(let ranges):
            return ranges.map { $0.lower == $0.upper ? "\($0.lower)" : "\($0.lower)-\($0.upper)" }.joined(
                separator: "/")
        // mihomo keeps a logical rule's payload as written: `((DOMAIN,a),(NETWORK,UDP))`.
        case .and(let cs), .or(let cs): return "(" + cs.map(nested).joined(separator: ",") + ")"
        case .not(let inner): return "(" + nested(inner) + ")"
        case .ruleSet(let n): return n
        case .match: return ""
        // mihomo keeps a SUB-RULE's payload as written: `(NETWORK,UDP)`.
        case .subRule(let condition, _, _): return nested(condition)
        }
    }

    /// The rule's keyword as written in a config (`DOMAIN-SUFFIX`), used inside logical rules' payloads.
    public var ruleKeyword: String {
        switch self {
        case .domain: "DOMAIN"
        case .domainSuffix: "DOMAIN-SUFFIX"
        case .domainKeyword: "DOMAIN-KEYWORD"
        case .domainRegex: "DOMAIN-REGEX"
        case .ipCIDR(let p): p.address.isIPv4 ? "IP-CIDR" : "IP-CIDR6"
        case .ipSuffix: "IP-SUFFIX"
        case .sourceIPCIDR: "SRC-IP-CIDR"
        case .sourcePort: "SRC-PORT"
        case .destinationPort: "DST-PORT"
        case .inboundPort: "IN-PORT"
        case .inboundType: "IN-TYPE"
        case .inboundUser: "IN-USER"
        case .inboundName: "IN-NAME"
        case .network: "NETWORK"
        case .processName: "PROCESS-NAME"
        case .processPath: "PROCESS-PATH"
        case .uid: "UID"
        case .and: "AND"
        case .or: "OR"
        case .not: "NOT"
        case .ruleSet: "RULE-SET"
        case .match: "MATCH"
        case .subRule: "SUB-RULE"
        }
    }
}
