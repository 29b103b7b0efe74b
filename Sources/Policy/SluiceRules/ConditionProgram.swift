import SluiceConfig
import SluiceNet

/// The facts of one decision in the form the indexed matcher reads: the name as bytes, valid
/// for the duration of the decision, and plain values for the rest.
struct MatchFacts {
    var host: UnsafeRawBufferPointer?
    /// The same name as a String, for the regex engine.
    var hostString: String?
    var network: ConnectionMetadata.Network
    var source: IPAddress
    var sourcePort: UInt16
    var destinationPort: UInt16
    var uid: UInt32?
    var processPath: String?
    var inbound: ConnectionMetadata.Inbound
    var destinations: DestinationAddresses
}

/// Conditions the indexes cannot answer (logical rules, regexes, IP-SUFFIX) compiled to flat
/// nodes: no indirect enums, no strings, nothing reference-counted on the way, so checking
/// one costs a few comparisons. Meanings are those of `ConditionEvaluating.evaluate`; the
/// property tests hold the two equal.
///
/// Built by `ConditionProgram.Builder`; `@unchecked Sendable`: immutable, and the buffers are
/// owned and freed here.
final class ConditionProgram: @unchecked Sendable {
    enum Kind: UInt8 {
        case match, never
        /// `a`, `b`: offset and length of the name in `bytes`.
        case domain, suffix, keyword
        /// `a`: index in `regexes`; `b`: the literal every match contains, as a node of kind `keyword`
        /// (-1: none).
        case regex
        /// `a`: index in `prefixes`.
        case destinationCIDR, sourceCIDR, destinationSuffix, sourceSuffix
        /// `a`, `b`: start and count in `ports`.
        case destinationPort, sourcePort
        case tcp, udp
        /// `a`, `b`: start and count in `children`.
        case and, or
        /// `a`: the child node.
        case not
        /// `a`: the nested set's number in the matcher.
        case ruleSet
        /// SUB-RULE: `a`: the condition's node; `b`: the number of the nested set holding the sub-rules.
        case subRule
        /// `a`, `b`: start and count in `uids`.
        case uid
        /// `a`: index in `strings`.
        case processName, processPath
        /// `a`, `b`: start and count in `ports`.
        case inboundPort
        /// `a`, `b`: start and count in `strings`: any of them.
        case inboundType, inboundUser, inboundName
    }

    struct Node {
        var kind: Kind
        var a: Int32
        var b: Int32
    }

    /// Compiles conditions into lists; `finish()` makes the program.
    struct Builder {
        fileprivate var nodeList: [Node] = []
        fileprivate var childList: [Int32] = []
        fileprivate var byteList: [UInt8] = []
        fileprivate var prefixList: [IPPrefix] = []
        fileprivate var portList: [PortRange] = []
        fileprivate var uidList: [UIDRange] = []
        fileprivate var stringList: [String] = []
        fileprivate var regexes: [Regex<AnyRegexOutput>] = []

        init() {}
    }

    private let regexes: [Regex<AnyRegexOutput>]
    private let strings: [String]
    // Plain buffers, read-only after init: the hot path touches no reference counts and no exclusivity checks.
    private let nodes: UnsafeMutableBufferPointer<Node>
    private let children: UnsafeMutableBufferPointer<Int32>
    private let bytes: UnsafeMutableBufferPointer<UInt8>
    private let prefixes: UnsafeMutableBufferPointer<IPPrefix>
    private let ports: UnsafeMutableBufferPointer<PortRange>
    private let uids: UnsafeMutableBufferPointer<UIDRange>

    fileprivate init(_ builder: Builder) {
        func copy<T>(_ list: [T]) -> UnsafeMutableBufferPointer<T> {
            let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: max(list.count, 1))
            _ = buffer.initialize(from: list)
            return buffer
        }
        nodes = copy(builder.nodeList)
        children = copy(builder.childList)
        bytes = copy(builder.byteList)
        prefixes = copy(builder.prefixList)
        ports = copy(builder.portList)
        uids = copy(builder.uidList)
        regexes = builder.regexes
        strings = builder.stringList
    }

    deinit {
        nodes.deallocate()
        children.deallocate()
        bytes.deallocate()
        prefixes.deallocate()
        ports.deallocate()
        uids.deallocate()
    }

}

extension ConditionProgram.Builder {
    typealias Kind = ConditionProgram.Kind
    typealias Node = ConditionProgram.Node

