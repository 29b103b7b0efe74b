import SluiceRouting
import SluiceOutbounds
import CSluice
import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluiceRules
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The tun worker's job: bring the TUN device up, run the data plane, install auto-route,
/// and take it all down again on a graceful stop.
package final class TunWorkerService: WorkerService, @unchecked Sendable {
    private let logger = Logger(label: "sluice-tun")
    private var running: RunningDataPlane?
    private var applied: SluiceConfiguration?
    private let environment: [String: String]
    private var supervisor: SupervisorLink?

    package init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    package func apply(_ configuration: SluiceConfiguration, generation: UInt64) -> (ConfigResult.Outcome, String) {
        if let running, let applied {
            // Rules, proxies and mode swap in place; anything about the device or routing
            // needs a fresh data plane.
            if applied.tun != configuration.tun || applied.ipv6 != configuration.ipv6 {
                return (.restartRequired, "tun section changed")
            }
            if Self.localSockets(applied.inbound) != Self.localSockets(configuration.inbound) {
                // sluiced binds the ports at the worker's start and hands them over then.
                return (.restartRequired, "local proxy ports changed")
            }
            if applied.tun.autoRoute, applied.wireguardBypassMarks != configuration.wireguardBypassMarks {
                // auto-route's rules send the links' marks around the TUN; a new mark needs them reinstalled.
                return (.restartRequired, "WireGuard link fwmarks changed (auto-route bypass rules)")
            }
            let table = RoutingTable.make(
                configuration, egress: running.egress, resolver: running.resolver,
                previous: running.router.current, stateDirectory: environment["SLUICE_STATE_DIRECTORY"],
                logger: logger)
            running.install(table)
            running.ports?.settings = configuration.inbound
            running.egress.keepAlive = configuration.keepAlive
            running.applyLimits(configuration.limits)
            self.applied = configuration
            return (.applied, running.summary)
        }
        // Without the TUN the data plane still runs for the local proxy ports (mihomo's plain proxy use).
        guard configuration.tun.enable || !configuration.inbound.listeners.isEmpty else { return (.applied, "tun disabled") }
        do {
            let plane = try RunningDataPlane.start(
                configuration, environment: environment, supervisor: supervisor, logger: logger)
            running = plane
            applied = configuration
            return (.applied, plane.summary)
        } catch {
            logger.error("cannot start the data plane: \(error)")
            return (.rejected, "\(error)")
        }
    }

    package var readyDetail: String { running?.summary ?? "tun disabled" }

    /// What sluiced binds for the local proxy ports: a change needs new sockets, so a new worker.
    static func localSockets(_ inbound: InboundConfiguration) -> [String] {
        inbound.listeners.map { "\($0.address) \($0.port) \($0.udp)" }
    }

    package var isHealthy: Bool { running?.isHealthy ?? true }
    /// One line per proxy group that rejects its traffic because nothing in it can carry a connection.
    package var problems: [String] { running?.router.current.groups?.problems ?? [] }

    package func stats() -> [StatsReport.Entry] { running?.stats() ?? [] }

    package func peerConnected(_ peer: PeerChannel, channel: FrameChannel) {
        guard peer.peer == .dnsWorker else { return }
        running?.dns.attach(channel)
    }

    package func connected(to supervisor: SupervisorLink) { self.supervisor = supervisor }

    /// `sluiced select` and the group state for `sluiced status`; the external controller's connections list and
    /// closes.
    package func answer(_ request: Message) -> Message? {
        let groups = running?.router.current.groups
        switch request {
        case .connectionsRequest:
            let snapshot = running?.registry.snapshot() ?? ConnectionsSnapshot(uploadTotal: 0, downloadTotal: 0, connections: [])
            do {
                return .connections(document: Array(try JSONEncoder().encode(snapshot)))
            } catch {
                return .error(ErrorReport(code: .internalFailure, message: "cannot encode the connections: \(error)"))
            }
        case .closeConnections(let close):
            return .connectionsClosed(count: UInt32(clamping: running?.registry.close(id: close.id) ?? 0))
        case .groupStatusRequest:
            return Self.groupStatus(groups)
        case .select(let select):
            guard let groups else {
                return .error(ErrorReport(code: .rejected, message: "no proxy groups are configured (proxy-groups is empty, or the TUN is off)"))
            }
            do {
                try groups.select(select.group, select.member)
            } catch {
                return .error(ErrorReport(code: .rejected, message: error.description))
            }
            return Self.groupStatus(groups)
        default:
            return nil
        }
    }

    /// The external controller's delay tests, measured on a thread of their own (up to the request's timeout).
    package func answerLater(_ request: Message, respond: @escaping @Sendable (Message) -> Void) -> Bool {
        guard case .delayTest(let test) = request else { return false }
        guard let running else {
            respond(.delayResult(DelayResult(delays: [], error: "the TUN is off: no proxies to test")))
            return true
        }
        running.delayTest(test, respond: respond)
        return true
    }

    static func groupStatus(_ groups: ProxyGroups?) -> Message {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let document = (try? encoder.encode(groups?.status ?? [])) ?? Data("[]".utf8)
        return .groupStatus(document: Array(document))
    }

    package func shutdown(graceMilliseconds: UInt32) {
        running?.stop()
        running = nil
    }
}

