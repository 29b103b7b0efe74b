import SluiceNet

/// A policy routing rule (`ip rule`), as dumped by `RTM_GETRULE` or installed with `RTM_NEWRULE`.
///
/// Optional selectors are nil when unset. Values the kernel fills in on its own are folded back into nil when
/// decoding (see ``normalized``), so a rule read back from the kernel equals the normalized rule that was added.
package struct RoutingRule: Sendable, Equatable, CustomStringConvertible {
    /// What a matching packet does (`FR_ACT_*`).
    package enum Action: Sendable, Equatable {
        /// `lookup TABLE` (`FR_ACT_TO_TBL`).
        case toTable
        /// `goto PRIORITY` (`FR_ACT_GOTO`).
        case goto(UInt32)
        /// `nop` (`FR_ACT_NOP`).
        case nop
        /// `blackhole`, `unreachable`, `prohibit` (`FR_ACT_BLACKHOLE` 6, `FR_ACT_UNREACHABLE` 7,
        /// `FR_ACT_PROHIBIT` 8).
        case blackhole, unreachable, prohibit
        /// An action number this code does not know, kept so foreign rules still list.
        case other(UInt8)

        package var netlinkValue: UInt8 {
            switch self {
            case .toTable: NetlinkConstant.ruleActionToTable
            case .goto: NetlinkConstant.ruleActionGoto
            case .nop: NetlinkConstant.ruleActionNop
            case .blackhole: NetlinkConstant.ruleActionBlackhole
            case .unreachable: NetlinkConstant.ruleActionUnreachable
            case .prohibit: NetlinkConstant.ruleActionProhibit
            case .other(let value): value
            }
        }
    }

    /// The protocol sluice installs rules with (`FRA_PROTOCOL`), the same as ``Route/sluiceProtocol``.
    package static let sluiceProtocol: UInt8 = Route.sluiceProtocol

    package var family: IPFamily
    /// `pref`: lower runs first. Priority 0 is the kernel's `local` rule.
    package var priority: UInt32
    /// The table for ``Action/toTable``; nil otherwise.
    package var table: UInt32?
    package var action: Action
    /// `fwmark`. With ``fwmask`` nil the kernel compares all 32 bits.
    package var fwmark: UInt32?
    /// The mask for ``fwmark``; nil means `0xffffffff`.
    package var fwmask: UInt32?
    /// `not`: the selectors are negated (`FIB_RULE_INVERT`).
    package var invert: Bool
    /// `from PREFIX` / `to PREFIX`; only the network part counts.
    package var source: IPPrefix?
    package var destination: IPPrefix?
    /// `suppress_prefixlength N`: ignore lookup results with a prefix of N or shorter (0 = ignore default
    /// routes). The kernel stores -1 for unset; that reads back as nil.
    package var suppressPrefixLength: Int32?
    /// `iif NAME` / `oif NAME`.
    package var inputInterface: String?
    package var outputInterface: String?
    /// `ipproto N` (`FRA_IP_PROTO`): 6 TCP, 17 UDP, 58 ICMPv6.
    package var ipProtocol: UInt8?
    /// `sport A-B` / `dport A-B`.
    package var sourcePortRange: ClosedRange<UInt16>?
    package var destinationPortRange: ClosedRange<UInt16>?
    /// `uidrange A-B`: the socket owner's uid.
    package var uidRange: ClosedRange<UInt32>?
    /// `protocol N` (`FRA_PROTOCOL`): who installed the rule.
    package var proto: UInt8

    package init(
        family: IPFamily, priority: UInt32, table: UInt32? = nil, action: Action = .toTable,
        fwmark: UInt32? = nil, fwmask: UInt32? = nil, invert: Bool = false,
        source: IPPrefix? = nil, destination: IPPrefix? = nil, suppressPrefixLength: Int32? = nil,
        inputInterface: String? = nil, outputInterface: String? = nil, ipProtocol: UInt8? = nil,
        sourcePortRange: ClosedRange<UInt16>? = nil, destinationPortRange: ClosedRange<UInt16>? = nil,
        uidRange: ClosedRange<UInt32>? = nil, proto: UInt8 = RoutingRule.sluiceProtocol
    ) {
        self.family = family
        self.priority = priority
        self.table = table
        self.action = action
        self.fwmark = fwmark
        self.fwmask = fwmask
        self.invert = invert
        self.source = source
        self.destination = destination
        self.suppressPrefixLength = suppressPrefixLength
        self.inputInterface = inputInterface
        self.outputInterface = outputInterface
        self.ipProtocol = ipProtocol
        self.sourcePortRange = sourcePortRange
        self.destinationPortRange = destinationPortRange
        self.uidRange = uidRange
        self.proto = proto
    }

    /// The rule in the form the kernel reports it: prefixes reduced to their networks, an all-ones ``fwmask``
    /// and a -1 ``suppressPrefixLength`` turned into nil, and a ``table`` of 0 (no table) turned into nil.
    package var normalized: RoutingRule {
        var copy = self
        copy.source = source?.network
        copy.destination = destination?.network
        if fwmask == UInt32.max { copy.fwmask = nil }
        if suppressPrefixLength == -1 { copy.suppressPrefixLength = nil }
        if table == 0 { copy.table = nil }
        return copy
    }

    /// iproute2-like text, e.g. `inet pref 9004 not fwmark 0x2d0 ipproto 17 dport 53 lookup 2022`; `proto` is shown
    /// only when it is not ``sluiceProtocol``.
    package var description: String {
        var text = "\(family) pref \(priority)"
        if invert { text += " not" }
        if let source { text += " from \(source)" }
        if let destination { text += " to \(destination)" }
        if let fwmark {
            text += " fwmark 0x\(String(fwmark, radix: 16))"
            if let fwmask { text += "/0x\(String(fwmask, radix: 16))" }
        }
        if let inputInterface { text += " iif \(inputInterface)" }
        if let outputInterface { text += " oif \(outputInterface)" }
        if let ipProtocol { text += " ipproto \(ipProtocol)" }
        if let range = sourcePortRange { text += " sport \(range.lowerBound)-\(range.upperBound)" }
        if let range = destinationPortRange { text += " dport \(range.lowerBound)-\(range.upperBound)" }
        if let range = uidRange { text += " uidrange \(range.lowerBound)-\(range.upperBound)" }
        switch action {
        case .toTable: text += " lookup \(table.map(Route.tableName) ?? "?")"
        case .goto(let target): text += " goto \(target)"
        case .nop: text += " nop"
        case .blackhole: text += " blackhole"
        case .unreachable: text += " unreachable"
        case .prohibit: text += " prohibit"
        case .other(let value): text += " action \(value)"
        }
        if let suppressPrefixLength { text += " suppress_prefixlength \(suppressPrefixLength)" }
        if proto != RoutingRule.sluiceProtocol { text += " proto \(proto)" }
        return text
    }
}

