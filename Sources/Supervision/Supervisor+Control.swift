import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceSystem
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// A client on the control socket (`sluiced status`, later the API).
final class ControlClient {
    let channel: FrameChannel
    let credentials: PeerCredentials?
    var handshaken = false

    init(channel: FrameChannel, credentials: PeerCredentials?) {
        self.channel = channel
        self.credentials = credentials
    }
}

extension Supervisor {
    func acceptClients() {
        guard let listener else { return }
        while true {
            let socket: OwnedDescriptor
            do {
                socket = try UnixSocket.accept(listener.rawValue, nonBlocking: true)
            } catch {
                if error.errno != EAGAIN { logger.warning("control socket: \(error)") }
                return
            }
            // A client that cannot drain its replies within 1 s is dropped, not waited on.
            let channel = FrameChannel(takingOwnershipOf: socket, maxPayload: 1 << 20, sendTimeoutMilliseconds: 1000)
            let credentials = try? channel.peerCredentials()
            let why: String? =
                if let credentials {
                    controlAccess.refusal(credentials, supplementaryGroups: ControlAccess.supplementaryGroups(of: credentials.pid))
                } else {
                    "its credentials cannot be read (SO_PEERCRED)"
                }
            if let why {
                logger.warning("control socket: refused \(credentials?.description ?? "a client"): \(why)")
                try? channel.send(.error(ErrorReport(code: .handshakeFailed, message: "permission denied: \(why)")), requestID: 0)
                channel.close()
                continue
            }
            if clients.count >= 64 {
                logger.warning("control socket: 64 clients already connected; refusing \(credentials?.description ?? "a client")")
                channel.close()
                continue
            }
            clients.append(ControlClient(channel: channel, credentials: credentials))
            // Non-blocking accept: poll once more so a burst of clients is taken in one go.
            if (try? Descriptors.waitReadable(listener.rawValue, timeoutMilliseconds: 0)) != true { return }
        }
    }

    func serveClient(_ client: ControlClient) {
        while true {
            let received: ReceivedFrame
            do {
                guard let next = try client.channel.receive(timeoutMilliseconds: 0) else { return }
                received = next
            } catch {
                if error.code != .peerClosed {
                    logger.warning("control client \(client.credentials?.description ?? "?"): \(error); disconnecting it")
                }
                drop(client)
                return
            }
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
                    reply(client, .helloAccept(HelloAccept(version: version, role: .supervisor, pid: UInt32(getpid()), software: SluiceVersion.banner("sluiced"))), id: id)
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
                        .error(ErrorReport(code: .rejected, message: "the tun worker is not running, and it holds the proxy groups and connections")),
                        id: id)
                    continue
                }
                send(message, to: tun, purpose: .forward(client: ObjectIdentifier(client), requestID: id))
            case .reload(let request):
                logger.info("reload requested over the control socket by \(client.credentials?.description ?? "?"): \(request.reason)")
                guard phase == .running else {
                    reply(client, .error(ErrorReport(code: .rejected, message: "sluiced is stopping")), id: id)
                    continue
                }
                if let refusal = apply(ConfigLoader.load(contentsOfFile: options.configPath), from: options.configPath) {
                    reply(client, .configResult(ConfigResult(generation: generation, outcome: .rejected, detail: refusal)), id: id)
                } else {
                    reply(client, .configResult(ConfigResult(generation: generation, outcome: .applied, detail: statusLine())), id: id)
                }
            default:
                reply(client, .error(ErrorReport(code: .unknownMessageType, message: "the control socket does not handle \(message.type)")), id: id)
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

    private func drop(_ client: ControlClient) {
        client.channel.close()
        clients.removeAll { $0 === client }
    }
}
