import CSluice
import SluiceNet
import SluiceRouting
import SluiceSniffing
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// An accepted TUN connection whose route waits for the router: for its first bytes (sniffed, at most ``sniffWait``)
/// and/or for its process (looked up off this thread).
///
/// While sniffing it is polled edge-triggered for readability: it reads nothing (MSG_PEEK), so a level-triggered poll
/// would report the same bytes again and again while a ClientHello is still incomplete.
final class DeferredClient {
    let client: OwnedDescriptor
    let natPort: UInt16
    let ipv4: Bool
    /// What the router said on the SYN.
    let flow: DeferredFlow
    let source: InetEndpoint
    let destination: InetEndpoint
    let kinds: [Sniffing.Kind]
    let deadline: UInt64

    init(
        client: OwnedDescriptor, natPort: UInt16, ipv4: Bool, flow: DeferredFlow, source: InetEndpoint,
        destination: InetEndpoint, kinds: [Sniffing.Kind], deadline: UInt64
    ) {
        self.client = client
        self.natPort = natPort
        self.ipv4 = ipv4
        self.flow = flow
        self.source = source
        self.destination = destination
        self.kinds = kinds
        self.deadline = deadline
    }

    var origin: TCPRelayLoop.Origin { .nat(port: natPort, ipv4: ipv4) }
}

/// Sniffing, and routes decided after accept.
extension TCPRelayLoop {
    /// Waits for the client's first bytes, without reading them (they stay in the socket
    /// for the server), at most ``sniffWait``.
    func startSniffing(_ waiting: DeferredClient) {
        let id = nextID
        nextID += 2
        sniffing[id] = waiting
        do {
            try poll.add(waiting.client.rawValue, [.readable, .readHangup, .edgeTriggered], cookie: id)
        } catch {
            logger.error("sniffing: epoll: \(error)")
            sniffing[id] = nil
            refuse(waiting.client, origin: waiting.origin, "sniffing: \(error)")
            return
        }
        // Bytes may have arrived with the handshake already.
        sniff(id, waiting, final: false)
    }

    /// Peeks at what the client sent and sniffs it. Decides when a name is found, when the
    /// bytes cannot give one, when the client is done sending, or when `final` (the wait
    /// is over); otherwise keeps waiting.
    func sniff(_ id: UInt64, _ waiting: DeferredClient, final: Bool) {
        let limit = min(Sniffing.maximumBytes, scratch.count)
        let n = csluice_recv(waiting.client.rawValue, scratch.baseAddress, limit, CInt(MSG_PEEK | MSG_DONTWAIT))
        var sniffed: (name: String, kind: Sniffing.Kind)?
        var timedOut = false
        if n > 0 {
            let (result, kind) = Sniffing.sniff(UnsafeRawBufferPointer(rebasing: scratch[0..<n]), kinds: waiting.kinds)
            switch result {
            case .name(let name): sniffed = kind.map { (name, $0) }
            case .needMoreBytes:
                if !final && n < limit { return }
                timedOut = final
            case .noName, .notThisProtocol: break
            }
        } else if n == -EAGAIN || n == -EINTR {
            if !final { return }
            timedOut = true
        } else if n < 0 {
            // The client reset or failed meanwhile.
            sniffing[id] = nil
            poll.remove(waiting.client.rawValue)
            refuse(waiting.client, origin: waiting.origin, "sniffing: the client went away")
            return
        }
        // n == 0: the client closed its side without a word; decide without a name.
        sniffing[id] = nil
        poll.remove(waiting.client.rawValue)
        decideDeferred(waiting, sniffed: sniffed, timedOut: timedOut)
    }

    /// Asks the router for the route of a client whose rules waited. When it must look up the client's process, the
    /// answer comes on a lookup lane and is posted back to this thread: the loop never waits for it (the client
    /// waits, accepted, unpolled, and is reset if the loop stops meanwhile).
    func decideDeferred(_ waiting: DeferredClient, sniffed: (name: String, kind: Sniffing.Kind)?, timedOut: Bool) {
        let box = UncheckedBox(waiting)
        let answer = router.decide(
            waiting.flow, source: waiting.source, destination: waiting.destination, sniffed: sniffed, timedOut: timedOut
        ) { [self] route in
            post { [self] in endSniffing(box.value, route: route) }
        }
        if case .now(let route) = answer { endSniffing(waiting, route: route) }
    }

    /// Goes on with a client whose route is decided: relays it, or resets it when `route` is nil.
    func endSniffing(_ waiting: DeferredClient, route: Route?) {
        guard let route else {
            InetSocket.setResetOnClose(waiting.client.rawValue)
            waiting.client.close()
            failed.add(1, ordering: .relaxed)
            finish(waiting.origin)
            return
        }
        begin(client: waiting.client, origin: waiting.origin, route: route)
    }

    /// Decides the clients whose wait is over with what they sent so far.
    func expireSniffing(now: UInt64) {
        for (id, waiting) in sniffing where now >= waiting.deadline { sniff(id, waiting, final: true) }
    }
}