/// Everything one data plane owns, started together and stopped together.
final class RunningDataPlane: @unchecked Sendable {
    /// nil when the TUN is off and only the local proxy ports are served.
    let device: TunDevice?
    let netlink: RouteNetlink
    let autoRoute: AutoRoute?
    let egress: EgressPolicy
    let dispatcher: PacketDispatcher
    /// Judges every new flow; holds the routing table.
    let router: FlowRouter
    let relay: TCPRelayLoop
    let udp: UDPFlowTable
    let icmp: ICMPForwarder
    let nat: TCPNATTable
    let markerPath: String?
    let addedAddresses: [IPPrefix]
    /// The addresses the configuration puts on the device.
    let wantedAddresses: [IPPrefix]
    let interfaceIndex: Int32
    let summary: String
    let dns: DNSPeer
    let resolver: NameResolver
    /// The live connections and flows, for the external controller.
    let registry: ConnectionRegistry
    /// The local proxy ports' settings and associations; nil without any.
    let ports: LocalProxyPorts?
    private var threads: [OSThread] = []
    private let stopping = Atomic<Bool>(false)
    private let logger: Logger

    private init(
        device: TunDevice?, netlink: RouteNetlink, autoRoute: AutoRoute?, egress: EgressPolicy, dispatcher: PacketDispatcher,
        router: FlowRouter, relay: TCPRelayLoop, udp: UDPFlowTable, icmp: ICMPForwarder, dns: DNSPeer, resolver: NameResolver, nat: TCPNATTable,
        registry: ConnectionRegistry, ports: LocalProxyPorts?, markerPath: String?,
        addedAddresses: [IPPrefix], wantedAddresses: [IPPrefix], interfaceIndex: Int32, summary: String, logger: Logger
    ) {
        self.wantedAddresses = wantedAddresses
        self.device = device
        self.netlink = netlink
        self.autoRoute = autoRoute
        self.egress = egress
        self.dispatcher = dispatcher
        self.router = router
        self.relay = relay
        self.udp = udp
        self.icmp = icmp
        self.dns = dns
        self.resolver = resolver
        self.nat = nat
        self.registry = registry
        self.ports = ports
        self.markerPath = markerPath
        self.addedAddresses = addedAddresses
        self.interfaceIndex = interfaceIndex
        self.summary = summary
        self.logger = logger
    }

