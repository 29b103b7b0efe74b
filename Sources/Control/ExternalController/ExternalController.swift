import Foundation
import IPC
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// The Clash-compatible external controller (`external-controller`, `external-controller-unix`): SwiftNIO's
/// HTTP/1.1 server and WebSocket upgrader on one event-loop thread of sluiced. It never touches sluiced's state
/// directly: every question goes through the ``ControllerMailbox`` to sluiced's own thread.
package final class ExternalController: Sendable {
    private let core: ControllerCore
    private let group: MultiThreadedEventLoopGroup
    private let listeners = Locked<[any Channel]>([])
    private let logger: Logger
    /// Connections open now; beyond ``maxConnections`` new ones are closed at once, so that a flood of clients
    /// cannot take the descriptors sluiced needs to run its workers.
    private let open = Locked(0)
    static let maxConnections = 256

    package init(configuration: ControllerConfiguration, mailbox: ControllerMailbox, version: String, logger: Logger) {
        core = ControllerCore(mailbox: mailbox, settings: configuration, version: version)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.logger = logger
    }

    /// The mailbox the supervisor drains.
    package var mailbox: ControllerMailbox { core.mailbox }

    /// The level workers are currently asked to send log lines at (``LogSubscribe/off`` when nobody follows).
    package var followedLogPriority: UInt8 { core.logs.requested }

    /// A log line for `/logs` followers (sluiced's own, or a worker's `logRecord`).
    package func publishLog(source: String, priority: UInt8, text: String) {
        core.logs.publish(source: source, priority: priority, text: text)
    }

    /// Binds the configured listeners. Throws, naming the address, when one cannot be bound; the ones bound
    /// before stay up.
    package func start() throws {
        let settings = core.configuration
        if let listen = settings.listen, case .address(let ip) = listen.host {
            let channel = try bootstrap(requireSecret: true).bind(host: ip.description, port: Int(listen.port)).wait()
            listeners.withLock { $0.append(channel) }
            logger.info(
                "external controller: serving the Clash API on http://\(listen)\(settings.secret.isEmpty ? " (no secret)" : "")"
            )
        }
        if let path = settings.unixSocket {
            let channel = try bootstrap(requireSecret: false).bind(
                unixDomainSocketPath: path, cleanupExistingSocketFile: true
            ).wait()
            chmod(path, 0o660)
            listeners.withLock { $0.append(channel) }
            logger.info("external controller: serving the Clash API on unix:\(path)")
        }
        if let ui = settings.externalUI { logger.info("external controller: dashboard files from \(ui) under /ui/") }
    }

    /// Applies a reloaded configuration: the secret and CORS at once; a new address rebinds.
    package func update(_ configuration: ControllerConfiguration) throws {
        let old = core.configuration
        core.update(configuration)
        if old.listen != configuration.listen || old.unixSocket != configuration.unixSocket {
            closeListeners()
            try start()
        }
    }

    /// The bound TCP port (tests ask for port 0... and read it here).
    package var boundPorts: [Int] {
        listeners.withLock { $0.compactMap { $0.localAddress?.port } }
    }

    package func stop() {
        closeListeners()
        try? group.syncShutdownGracefully()
    }

    private func closeListeners() {
        let channels = listeners.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for channel in channels { try? channel.close().wait() }
    }

    private func bootstrap(requireSecret: Bool) -> ServerBootstrap {
        let core = self.core
        let open = self.open
        let logger = self.logger
        return ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 4)
            .childChannelInitializer { channel in
                let admitted = open.withLock { count -> Bool in
                    guard count < Self.maxConnections else { return false }
                    count += 1
                    return true
                }
                guard admitted else {
                    logger.warning(
                        "external controller: \(Self.maxConnections) connections open already; closing a new one")
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.withLock { $0 -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    // A connection that sends nothing for 60 s between requests is closed (streams are exempt).
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(60)))
                    let upgrader = NIOWebSocketServerUpgrader(
                        maxFrameSize: 1 << 16,
                        shouldUpgrade: { channel, head in
                            let request = APIRequest(head: head, body: [])
                            // Anything else is answered over HTTP (a 401, a 404) by APIHandler.
                            guard Self.socketStream(request) != nil, !requireSecret || core.authorized(request) else {
                                return channel.eventLoop.makeSucceededFuture(nil)
                            }
                            return channel.eventLoop.makeSucceededFuture(HTTPHeaders())
                        },
                        upgradePipelineHandler: { channel, head in
                            let request = APIRequest(head: head, body: [])
                            let kind = Self.socketStream(request) ?? .traffic
                            return channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(
                                    StreamSocketHandler(kind: kind, core: core))
                            }
                        })
                    let handler = APIHandler(core: core, requireSecret: requireSecret)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withServerUpgrade: (
                            upgraders: [upgrader],
                            completionHandler: { context in
                                context.pipeline.syncOperations.removeHandler(handler, promise: nil)
                            }
                        ))
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
    }

    /// The endpoints that stream over a WebSocket.
    static func socketStream(_ request: APIRequest) -> StreamKind? {
        guard request.segments.count == 1 else { return nil }
        switch request.segments[0] {
        case "traffic": return .traffic
        case "memory": return .memory
        case "connections":
            return .connections(intervalMilliseconds: request.query["interval"].flatMap { Int($0) } ?? 1000)
        case "logs":
            guard let priority = LogHub.priority(level: request.query["level"] ?? "info") else { return nil }
            return .logs(priority: priority, structured: request.query["format"] == "structured")
        default: return nil
        }
    }
}
