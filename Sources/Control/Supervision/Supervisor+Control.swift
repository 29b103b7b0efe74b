import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceSystem
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// A client on the control socket (`sluiced status`, `reload`, `select`).
///
/// A slot is cheap to take, so it must be quick to lose: a client that has not said a valid hello within
/// ``ControlClient/deadline`` of connecting, or that leaves a frame half-sent that long, is dropped (see
/// ``Supervisor/expireClients(now:)``); one whose first frame is not a hello, or that closes, goes at once.
final class ControlClient {
    /// How long a client may take to say hello, and how long a frame may stay half-received.
    static let deadline: UInt64 = 3_000_000_000

    let channel: FrameChannel
    let credentials: PeerCredentials?
    var handshaken = false
    let connectedAt: UInt64
    /// Since when part of a frame has been waiting for the rest; nil between frames.
    var partialSince: UInt64?

    init(channel: FrameChannel, credentials: PeerCredentials?, now: UInt64) {
        self.channel = channel
        self.credentials = credentials
        self.connectedAt = now
    }

    var name: String { credentials?.description ?? "a client" }

    /// Why the client loses its slot at `now`, if it does.
    func expiry(now: UInt64) -> String? {
        let limit = Duration(nanoseconds: Self.deadline).humanReadable
        if !handshaken, MonotonicClock.elapsed(from: connectedAt, to: now) > Self.deadline {
            return "no hello within \(limit) of connecting"
        }
        if let partialSince, MonotonicClock.elapsed(from: partialSince, to: now) > Self.deadline {
            return "a frame stayed incomplete for \(limit)"
        }
        return nil
    }
}

extension Supervisor {
    /// The most clients connected at once; past it a newcomer is told so and closed.
    static let maxClients = 64

    /// Takes every pending connection. The listener is non-blocking: an accept that finds nothing (a client that
    /// connected and went before we got to it) returns EAGAIN and ends the round, so this never waits.
    func acceptClients() {
        guard let listener else { return }
        // Bounded per round, so a flood of connections cannot starve the workers' channels and timers.
        for _ in 0..<256 {
            let socket: OwnedDescriptor
            do {
                socket = try UnixSocket.accept(listener.rawValue, nonBlocking: true)
            } catch {
                switch error.errno {
                case EAGAIN, EWOULDBLOCK: return
                // The connection was gone before accept took it, or a transient shortage: try the next one.
                case ECONNABORTED, EINTR, EPROTO: continue
                default:
                    clientWarning("control socket: accept failed: \(error)")
                    return
                }
            }
            // A client that cannot drain its replies within 1 s is dropped, not waited on.
            let channel = FrameChannel(takingOwnershipOf: socket, maxPayload: 1 << 20, sendTimeoutMilliseconds: 1000)
            let credentials = try? channel.peerCredentials()
            let why: String? =
                if let credentials {
                    controlAccess.refusal(
                        credentials, supplementaryGroups: ControlAccess.supplementaryGroups(of: credentials.pid))
                } else {
                    "its credentials cannot be read (SO_PEERCRED)"
                }
            if let why {
                clientWarning("control socket: refused \(credentials?.description ?? "a client"): \(why)")
                refuse(channel, ErrorReport(code: .handshakeFailed, message: "permission denied: \(why)"))
                continue
            }
            if clients.count >= Self.maxClients {
                clientWarning(
                    "control socket: \(Self.maxClients) clients already connected; refusing \(credentials?.description ?? "a client")"
                )
                refuse(
                    channel,
                    ErrorReport(
                        code: .rejected,
                        message: "sluiced is busy: \(Self.maxClients) control clients are connected; try again"))
                continue
            }
            clients.append(ControlClient(channel: channel, credentials: credentials, now: MonotonicClock.now))
        }
    }

    /// Tells a client why it is not served (without waiting on it) and closes it.
    private func refuse(_ channel: FrameChannel, _ report: ErrorReport) {
        // A fresh socket's buffer takes this small frame at once: the send cannot wait.
        try? channel.send(.error(report), requestID: 0)
        channel.close()
    }

    /// A warning about a control client, within a budget: hostile clients can cause thousands a second.
    private func clientWarning(_ text: @autoclosure () -> String) {
        if controlClientLog.admit() { logger.warning("\(text())") }
    }