    static func start(
        _ configuration: SluiceConfiguration, environment: [String: String], supervisor: SupervisorLink?, logger: Logger
    ) throws -> RunningDataPlane {
        let tun = configuration.tun
        let stateDirectory = environment["SLUICE_STATE_DIRECTORY"]
        let markerPath = stateDirectory.map { "\($0)/tun-\(tun.device).created" }
        let netlink = try RouteNetlink()
        var device: TunDevice?
        var interfaceIndex: Int32 = 0
        var added: [IPPrefix] = []
        let wantedAddresses = tun.enable ? tun.inet4Address + (configuration.ipv6 ? tun.inet6Address : []) : []
        if tun.enable {
            let opened: TunDevice
            if let inherited = environment["SLUICE_TUN_FD"].flatMap(Int32.init) {
                opened = try TunDevice.adopt(descriptor: inherited)
            } else {
                let clone = environment["SLUICE_TUN_CLONE_FD"].flatMap(Int32.init).map { OwnedDescriptor(takingOwnershipOfDescriptor: $0) }
                opened = try TunDevice.open(name: tun.device, markerPath: markerPath, clone: clone, offload: tun.gso)
            }
            device = opened
            try Descriptors.setNonBlocking(opened.descriptor.rawValue)
            guard let link = try netlink.link(named: opened.name) else {
                throw SystemError("find interface \(opened.name) after opening it", errno: ENODEV)
            }
            interfaceIndex = link.index
            // IPv6 on a TUN: no duplicate address detection (the address would stay tentative
            // and drop our own packets for a second), and no reverse-path filter on the device,
            // whose packets legitimately carry any source address.
            writeSysctl("/proc/sys/net/ipv6/conf/\(opened.name)/accept_dad", "0")
            writeSysctl("/proc/sys/net/ipv4/conf/\(opened.name)/rp_filter", "0")
            try netlink.setLink(index: link.index, up: true, mtu: UInt32(tun.mtu))
            let existing = Set(try netlink.addresses(interface: link.index).map(\.description))
            for prefix in wantedAddresses where !existing.contains(prefix.description) {
                try netlink.addAddress(prefix, interface: link.index)
                added.append(prefix)
            }
        }
        // Without a device nothing is ever written to it (no TUN flows, no hijacked DNS): writes would fail on fd -1.
        let writer = device?.writer ?? TunWriter(fd: -1, vnetHeader: false)

        // No TUN, nothing to keep out of it: no mark (setting one takes CAP_NET_ADMIN, which this worker then lacks).
        let egress = EgressPolicy(routingMark: tun.enable ? tun.routingMark : 0)
        egress.keepAlive = configuration.keepAlive
        if tun.enable, tun.autoDetectInterface {
            egress.interface = try detectEgress(netlink, excluding: interfaceIndex)
            logger.info("auto-detect-interface: DIRECT traffic leaves through \(egress.interface ?? "the main table's route (none found)")")
        }
        var routingConfig = tun
        if !configuration.ipv6 { routingConfig.inet6Address = [] }
        // Workers running as a dedicated service user: that user's own traffic (the dns
        // worker's upstream queries, which carry no fwmark) goes around the TUN.
        let serviceUID = environment["SLUICE_SERVICE_UID"].flatMap(UInt32.init)
        let autoRoute = tun.enable && tun.autoRoute
            ? AutoRoute(
                config: routingConfig, interfaceIndex: interfaceIndex, serviceUID: serviceUID,
                bypassMarks: configuration.wireguardBypassMarks, logger: logger) : nil
        try autoRoute?.install(netlink)

        let dns = configuration.dns
        let upstreams = Set((dns.nameserver + dns.defaultNameserver).compactMap { upstream -> InetEndpoint? in
            guard case .address(let ip) = upstream.endpoint.host else { return nil }
            return InetEndpoint(ip, upstream.endpoint.port)
        })
        let dnsPeer = DNSPeer(
            entries: tun.enable ? tun.dnsHijack : [], upstreams: upstreams, fakeRanges: dns.fakeIPRanges, tun: writer,
            logger: logger)
        let limits = configuration.limits
        checkDescriptorLimit(maxConnections: limits.maxConnections, logger: logger)
        let nat = TCPNATTable(maxConnections: limits.maxConnections)
        let registry = ConnectionRegistry()
        let ports = configuration.inbound.listeners.isEmpty ? nil : LocalProxyPorts(configuration.inbound)
        let udp = try UDPFlowTable(
            tun: writer, idleTimeoutSeconds: tun.udpTimeout, maxFlows: limits.udpMaxFlows, logger: logger,
            fakeAddressUse: { address, used in dnsPeer.pin(address, used) }, registry: registry, ports: ports)
        let icmp = ICMPForwarder(
            v4: environment["SLUICE_ICMP4_FD"].flatMap(Int32.init).map { OwnedDescriptor(takingOwnershipOfDescriptor: $0) },
            v6: environment["SLUICE_ICMP6_FD"].flatMap(Int32.init).map { OwnedDescriptor(takingOwnershipOfDescriptor: $0) },
            routingMark: tun.routingMark, tun: writer, logger: logger)
        let resolver = NameResolver(dns: dnsPeer)
        let table = RoutingTable.make(
            configuration, egress: egress, resolver: resolver, stateDirectory: stateDirectory, logger: logger)

        // Data flows one way: the dispatcher and the relay ask the router; it answers with values.
        let router = FlowRouter(
            table: table, names: dnsPeer,
            owners: FlowOwners(sockets: try? SocketOwners(), processes: supervisor), hijack: DNSOutbound(peer: dnsPeer),
            resolveForRules: { [resolver] name in resolver.resolveBlocking(name, ipv6: false, timeoutMilliseconds: 150).0 },
            logger: logger)
        let relay = try TCPRelayLoop(
            logger: logger, router: router, nat: nat,
            lookupName: { name, ipv6, completion in resolver.resolve(name, ipv6: ipv6, completion: completion) },
            egress: egress, registry: registry, ports: ports)
        func stackAddresses(_ prefixes: [IPPrefix]) throws -> PacketDispatcher.StackAddresses? {
            guard let prefix = prefixes.first else { return nil }
            guard let fake = nextAddress(in: prefix) else {
                throw SystemError(
                    "tun address \(prefix): the prefix must leave room for a second address (at most /30 or /126)", errno: EINVAL)
            }
            let listener = try relay.listen(on: InetEndpoint(prefix.address, 0))
            return PacketDispatcher.StackAddresses(listener: listener, fakeClient: fake)
        }
        let v4 = device != nil ? try stackAddresses(tun.inet4Address) : nil
        let v6 = device != nil && configuration.ipv6 ? try stackAddresses(tun.inet6Address) : nil
        let dispatcher = PacketDispatcher(
            tun: writer, mtu: tun.mtu, v4: v4, v6: v6, nat: nat, udp: udp, icmp: icmp,
            dns: dnsPeer, resolver: resolver, router: router, logger: logger)
        let served = try serveLocalPorts(
            configuration.inbound, descriptors: environment["SLUICE_INBOUND_FDS"], relay: relay, udp: udp,
            dispatcher: dispatcher, logger: logger)

        var summary = "no TUN (tun.enable: false)"
        if let device {
            summary = "\(device.name) up, mtu \(tun.mtu), " + wantedAddresses.map(\.description).joined(separator: " ")
            if autoRoute != nil { summary += ", auto-route" }
            if device.segmentationOffload { summary += ", gso" }
        }
        if !served.isEmpty { summary += ", local ports " + served.joined(separator: " ") }
        let plane = RunningDataPlane(
            device: device, netlink: netlink, autoRoute: autoRoute, egress: egress, dispatcher: dispatcher, router: router,
            relay: relay,
            udp: udp, icmp: icmp, dns: dnsPeer, resolver: resolver, nat: nat, registry: registry, ports: ports, markerPath: markerPath, addedAddresses: device?.createdBySluice == true ? [] : added,
            wantedAddresses: wantedAddresses, interfaceIndex: interfaceIndex, summary: summary, logger: logger)
        plane.threads = [
            try OSThread.start(name: "tun-relay") { relay.run() },
            try OSThread.start(name: "tun-udp") { udp.run() },
        ]
        if device != nil {
            plane.threads.append(try OSThread.start(name: "tun-read") { dispatcher.run() })
            plane.threads.append(
                try OSThread.start(name: "tun-watch") { plane.watchRouting(followEgress: tun.autoDetectInterface) })
        }
        plane.startHealthChecks(table.groups)
        logger.info("data plane up: \(summary)")
        return plane
    }

    var isHealthy: Bool { threads.allSatisfy { !$0.hasExited } }

    /// Takes over the local proxy ports' sockets sluiced bound (`SLUICE_INBOUND_FDS`: per listener in
    /// configuration order `TCP[:UDP]` descriptor numbers, `-` for one it could not bind) and routes their clients
    /// through `dispatcher`. Returns what is served, as `NAME ADDRESS:PORT`.
    static func serveLocalPorts(
        _ inbound: InboundConfiguration, descriptors: String?, relay: TCPRelayLoop, udp: UDPFlowTable,
        dispatcher: PacketDispatcher, logger: Logger
    ) throws -> [String] {
        guard let descriptors, !inbound.listeners.isEmpty else { return [] }
        udp.localDatagram = { [dispatcher] index, listener, local, client, target, payload, user in
            dispatcher.handleLocalDatagram(
                listener: index, listener, local: local, from: client, to: target, payload: payload, user: user)
        }
        var served: [String] = []
        for (index, item) in descriptors.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            guard index < inbound.listeners.count, item != "-" else { continue }
            let numbers = item.split(separator: ":").compactMap { Int32($0) }
            guard let tcp = numbers.first else { continue }
            let listener = inbound.listeners[index]
            try relay.listenLocal(OwnedDescriptor(takingOwnershipOfDescriptor: tcp), index: index)
            if numbers.count > 1 {
                try udp.addLocalPort(OwnedDescriptor(takingOwnershipOfDescriptor: numbers[1]), index: index)
            }
            served.append("\(listener.name) \(InetEndpoint(listener.address, listener.port))")
        }
        return served
    }