// MARK: - Wire format

extension RoutingRule {
    /// Decodes the payload of `RTM_NEWRULE` / `RTM_DELRULE` (`struct fib_rule_hdr` + `FRA_*` attributes). Nil for
    /// other families or a short header; a malformed optional attribute leaves its field nil.
    package init?(netlinkPayload payload: [UInt8]) {
        let bytes = NetlinkBytes(payload)
        guard payload.count >= NetlinkConstant.fibRuleHeaderSize, let familyByte = bytes.u8(at: 0),
            let family = IPFamily(netlinkValue: familyByte), let destinationLength = bytes.u8(at: 1),
            let sourceLength = bytes.u8(at: 2), let tableByte = bytes.u8(at: 4), let actionByte = bytes.u8(at: 7),
            let flags = bytes.u32(at: 8)
        else { return nil }
        let attributes = NetlinkAttributes(bytes, from: NetlinkConstant.fibRuleHeaderSize)

        func prefix(_ type: UInt16, length: UInt8) -> IPPrefix? {
            // The kernel omits FRA_SRC/FRA_DST when the length is 0 ("from all").
            guard length > 0, let address = attributes.address(type), IPFamily(of: address) == family else {
                return nil
            }
            return IPPrefix(address: address, length: Int(length))
        }
        // struct fib_rule_port_range { u16 start, end } and fib_rule_uid_range { u32 start, end }, host order.
        func portRange(_ type: UInt16) -> ClosedRange<UInt16>? {
            guard let payload = attributes[type], payload.count == 4 else { return nil }
            let view = NetlinkBytes(payload)
            guard let start = view.u16(at: 0), let end = view.u16(at: 2), start <= end else { return nil }
            return start...end
        }
        func uidRangeAttribute(_ type: UInt16) -> ClosedRange<UInt32>? {
            guard let payload = attributes[type], payload.count == 8 else { return nil }
            let view = NetlinkBytes(payload)
            guard let start = view.u32(at: 0), let end = view.u32(at: 4), start <= end else { return nil }
            return start...end
        }

        let action: Action
        switch actionByte {
        case NetlinkConstant.ruleActionToTable: action = .toTable
        case NetlinkConstant.ruleActionGoto: action = .goto(attributes.u32(NetlinkConstant.fraGoto) ?? 0)
        case NetlinkConstant.ruleActionNop: action = .nop
        case NetlinkConstant.ruleActionBlackhole: action = .blackhole
        case NetlinkConstant.ruleActionUnreachable: action = .unreachable
        case NetlinkConstant.ruleActionProhibit: action = .prohibit
        default: action = .other(actionByte)
        }
        self.init(
            family: family,
            // The kernel leaves out FRA_PRIORITY for priority 0.
            priority: attributes.u32(NetlinkConstant.fraPriority) ?? 0,
            table: attributes.u32(NetlinkConstant.fraTable) ?? UInt32(tableByte),
            action: action,
            fwmark: attributes.u32(NetlinkConstant.fraFirewallMark),
            fwmask: attributes.u32(NetlinkConstant.fraFirewallMask),
            invert: flags & NetlinkConstant.ruleFlagInvert != 0,
            source: prefix(NetlinkConstant.fraSource, length: sourceLength),
            destination: prefix(NetlinkConstant.fraDestination, length: destinationLength),
            suppressPrefixLength: attributes.u32(NetlinkConstant.fraSuppressPrefixLength).map { Int32(bitPattern: $0) },
            inputInterface: attributes.string(NetlinkConstant.fraInputInterfaceName),
            outputInterface: attributes.string(NetlinkConstant.fraOutputInterfaceName),
            ipProtocol: attributes.u8(NetlinkConstant.fraIPProtocol).flatMap { $0 == 0 ? nil : $0 },
            sourcePortRange: portRange(NetlinkConstant.fraSourcePortRange),
            destinationPortRange: portRange(NetlinkConstant.fraDestinationPortRange),
            uidRange: uidRangeAttribute(NetlinkConstant.fraUIDRange),
            proto: attributes.u8(NetlinkConstant.fraProtocol) ?? 0)
        // The kernel reports FRA_FWMASK whenever a mark is set (0xffffffff when none was given) and
        // FRA_SUPPRESS_PREFIXLEN always (-1 = unset); fold those back into nil.
        self = normalized
    }

