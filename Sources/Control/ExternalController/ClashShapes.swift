import Foundation
import IPC
import SluiceConfig
import SluiceNet
import SluiceSystem

/// The JSON documents of mihomo's API, built from what sluiced knows.
enum ClashShapes {
    /// One entry of `/proxies` (a proxy or a group).
    struct ProxyInfo: Encodable, Sendable {
        struct Delay: Encodable, Sendable {
            var time: String
            var delay: UInt32
        }

        var name: String
        var type: String
        var udp: Bool
        var xudp = false
        var tfo = false
        var mptcp = false
        var smux = false
        var alive: Bool
        var history: [Delay]
        var extra: [String: String] = [:]
        var id = ""
        var interface = ""
        var routingMark = 0
        var providerName = ""
        var dialerProxy = ""
        // Groups only.
        var now: String?
        var all: [String]?
        var testUrl: String?
        var hidden: Bool?
        var icon: String?
        /// sluice's own: why a group rejects its traffic (absent while it works).
        var unavailable: String?

        enum CodingKeys: String, CodingKey {
            case name, type, udp, xudp, tfo, mptcp, smux, alive, history, extra, id, interface, now, all, testUrl,
                hidden, icon
            case unavailable
            case routingMark = "routing-mark"
            case providerName = "provider-name"
            case dialerProxy = "dialer-proxy"
        }
    }

    /// The built-in group mihomo routes everything to in `mode: global`.
    static let global = SluiceConfiguration.globalGroupName