    /// `limits:` of a reload: the TCP and UDP bounds change in place, for new connections and flows.
    func applyLimits(_ limits: LimitsConfiguration) {
        if nat.maxConnections != limits.maxConnections {
            nat.maxConnections = limits.maxConnections
            Self.checkDescriptorLimit(maxConnections: limits.maxConnections, logger: logger)
        }
        udp.maxFlows = limits.udpMaxFlows
    }

    /// Raises the soft descriptor limit to the hard one (inherited from sluiced: the unit's
    /// `LimitNOFILE`) and says when `max-connections` relayed connections would not fit in it.
    static func checkDescriptorLimit(maxConnections: Int, logger: Logger) {
        var soft: UInt64 = 0
        var hard: UInt64 = 0
        let result = csluice_raise_nofile(&soft, &hard)
        if result < 0 {
            logger.warning("cannot raise the open-file limit to its hard limit: \(SystemError("setrlimit", errno: -result))")
        }
        // Two sockets and two pipes (four descriptors) per relayed connection, plus a reserve for the rest.
        let needed = UInt64(maxConnections) * 6 + 256
        if soft < needed {
            logger.warning(
                "limits.max-connections \(maxConnections) may need \(needed) file descriptors, but the open-file limit is \(soft) (hard \(hard)): past about \((soft > 256 ? soft - 256 : 0) / 6) relayed connections new ones meet EMFILE and are reset; raise LimitNOFILE or lower limits.max-connections")
        } else {
            logger.info("open-file limit \(soft) (hard \(hard)); limits.max-connections \(maxConnections)")
        }
    }