    /// The program of everything compiled so far.
    func finish() -> ConditionProgram {
        ConditionProgram(self)
    }

    /// Compiles `c` as seen from a rule with `src` = `matchSource`; RULE-SET and SUB-RULE become `never` inside a
    /// provider or when `set` does not number their nested set. Returns the root node.
    mutating func compile(
        _ c: RuleCondition, matchSource: Bool, insideProvider: Bool, program: RuleProgram,
        set: (NestedSetKey) -> Int32?
    ) -> Int32 {
        func add(_ kind: Kind, _ a: Int32 = 0, _ b: Int32 = 0) -> Int32 {
            nodeList.append(Node(kind: kind, a: a, b: b))
            return Int32(nodeList.count - 1)
        }
        func name(_ kind: Kind, _ text: String) -> Int32 {
            let offset = Int32(byteList.count)
            byteList.append(contentsOf: text.utf8)
            return add(kind, offset, Int32(text.utf8.count))
        }
        func prefix(_ kind: Kind, _ p: IPPrefix) -> Int32 {
            prefixList.append(p)
            return add(kind, Int32(prefixList.count - 1))
        }
        func portRanges(_ kind: Kind, _ ranges: [PortRange]) -> Int32 {
            let start = Int32(portList.count)
            portList.append(contentsOf: ranges)
            return add(kind, start, Int32(ranges.count))
        }
        /// Matches any of `list`.
        func anyOf(_ kind: Kind, _ list: [String]) -> Int32 {
            let start = Int32(stringList.count)
            stringList.append(contentsOf: list)
            return add(kind, start, Int32(list.count))
        }
        func logical(_ kind: Kind, _ cs: [RuleCondition]) -> Int32 {
            let compiled = cs.map {
                compile($0, matchSource: matchSource, insideProvider: insideProvider, program: program, set: set)
            }
            let start = Int32(childList.count)
            childList.append(contentsOf: compiled)
            return add(kind, start, Int32(compiled.count))
        }
        switch c {
        case .match: return add(.match)
        case .domain(let d): return name(.domain, d)
        case .domainSuffix(let d): return name(.suffix, d)
        case .domainKeyword(let k): return name(.keyword, k)
        case .domainRegex(let pattern):
            guard let regex = program.regexes[pattern] else { return add(.never) }
            regexes.append(regex)
            let literal = RegexLiteral.required(pattern).map { name(.keyword, String(decoding: $0, as: UTF8.self)) }
            return add(.regex, Int32(regexes.count - 1), literal ?? -1)
        case .ipCIDR(let p): return prefix(matchSource ? .sourceCIDR : .destinationCIDR, p)
        case .ipSuffix(let p): return prefix(matchSource ? .sourceSuffix : .destinationSuffix, p)
        case .sourceIPCIDR(let p): return prefix(.sourceCIDR, p)
        case .sourcePort(let r): return portRanges(.sourcePort, r)
        case .destinationPort(let r): return portRanges(.destinationPort, r)
        case .network(.tcp): return add(.tcp)
        case .network(.udp): return add(.udp)
        case .and(let cs): return logical(.and, cs)
        case .or(let cs): return logical(.or, cs)
        case .not(let inner):
            let child = compile(
                inner, matchSource: matchSource, insideProvider: insideProvider, program: program, set: set)
            return add(.not, child)
        case .ruleSet(let name):
            guard !insideProvider, let number = set(.ruleSet(name, matchSource: matchSource)) else {
                return add(.never)
            }
            return add(.ruleSet, number)
        case .subRule(let condition, let name, _):
            guard !insideProvider, let number = set(.subRules(name)) else { return add(.never) }
            let child = compile(
                condition, matchSource: matchSource, insideProvider: insideProvider, program: program, set: set)
            return add(.subRule, child, number)
        case .uid(let ranges):
            let start = Int32(uidList.count)
            uidList.append(contentsOf: ranges)
            return add(.uid, start, Int32(ranges.count))
        case .processName(let n):
            stringList.append(n)
            return add(.processName, Int32(stringList.count - 1))
        case .processPath(let p):
            stringList.append(p)
            return add(.processPath, Int32(stringList.count - 1))
        case .inboundPort(let ranges): return portRanges(.inboundPort, ranges)
        case .inboundType(let list): return anyOf(.inboundType, list)
        case .inboundUser(let list): return anyOf(.inboundUser, list)
        case .inboundName(let list): return anyOf(.inboundName, list)
        }
    }

}