    /// Every proxy and group by name, as `GET /proxies` lists them (DIRECT, REJECT and GLOBAL included).
    static func proxies(_ state: ControllerState, now: Date = Date()) -> [String: ProxyInfo] {
        let configuration = state.configuration
        let groupStates = Dictionary(state.groups.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        // A member's last check, from any group that tests it.
        var health: [String: GroupState.Health] = [:]
        for group in state.groups {
            for (member, record) in group.health {
                if let known = health[member], known.secondsAgo <= record.secondsAgo { continue }
                health[member] = record
            }
        }
        func history(_ name: String) -> [ProxyInfo.Delay] {
            guard let record = health[name] else { return [] }
            let time = now.addingTimeInterval(-record.secondsAgo)
            return [ProxyInfo.Delay(time: Timestamp.rfc3339(time), delay: record.latencyMilliseconds ?? 0)]
        }
        func alive(_ name: String) -> Bool { health[name].map { $0.latencyMilliseconds != nil } ?? true }

        var result: [String: ProxyInfo] = [:]
        let direct = BuiltinTarget.direct.rawValue
        let reject = BuiltinTarget.reject.rawValue
        result[direct] = ProxyInfo(name: direct, type: "Direct", udp: true, alive: true, history: history(direct))
        result[reject] = ProxyInfo(name: reject, type: "Reject", udp: true, alive: true, history: [])
        // mihomo's other built-ins, where a group lists them (COMPATIBLE is direct; PASS is rejected by sluice).
        let listed = Set(configuration.proxyGroups.flatMap(\.members))
        if listed.contains(ProxyGroup.compatible) {
            result[ProxyGroup.compatible] = ProxyInfo(
                name: ProxyGroup.compatible, type: "Compatible", udp: true, alive: true, history: [])
        }
        if listed.contains(ProxyGroup.pass) {
            result[ProxyGroup.pass] = ProxyInfo(
                name: ProxyGroup.pass, type: "Pass", udp: true, alive: false, history: [])
        }
        for proxy in configuration.proxies {
            // The type name, udp and what the API shows of the dial options come from the outbound registry, which
            // filled them in when the configuration loaded.
            var info = ProxyInfo(
                name: proxy.name, type: proxy.typeName, udp: proxy.udp, alive: alive(proxy.name),
                history: history(proxy.name))
            info.interface = proxy.shown.interfaceName ?? ""
            info.routingMark = Int(proxy.shown.routingMark ?? 0)
            result[proxy.name] = info
        }
        // Groups that can carry nothing reject their traffic: `now` is REJECT (listed in `all`, so dashboards find it)
        // and the group is not alive.
        let unavailable = ProxyGroup.unavailableGroups(configuration.proxyGroups)
        for group in configuration.proxyGroups {
            let reported = groupStates[group.name]
            var info = ProxyInfo(
                name: group.name, type: clashType(group.kind), udp: !group.disableUDP, alive: alive(group.name),
                history: history(group.name))
            info.all = group.members
            info.now = group.kind == .loadBalance ? nil : (reported?.now ?? group.members.first ?? "")
            info.testUrl = group.url
            info.hidden = group.hidden
            info.icon = group.icon ?? ""
            if let reason = unavailable[group.name] {
                info.alive = false
                info.now = reject
                if !group.members.contains(reject) { info.all = group.members + [reject] }
                info.unavailable = reason
            }
            result[group.name] = info
        }
        if result[global] == nil, let group = configuration.proxyGroupsWithGlobal.last, group.name == global {
            var info = ProxyInfo(name: global, type: "Selector", udp: true, alive: true, history: [])
            info.all = group.members
            info.now = groupStates[global]?.now ?? direct
            info.testUrl = group.url
            info.hidden = false
            info.icon = ""
            result[global] = info
        }
        return result
    }

    static func clashType(_ kind: ProxyGroup.Kind) -> String {
        switch kind {
        case .select: "Selector"
        case .urlTest: "URLTest"
        case .fallback: "Fallback"
        case .loadBalance: "LoadBalance"
        }
    }

    struct RuleInfo: Encodable {
        var index: Int
        var type: String
        var payload: String
        var proxy: String
        var size: Int
    }

    static func rules(_ configuration: SluiceConfiguration) -> [RuleInfo] {
        let sizes = Dictionary(
            configuration.ruleProviders.map { ($0.name, $0.contents.count) }, uniquingKeysWith: { $1 })
        return configuration.rules.enumerated().map { index, rule in
            var size = -1
            if case .ruleSet(let name) = rule.condition { size = sizes[name] ?? 0 }
            return RuleInfo(
                index: index, type: rule.condition.clashType, payload: rule.condition.clashPayload, proxy: rule.target,
                size: size)
        }
    }

    struct TunInfo: Encodable {
        var enable: Bool
        var device: String
        var stack: String
        var dnsHijack: [String]
        var autoRoute: Bool
        var autoDetectInterface: Bool
        var mtu: Int
        var inet4Address: [String]
        var inet6Address: [String]

        enum CodingKeys: String, CodingKey {
            case enable, device, stack, mtu
            case dnsHijack = "dns-hijack"
            case autoRoute = "auto-route"
            case autoDetectInterface = "auto-detect-interface"
            case inet4Address = "inet4-address"
            case inet6Address = "inet6-address"
        }
    }

    struct ConfigInfo: Encodable {
        var port = 0
        var socksPort = 0
        var redirPort = 0
        var tproxyPort = 0
        var mixedPort = 0
        var allowLan = false
        var bindAddress = "*"
        var mode: String
        var logLevel: String
        var ipv6: Bool
        var routingMark: UInt32
        var interfaceName = ""
        var unifiedDelay = false
        var tcpConcurrent = false
        var sniffing: Bool
        var tun: TunInfo

        enum CodingKeys: String, CodingKey {
            case port, mode, ipv6, sniffing, tun
            case socksPort = "socks-port"
            case redirPort = "redir-port"
            case tproxyPort = "tproxy-port"
            case mixedPort = "mixed-port"
            case allowLan = "allow-lan"
            case bindAddress = "bind-address"
            case logLevel = "log-level"
            case routingMark = "routing-mark"
            case interfaceName = "interface-name"
            case unifiedDelay = "unified-delay"
            case tcpConcurrent = "tcp-concurrent"
        }
    }

    static func configs(_ configuration: SluiceConfiguration) -> ConfigInfo {
        let tun = configuration.tun
        return ConfigInfo(
            mode: configuration.mode.rawValue, logLevel: configuration.logLevel.rawValue, ipv6: configuration.ipv6,
            routingMark: tun.routingMark, sniffing: configuration.sniffer.enable,
            tun: TunInfo(
                enable: tun.enable, device: tun.device, stack: tun.stack.rawValue,
                dnsHijack: tun.dnsHijack.map(\.description),
                autoRoute: tun.autoRoute, autoDetectInterface: tun.autoDetectInterface, mtu: tun.mtu,
                inet4Address: tun.inet4Address.map(\.description), inet6Address: tun.inet6Address.map(\.description)))
    }
}

enum Timestamp {
    /// RFC 3339 in UTC with milliseconds, as Go's time.Time marshals (close enough for every client).
    static func rfc3339(_ date: Date) -> String {
        WallClock.rfc3339(UInt64(max(0, date.timeIntervalSince1970 * 1e9)))
    }
}