    /// Watches routing events: the TUN going down (said clearly: its traffic is dropped
    /// until it is up again) and, with auto-detect-interface, the egress interface, which
    /// is re-read on any link, address or route event (the kernel drops an interface's
    /// routes on link-down without announcing them, so link events count too).
    func watchRouting(followEgress: Bool) {
        guard let monitor = try? RouteMonitor(groups: .all), let netlink = try? RouteNetlink() else {
            logger.warning("cannot watch routing changes; auto-detect-interface keeps \(egress.interface ?? "none")")
            return
        }
        var pfd = pollfd(fd: monitor.descriptor, events: Int16(POLLIN), revents: 0)
        var tunUp = true
        while !stopping.load(ordering: .relaxed) {
            pfd.revents = 0
            guard poll(&pfd, 1, 500) > 0 else { continue }
            let events = monitor.drain()
            guard !events.isEmpty || monitor.missedEvents else { continue }
            for case .link(let link, let removed) in events where link.index == interfaceIndex {
                let up = link.isUp && !removed
                if up != tunUp {
                    tunUp = up
                    if up {
                        // The kernel dropped the device's routes (and IPv6 addresses) when it
                        // went down: put them back, idempotently.
                        for prefix in wantedAddresses { try? netlink.addAddress(prefix, interface: interfaceIndex) }
                        do {
                            try autoRoute?.install(netlink)
                            logger.notice("\(link.name) is up again; addresses and routes restored, traffic flows")
                        } catch {
                            logger.error("\(link.name) is up again, but restoring its routes failed: \(error); restart sluice")
                        }
                    } else {
                        logger.error(
                            "\(link.name) went down: traffic routed into it is dropped until it is up again (`ip link set \(link.name) up`, or restart sluice)")
                    }
                }
            }
            guard followEgress else { continue }
            let detected = (try? Self.detectEgress(netlink, excluding: interfaceIndex)) ?? nil
            if detected != egress.interface {
                logger.info("auto-detect-interface: egress changed from \(egress.interface ?? "none") to \(detected ?? "none")")
                egress.interface = detected
            }
        }
    }