    /// Drops the clients whose slot has expired (no hello in time, a frame left half-sent).
    func expireClients(now: UInt64) {
        for client in clients {
            guard let why = client.expiry(now: now) else { continue }
            clientWarning("control client \(client.name): \(why); disconnecting it")
            drop(client)
        }
    }

    func serveClient(_ client: ControlClient) {
        while true {
            let received: ReceivedFrame
            do {
                guard let next = try client.channel.receive(timeoutMilliseconds: 0) else {
                    if !client.channel.isInsideFrame {
                        client.partialSince = nil
                    } else if client.partialSince == nil {
                        client.partialSince = MonotonicClock.now
                    }
                    return
                }
                received = next
            } catch {
                if error.code != .peerClosed {
                    clientWarning("control client \(client.name): \(error); disconnecting it")
                }
                drop(client)
                return
            }
            client.partialSince = nil
            let id = received.header.requestID
            let message: Message
            do {
                message = try received.frame.message()
            } catch {
                reply(client, .error(ErrorReport(error)), id: id)
                continue
            }
            if !client.handshaken {
                guard case .hello(let hello) = message else {
                    reply(client, .error(ErrorReport(code: .handshakeFailed, message: "send hello first")), id: id)
                    drop(client)
                    return
                }
                do {
                    let version = try hello.negotiate()
                    client.handshaken = true
                    reply(
                        client,
                        .helloAccept(
                            HelloAccept(
                                version: version, role: .supervisor, pid: UInt32(getpid()),
                                software: SluiceVersion.banner("sluiced"))), id: id)
                } catch {
                    reply(client, .error(ErrorReport(error)), id: id)
                    drop(client)
                    return
                }
                continue
            }
            switch message {
            case .statusRequest:
                do {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    reply(client, .statusReport(document: Array(try encoder.encode(statusDocument()))), id: id)
                } catch {
                    reply(client, .error(ErrorReport(code: .internalFailure, message: "\(error)")), id: id)
                }
            case .select, .groupStatusRequest, .connectionsRequest, .closeConnections, .delayTest:
                // The tun worker owns the groups and the connections: pass the request on; its answer comes back
                // to this client (forwardAnswer).
                guard let tun = slots[.tun], tun.handshaken, tun.channel != nil else {
                    reply(
                        client,
                        .error(
                            ErrorReport(
                                code: .rejected,
                                message: "the tun worker is not running, and it holds the proxy groups and connections")
                        ),
                        id: id)
                    continue
                }
                send(message, to: tun, purpose: .forward(client: ObjectIdentifier(client), requestID: id))
            case .reload(let request):
                logger.info(
                    "reload requested over the control socket by \(client.credentials?.description ?? "?"): \(request.reason)"
                )
                guard phase == .running else {
                    reply(client, .error(ErrorReport(code: .rejected, message: "sluiced is stopping")), id: id)
                    continue
                }
                if let refusal = apply(
                    ConfigLoader.load(contentsOfFile: options.configPath, catalog: options.proxyCatalog),
                    from: options.configPath)
                {
                    reply(
                        client,
                        .configResult(ConfigResult(generation: generation, outcome: .rejected, detail: refusal)), id: id
                    )
                } else {
                    reply(
                        client,
                        .configResult(ConfigResult(generation: generation, outcome: .applied, detail: statusLine())),
                        id: id)
                }
            default:
                reply(
                    client,
                    .error(
                        ErrorReport(
                            code: .unknownMessageType, message: "the control socket does not handle \(message.type)")),
                    id: id)
            }
        }
    }

    func reply(_ client: ControlClient, _ message: Message, id: UInt32) {
        do {
            try client.channel.send(message, requestID: id, isReply: true)
        } catch {
            drop(client)
        }
    }

    /// A worker's answer to a request a control client made.
    func forwardAnswer(_ message: Message, to client: ObjectIdentifier, requestID: UInt32) {
        guard let target = clients.first(where: { ObjectIdentifier($0) == client }) else { return }
        reply(target, message, id: requestID)
    }

    func drop(_ client: ControlClient) {
        client.channel.close()
        clients.removeAll { $0 === client }
    }
}
