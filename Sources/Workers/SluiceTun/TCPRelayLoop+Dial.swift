import CSluice
import IPC
import Logging
import SluiceNet
import SluiceOutbounds
import SluiceRouting
import SluiceSniffing
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

// A connection's first hop: the outbound's plan, the name resolved off the loop's thread, the connect.

extension TCPRelayLoop {
    /// Asks the outbound for its plan and dials the first hop, after resolving it when it
    /// is a name (off this thread; the client waits, accepted, in the meantime).
    func begin(client: OwnedDescriptor, origin: Origin, route: Route) {
        let deadline = MonotonicClock.now + Self.establishTimeout
        let plan: TCPPlan
        do {
            plan = try route.outbound.planTCP(to: FlowTarget(endpoint: route.destination, name: route.name))
        } catch {
            refuse(client, origin: origin, "\(route.label): \(route.outbound.name): \(error)")
            return
        }
        switch plan.hop {
        case .endpoint(let hop):
            dial(client: client, origin: origin, route: route, plan: plan, hop: hop, deadline: deadline)
        case .name(let name, let port, let preference):
            let box = UncheckedBox((client, plan))
            lookupName(name, preference.prefersIPv6) { [self] addresses, error in
                post { [self] in
                    let (client, plan) = box.value
                    guard let address = preference.pick(addresses) else {
                        let why =
                            error.isEmpty
                            ? (addresses.isEmpty ? "no address" : "no address of the allowed family") : error
                        refuse(client, origin: origin, "\(route.label): cannot resolve \(name): \(why)")
                        return
                    }
                    dial(
                        client: client, origin: origin, route: route, plan: plan,
                        hop: InetEndpoint(address, port), deadline: deadline)
                }
            }
        }
    }

    /// Resets a client whose connection cannot be made.
    func refuse(_ client: OwnedDescriptor, origin: Origin, _ message: String) {
        logger.info("\(message)")
        InetSocket.setResetOnClose(client.rawValue)
        client.close()
        failed.add(1, ordering: .relaxed)
        finish(origin)
    }

    /// Tells the NAT table that a TUN connection's relay ended.
    func finish(_ origin: Origin) {
        if case .nat(let port, let ipv4) = origin { nat.markClosed(port: port, ipv4: ipv4, now: MonotonicClock.now) }
    }

    func dial(
        client: OwnedDescriptor, origin: Origin, route: Route, plan: TCPPlan, hop: InetEndpoint,
        deadline: UInt64
    ) {
        let server: OwnedDescriptor
        do {
            server = try route.outbound.connectTCP(to: hop)
        } catch {
            refuse(client, origin: origin, "\(route.label): \(route.outbound.name) failed: \(error)")
            return
        }
        let id = nextID
        nextID += 2
        let connection = Connection(
            id: id, origin: origin, client: Side(client), server: Side(server), plan: plan, upstream: route.upstream,
            label: route.label, outbound: route.outbound.name, deadline: deadline)
        connections[id] = connection
        active.add(1, ordering: .relaxed)
        if let registry {
            var facts = route.facts
            facts.remoteDestination = hop.address
            connection.tracked = registry.register(facts) { [weak self] in self?.requestClose(id) }
        }
        do {
            // Client: nothing until relaying. Server: writable = connected.
            try poll.add(client.rawValue, [], cookie: id)
            try poll.add(server.rawValue, .writable, cookie: id + 1)
        } catch {
            logger.error("\(route.label): epoll: \(error)")
            close(connection, reset: true)
        }
    }

    /// Resets connections whose connect or handshake outlived ``establishTimeout``.
    func expireEstablishing(now: UInt64) {
        for c in connections.values where c.phase != .relaying && now > c.deadline {
            let what = c.phase == .connecting ? "connect" : "proxy handshake"
            logger.info("\(c.label): \(c.outbound): \(what) timed out")
            failed.add(1, ordering: .relaxed)
            close(c, reset: true)
        }
    }
}