    func stats() -> [StatsReport.Entry] {
        let traffic = registry.totals()
        return [
            // Every connection's payload bytes (TCP and UDP, closed ones included): the API's /traffic.
            .init("traffic.bytes.up", Int64(clamping: traffic.upload)),
            .init("traffic.bytes.down", Int64(clamping: traffic.download)),
            .init("connections.open", Int64(registry.count)),
            .init("tun.packets", Int64(dispatcher.packets.load(ordering: .relaxed))),
            .init("tun.fragments.dropped", Int64(dispatcher.fragmentsDropped.load(ordering: .relaxed))),
            .init("tun.malformed.dropped", Int64(dispatcher.malformedDropped.load(ordering: .relaxed))),
            // Refused by the packet path (limits, ICMP, datagrams of refused pairs) and by the router's decisions.
            .init(
                "tun.rejected",
                Int64(dispatcher.rejected.load(ordering: .relaxed) &+ router.rejected.load(ordering: .relaxed))),
            .init("tcp.flows", Int64(dispatcher.tcpFlows.load(ordering: .relaxed))),
            .init("tun.super.packets", Int64(dispatcher.superPackets.load(ordering: .relaxed))),
            .init("tcp.accepted", Int64(relay.accepted.load(ordering: .relaxed))),
            .init("tcp.failed", Int64(relay.failed.load(ordering: .relaxed))),
            .init("tcp.active", Int64(relay.active.load(ordering: .relaxed))),
            .init("tcp.bytes.up", Int64(relay.bytesUp.load(ordering: .relaxed))),
            .init("tcp.bytes.down", Int64(relay.bytesDown.load(ordering: .relaxed))),
            .init("tcp.nat.entries", Int64(nat.count)),
            .init("tcp.nat.live", Int64(nat.liveCount)),
            .init("tcp.limit.refused", Int64(dispatcher.refusedAtLimit.load(ordering: .relaxed))),
            .init("tcp.halfopen.evicted", Int64(dispatcher.halfOpenEvicted.load(ordering: .relaxed))),
            .init("udp.flows", Int64(udp.count)),
            .init("udp.datagrams.out", Int64(udp.datagramsOut.load(ordering: .relaxed))),
            .init("udp.datagrams.in", Int64(udp.datagramsIn.load(ordering: .relaxed))),
            .init("udp.dropped", Int64(udp.dropped.load(ordering: .relaxed))),
            .init("udp.limit.dropped", Int64(udp.droppedAtLimit.load(ordering: .relaxed))),
            .init("icmp.requests", Int64(icmp.requests.load(ordering: .relaxed))),
            .init("icmp.replies", Int64(icmp.replies.load(ordering: .relaxed))),
            .init("dns.hijacked", Int64(dns.queries.load(ordering: .relaxed))),
            .init("dns.answers", Int64(dns.answers.load(ordering: .relaxed))),
            .init("fakeip.lookups", Int64(dns.lookups.load(ordering: .relaxed))),
        ]
    }

