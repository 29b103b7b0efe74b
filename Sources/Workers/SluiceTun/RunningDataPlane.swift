import CSluice
import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluiceOutbounds
import SluiceRouting
import SluiceRules
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

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
    var threads: [OSThread] = []
    let stopping = Atomic<Bool>(false)
    let logger: Logger

    private init(
        device: TunDevice?, netlink: RouteNetlink, autoRoute: AutoRoute?, egress: EgressPolicy,
        dispatcher: PacketDispatcher,
        router: FlowRouter, relay: TCPRelayLoop, udp: UDPFlowTable, icmp: ICMPForwarder, dns: DNSPeer,
        resolver: NameResolver, nat: TCPNATTable,
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
                let clone = environment["SLUICE_TUN_CLONE_FD"].flatMap(Int32.init).map {
                    OwnedDescriptor(takingOwnershipOfDescriptor: $0)
                }
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
            logger.info(
                "auto-detect-interface: DIRECT traffic leaves through \(egress.interface ?? "the main table's route (none found)")"
            )
        }
        var routingConfig = tun
        if !configuration.ipv6 { routingConfig.inet6Address = [] }
        // Workers running as a dedicated service user: that user's own traffic (the dns
        // worker's upstream queries, which carry no fwmark) goes around the TUN.
        let serviceUID = environment["SLUICE_SERVICE_UID"].flatMap(UInt32.init)
        let autoRoute =
            tun.enable && tun.autoRoute
            ? AutoRoute(
                config: routingConfig, interfaceIndex: interfaceIndex, serviceUID: serviceUID,
                bypassMarks: configuration.wireguardBypassMarks, logger: logger) : nil
        try autoRoute?.install(netlink)

        let dns = configuration.dns
        let upstreams = Set(
            (dns.nameserver + dns.defaultNameserver).compactMap { upstream -> InetEndpoint? in
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
            v4: environment["SLUICE_ICMP4_FD"].flatMap(Int32.init).map {
                OwnedDescriptor(takingOwnershipOfDescriptor: $0)
            },
            v6: environment["SLUICE_ICMP6_FD"].flatMap(Int32.init).map {
                OwnedDescriptor(takingOwnershipOfDescriptor: $0)
            },
            routingMark: tun.routingMark, tun: writer, logger: logger)
        let resolver = NameResolver(dns: dnsPeer)
        let table = RoutingTable.make(
            configuration, egress: egress, resolver: resolver, stateDirectory: stateDirectory, logger: logger)

        // Data flows one way: the dispatcher and the relay ask the router; it answers with values.
        let router = FlowRouter(
            table: table, names: dnsPeer,
            owners: FlowOwners(sockets: try? SocketOwners(), processes: supervisor), hijack: DNSOutbound(peer: dnsPeer),
            resolveForRules: { [resolver] name in
                resolver.resolveBlocking(name, ipv6: false, timeoutMilliseconds: 150).0
            },
            logger: logger)
        let relay = try TCPRelayLoop(
            logger: logger, router: router, nat: nat,
            lookupName: { name, ipv6, completion in resolver.resolve(name, ipv6: ipv6, completion: completion) },
            egress: egress, registry: registry, ports: ports)
        func stackAddresses(_ prefixes: [IPPrefix]) throws -> PacketDispatcher.StackAddresses? {
            guard let prefix = prefixes.first else { return nil }
            guard let fake = nextAddress(in: prefix) else {
                throw SystemError(
                    "tun address \(prefix): the prefix must leave room for a second address (at most /30 or /126)",
                    errno: EINVAL)
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
            device: device, netlink: netlink, autoRoute: autoRoute, egress: egress, dispatcher: dispatcher,
            router: router,
            relay: relay,
            udp: udp, icmp: icmp, dns: dnsPeer, resolver: resolver, nat: nat, registry: registry, ports: ports,
            markerPath: markerPath, addedAddresses: device?.createdBySluice == true ? [] : added,
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
}