    /// The request that adds (`RTM_NEWRULE`) or deletes (`RTM_DELRULE`) this rule.
    ///
    /// Every selector is sent, so a delete matches this rule and not merely the first rule at its priority (the
    /// kernel's rule_find() compares each attribute the request carries).
    package func request(type: UInt16, flags: UInt16) -> NetlinkRequest {
        var request = NetlinkRequest(type: type, flags: flags)
        let table = self.table ?? 0
        request.appendRouteHeader(
            family: family.netlinkValue, destinationLength: destination?.length ?? 0,
            sourceLength: source?.length ?? 0,
            // Table ids above 255 do not fit here; the kernel then takes FRA_TABLE, which we always send.
            table: table < 256 ? UInt8(table) : NetlinkConstant.tableUnspecified,
            protocol: 0, scope: 0, type: action.netlinkValue,
            flags: invert ? NetlinkConstant.ruleFlagInvert : 0)
        request.addAttribute(NetlinkConstant.fraPriority, integer: priority)
        if self.table != nil { request.addAttribute(NetlinkConstant.fraTable, integer: table) }
        if case .goto(let target) = action { request.addAttribute(NetlinkConstant.fraGoto, integer: target) }
        if let source, source.length > 0 {
            request.addAttribute(NetlinkConstant.fraSource, address: source.network.address)
        }
        if let destination, destination.length > 0 {
            request.addAttribute(NetlinkConstant.fraDestination, address: destination.network.address)
        }
        if let fwmark { request.addAttribute(NetlinkConstant.fraFirewallMark, integer: fwmark) }
        if let fwmask { request.addAttribute(NetlinkConstant.fraFirewallMask, integer: fwmask) }
        if let suppressPrefixLength {
            request.addAttribute(NetlinkConstant.fraSuppressPrefixLength, integer: suppressPrefixLength)
        }
        if let inputInterface { request.addAttribute(NetlinkConstant.fraInputInterfaceName, string: inputInterface) }
        if let outputInterface {
            request.addAttribute(NetlinkConstant.fraOutputInterfaceName, string: outputInterface)
        }
        if let ipProtocol { request.addAttribute(NetlinkConstant.fraIPProtocol, integer: ipProtocol) }
        if let range = sourcePortRange {
            request.addAttribute(NetlinkConstant.fraSourcePortRange, rangeBytes(range))
        }
        if let range = destinationPortRange {
            request.addAttribute(NetlinkConstant.fraDestinationPortRange, rangeBytes(range))
        }
        if let range = uidRange { request.addAttribute(NetlinkConstant.fraUIDRange, rangeBytes(range)) }
        request.addAttribute(NetlinkConstant.fraProtocol, integer: proto)
        return request
    }

    private func rangeBytes<T: FixedWidthInteger>(_ range: ClosedRange<T>) -> [UInt8] {
        withUnsafeBytes(of: range.lowerBound) { Array($0) } + withUnsafeBytes(of: range.upperBound) { Array($0) }
    }
}