    /// Puts a new routing table in place (reload); a new set of proxy groups gets its own
    /// health checks and the old one's stop.
    func install(_ table: RoutingTable) {
        let old = router.install(table)
        if old.groups !== table.groups {
            old.groups?.stop()
            startHealthChecks(table.groups)
        }
    }

    /// Health checks of `groups` on a thread of their own (detached: a check in progress
    /// may take up to its timeout; stopping the groups ends the loop after it).
    func startHealthChecks(_ groups: ProxyGroups?) {
        guard let groups, groups.needsHealthChecks else { return }
        let router = self.router
        let resolver = self.resolver
        do {
            try OSThread.detached(name: "tun-health") {
                groups.runHealthChecks { member, url, timeout in
                    let table = router.current
                    let leaf = groups.contains(member) ? groups.resolve(member, key: "health-check") : member
                    guard let leaf, !table.rejectNames.contains(leaf), let outbound = table.outbounds[leaf] else { return nil }
                    return HealthProbe.measure(outbound, url: url, timeoutMilliseconds: timeout, resolver: resolver)
                }
            }
        } catch {
            logger.error("cannot start proxy-group health checks: \(error); fallback and url-test groups keep their first member")
        }
    }

    /// Bounds the threads one whole-group delay test uses.
    static let delayTestThreads = 16
    /// mihomo's default test URL, for a request without one.
    static let defaultDelayURL = "https://www.gstatic.com/generate_204"

    /// The external controller's delay test (`GET /proxies/:name/delay`, `GET /group/:name/delay`): `name` through
    /// its own outbound (a group: what it resolves to now, as mihomo measures a group), or with `wholeGroup` every
    /// member of the group `name` at once. Answers through `respond` from a detached thread; every measurement is
    /// bounded by the request's timeout. Results feed the groups' health as a check would.
    func delayTest(_ test: DelayTest, respond: @escaping @Sendable (Message) -> Void) {
        let table = router.current
        let groups = table.groups
        let isGroup = groups?.contains(test.name) ?? false
        let builtIns = Set([BuiltinTarget.direct, .reject, .rejectDrop].map(\.rawValue))
        guard isGroup || table.outbounds[test.name] != nil || table.rejectNames.contains(test.name)
            || builtIns.contains(test.name)
        else {
            respond(.delayResult(DelayResult(delays: [], error: "proxy \(test.name) not found")))
            return
        }
        if test.wholeGroup && !isGroup {
            respond(.delayResult(DelayResult(delays: [], error: "\(test.name) is not a proxy group")))
            return
        }
        let members = test.wholeGroup ? (groups?.members(of: test.name) ?? []) : [test.name]
        let url = test.url.isEmpty ? Self.defaultDelayURL : test.url
        let timeout = test.timeoutMilliseconds == 0 ? 5000 : Int(min(test.timeoutMilliseconds, 60_000))
        let resolver = self.resolver
        /// One member: the proxy or built-in it resolves to, measured; 0 when it fails (or is REJECT).
        let measure: @Sendable (String) -> (leaf: String?, milliseconds: UInt32) = { member in
            let leaf = groups?.contains(member) == true ? groups?.resolve(member, key: "delay-test") : member
            guard let leaf, !table.rejectNames.contains(leaf), let outbound = table.outbounds[leaf] else { return (nil, 0) }
            return (leaf, HealthProbe.measure(outbound, url: url, timeoutMilliseconds: timeout, resolver: resolver) ?? 0)
        }
        let name = test.name
        let wholeGroup = test.wholeGroup
        let logger = self.logger
        do {
            try OSThread.detached(name: "tun-delay") {
                let results: [(leaf: String?, milliseconds: UInt32)] = Self.measureAll(
                    members, threads: Self.delayTestThreads, measure
                ).map { $0 ?? (leaf: nil, milliseconds: 0) }
                if let groups {
                    let now = MonotonicClock.now
                    func latency(_ ms: UInt32) -> UInt32? { ms == 0 ? nil : ms }
                    if wholeGroup {
                        var health: [String: ProxyGroups.Health] = [:]
                        for (member, result) in zip(members, results) {
                            health[member] = ProxyGroups.Health(latencyMilliseconds: latency(result.milliseconds), checkedAt: now)
                        }
                        groups.apply(health, to: name, at: now, isCheck: false)
                    } else if let first = results.first, let leaf = first.leaf {
                        groups.record(leaf, latencyMilliseconds: latency(first.milliseconds), at: now)
                    }
                }
                respond(.delayResult(DelayResult(delays: zip(members, results).map { .init(name: $0, milliseconds: $1.milliseconds) })))
            }
        } catch {
            logger.error("delay test of \(name): cannot start a thread: \(error)")
            respond(.delayResult(DelayResult(delays: [], error: "cannot start the delay test: \(error)")))
        }
    }