extension ConditionProgram {
    /// Whether node `n` matches; `sets` are the nested sets `ruleSet` nodes name. (An array, not a callback: a
    /// closure's context would be retained on every call.)
    func matches(_ n: Int32, _ facts: MatchFacts, sets: [RuleIndex]) -> Bool {
        let node = nodes[Int(n)]
        switch node.kind {
        case .match: return true
        case .never: return false
        case .domain:
            guard let host = facts.host, host.count == Int(node.b) else { return false }
            return equal(host, 0, node)
        case .suffix:
            guard let host = facts.host else { return false }
            let length = Int(node.b)
            if host.count == length { return equal(host, 0, node) }
            guard host.count > length, host[host.count - length - 1] == UInt8(ascii: ".") else { return false }
            return equal(host, host.count - length, node)
        case .keyword:
            guard let host = facts.host else { return false }
            let length = Int(node.b)
            if length == 0 { return true }
            guard host.count >= length else { return false }
            for start in 0...(host.count - length) where equal(host, start, node) { return true }
            return false
        case .regex:
            guard let host = facts.hostString else { return false }
            // Most names lack the regex's literal: one byte search instead of the regex engine.
            if node.b >= 0 && !matches(node.b, facts, sets: sets) { return false }
            return regexMatches(node.a, host)
        case .destinationCIDR:
            let p = prefixes[Int(node.a)]
            return facts.destinations.contains { p.contains($0) }
        case .sourceCIDR:
            return prefixes[Int(node.a)].contains(facts.source)
        case .destinationSuffix:
            let p = prefixes[Int(node.a)]
            return facts.destinations.contains { DomainMatch.suffixMatches(p, $0) }
        case .sourceSuffix:
            return DomainMatch.suffixMatches(prefixes[Int(node.a)], facts.source)
        case .destinationPort:
            guard facts.network != .icmp else { return false }
            return inRanges(facts.destinationPort, node)
        case .sourcePort:
            return inRanges(facts.sourcePort, node)
        case .tcp: return facts.network == .tcp
        case .udp: return facts.network == .udp
        case .and:
            for i in Int(node.a)..<Int(node.a + node.b) where !matches(children[i], facts, sets: sets) {
                return false
            }
            return true
        case .or:
            for i in Int(node.a)..<Int(node.a + node.b) where matches(children[i], facts, sets: sets) {
                return true
            }
            return false
        case .not:
            return !matches(node.a, facts, sets: sets)
        case .ruleSet:
            return sets[Int(node.a)].lowestMatch(facts, from: 0, sets: []) != .max
        case .subRule:
            // The condition, then any rule of the set (which may hold RULE-SETs and SUB-RULEs of its own).
            return matches(node.a, facts, sets: sets)
                && sets[Int(node.b)].lowestMatch(facts, from: 0, sets: sets) != .max
        case .processName:
            guard let path = facts.processPath else { return false }
            return RuleProgram.executableName(path) == strings[Int(node.a)]
        case .processPath:
            return facts.processPath == strings[Int(node.a)]
        case .inboundPort:
            return facts.inbound.port != 0 && inRanges(facts.inbound.port, node)
        case .inboundType: return anyString(facts.inbound.type, node)
        case .inboundUser:
            guard let user = facts.inbound.user else { return false }
            return anyString(user, node)
        case .inboundName: return anyString(facts.inbound.name, node)
        case .uid:
            guard let uid = facts.uid else { return false }
            for i in Int(node.a)..<Int(node.a + node.b) where uids[i].lower <= uid && uid <= uids[i].upper {
                return true
            }
            return false
        }
    }

    private func anyString(_ value: String, _ node: Node) -> Bool {
        for i in Int(node.a)..<Int(node.a + node.b) where strings[i] == value { return true }
        return false
    }

    /// Kept out of `matches`, whose frame would otherwise set up the regex engine's generic types on every call.
    @inline(never)
    private func regexMatches(_ number: Int32, _ host: String) -> Bool {
        (try? regexes[Int(number)].firstMatch(in: host)) != nil
    }

    @inline(__always)
    private func equal(_ host: UnsafeRawBufferPointer, _ start: Int, _ node: Node) -> Bool {
        let offset = Int(node.a)
        for i in 0..<Int(node.b) where host[start + i] != bytes[offset + i] { return false }
        return true
    }

    @inline(__always)
    private func inRanges(_ port: UInt16, _ node: Node) -> Bool {
        for i in Int(node.a)..<Int(node.a + node.b) where ports[i].contains(port) { return true }
        return false
    }
}