    /// `measure` of each of `items`, in their order, on at most `threads` threads at once.
    static func measureAll<Result: Sendable>(
        _ items: [String], threads: Int, _ measure: @escaping @Sendable (String) -> Result
    ) -> [Result?] {
        let next = Locked(0)
        let results = Locked<[Result?]>(Array(repeating: nil, count: items.count))
        let work: @Sendable () -> Void = {
            while true {
                let i = next.withLock { n -> Int in
                    defer { n += 1 }
                    return n
                }
                guard i < items.count else { return }
                let result = measure(items[i])
                results.withLock { $0[i] = result }
            }
        }
        var started: [OSThread] = []
        for _ in 0..<min(threads, items.count) {
            guard let thread = try? OSThread.start(name: "tun-delay", work) else { break }
            started.append(thread)
        }
        // No thread could start: measure here, one after the other.
        if started.isEmpty { work() }
        for thread in started { thread.join() }
        return results.withLock { $0 }
    }

    /// Graceful stop: threads, auto-route, addresses we added, and the device if we made it.
    func stop() {
        router.current.groups?.stop()
        stopping.store(true, ordering: .relaxed)
        dispatcher.stop()
        dns.detach()
        relay.stop()
        udp.stop()
        for thread in threads { thread.join() }
        autoRoute?.remove(netlink)
        for prefix in addedAddresses { try? netlink.deleteAddress(prefix, interface: interfaceIndex) }
        device?.release(removeDevice: true, markerPath: markerPath)
        logger.info("data plane stopped; routes and rules removed")
    }

    /// The address after `prefix.address` inside the prefix (the NATed connections' source).
    static func nextAddress(in prefix: IPPrefix) -> IPAddress? {
        let candidate: IPAddress
        switch prefix.address {
        case .v4(let a):
            guard a.rawValue < UInt32.max else { return nil }
            candidate = .v4(IPv4Address(rawValue: a.rawValue + 1))
        case .v6(let a):
            let (low, carry) = a.low.addingReportingOverflow(1)
            candidate = .v6(IPv6Address(high: carry ? a.high &+ 1 : a.high, low: low))
        }
        return prefix.contains(candidate) && candidate != prefix.address ? candidate : nil
    }

    static func detectEgress(_ netlink: RouteNetlink, excluding tunIndex: Int32) throws(SystemError) -> String? {
        var route = try netlink.defaultRoute(family: .v4)
        if route == nil { route = try netlink.defaultRoute(family: .v6) }
        guard let index = route?.outputInterface, index != tunIndex else { return nil }
        return try netlink.links().first { $0.index == index }?.name
    }

    static func writeSysctl(_ path: String, _ value: String) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = value.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}
