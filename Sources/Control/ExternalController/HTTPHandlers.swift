import Foundation
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// One HTTP/1.1 connection: collects a request, checks access, routes it, writes the answer or runs a stream.
final class APIHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maxBody = 1 << 20

    private let core: ControllerCore
    /// False on the Unix socket: its file mode guards it (mihomo does the same).
    private let requireSecret: Bool
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    private var stream: StreamDriver?
    private var busy = false

    init(core: ControllerCore, requireSecret: Bool) {
        self.core = core
        self.requireSecret = requireSecret
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            tooLarge = false
        case .body(var buffer):
            if body.count + buffer.readableBytes > Self.maxBody {
                tooLarge = true
            } else if let bytes = buffer.readBytes(length: buffer.readableBytes) {
                body += bytes
            }
        case .end:
            guard let head, stream == nil, !busy else { return }
            self.head = nil
            handle(APIRequest(head: head, body: body), head: head, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stream?.stop()
        stream = nil
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Idle between requests (not while a stream or an answer is under way): close.
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read, stream == nil, !busy {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A WebSocket upgrade sluice declines (no secret, another path) is reported here before the request
        // comes on to be answered over HTTP (401, 404): not a reason to drop the connection.
        if error is NIOWebSocketUpgradeError { return }
        stream?.stop()
        stream = nil
        context.close(promise: nil)
    }

    private func handle(_ request: APIRequest, head: HTTPRequestHead, context: ChannelHandlerContext) {
        let origin = head.headers.first(name: "origin")
        if request.method == .OPTIONS {
            write(.noContent, head: head, extra: core.corsHeaders(origin: origin, preflight: true), context: context)
            return
        }
        if tooLarge {
            write(.error(.payloadTooLarge, "the body is larger than 1 MiB"), head: head, extra: [], context: context)
            return
        }
        if request.segments.first == "ui"
            || (request.segments.isEmpty && core.configuration.externalUI != nil
                && request.headers.first(name: "accept")?.contains("text/html") == true)
        {
            write(
                StaticFiles.serve(request, folder: core.configuration.externalUI), head: head, extra: [],
                context: context)
            return
        }
        let cors = core.corsHeaders(origin: origin, preflight: false)
        if requireSecret, !core.authorized(request) {
            write(.error(.unauthorized, "Unauthorized"), head: head, extra: cors, context: context)
            return
        }
        busy = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        core.route(request, on: context.eventLoop).whenComplete { result in
            let (handler, context) = bound.value
            handler.busy = false
            switch result {
            case .success(let reply): handler.write(reply, head: head, extra: cors, context: context)
            case .failure(let error):
                handler.write(.error(.internalServerError, "\(error)"), head: head, extra: cors, context: context)
            }
        }
    }

    private func write(
        _ reply: APIReply, head: HTTPRequestHead, extra: [(String, String)], context: ChannelHandlerContext
    ) {
        var headers = HTTPHeaders(extra)
        let keepAlive = head.isKeepAlive
        let status: HTTPResponseStatus
        var payload: [UInt8] = []
        switch reply {
        case .json(let s, let bytes):
            status = s
            payload = bytes
            headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        case .noContent:
            status = .noContent
        case .file(let bytes, let type):
            status = .ok
            payload = bytes
            headers.add(name: "Content-Type", value: type)
        case .redirect(let location):
            status = .movedPermanently
            headers.add(name: "Location", value: location)
        case .stream(let kind):
            startStream(kind, head: head, headers: headers, context: context)
            return
        }
        if status != .noContent { headers.add(name: "Content-Length", value: String(payload.count)) }
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil)
        if !payload.isEmpty {
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: payload)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) } }
    }

    /// A chunked response that lasts until the client goes away.
    private func startStream(
        _ kind: StreamKind, head: HTTPRequestHead, headers: HTTPHeaders, context: ChannelHandlerContext
    ) {
        var headers = headers
        headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        headers.add(name: "Cache-Control", value: "no-cache")
        context.writeAndFlush(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil
        )
        let channel = context.channel
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let driver = StreamDriver(kind: kind, core: core, loop: context.eventLoop) { line in
            // A client that does not read is not buffered for: lines are dropped until it catches up.
            guard channel.isWritable else { return }
            let buffer = channel.allocator.buffer(string: line + "\n")
            channel.writeAndFlush(bound.value.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        stream = driver
        driver.start()
    }
}

/// A WebSocket on a streaming endpoint: the same documents as text frames; pings answered, close honoured.
final class StreamSocketHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let kind: StreamKind
    private let core: ControllerCore
    private var driver: StreamDriver?

    init(kind: StreamKind, core: ControllerCore) {
        self.kind = kind
        self.core = core
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let driver = StreamDriver(kind: kind, core: core, loop: context.eventLoop) { text in
            guard channel.isWritable else { return }
            let frame = WebSocketFrame(fin: true, opcode: .text, data: channel.allocator.buffer(string: text))
            channel.writeAndFlush(bound.value.wrapOutboundOut(frame), promise: nil)
        }
        self.driver = driver
        driver.start()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        driver?.stop()
        driver = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        driver?.stop()
        driver = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .connectionClose:
            driver?.stop()
            driver = nil
            var reply = frame.unmaskedData
            let close = WebSocketFrame(
                fin: true, opcode: .connectionClose,
                data: reply.readSlice(length: min(2, reply.readableBytes)) ?? ByteBuffer())
            context.writeAndFlush(wrapOutboundOut(close)).whenComplete { [channel = context.channel] _ in
                channel.close(promise: nil)
            }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        default:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        driver?.stop()
        driver = nil
        context.close(promise: nil)
    }
}

/// `external-ui`: files under the folder, `index.html` for directories, nothing outside it.
enum StaticFiles {
    static let types: [String: String] = [
        "html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
        "mjs": "text/javascript; charset=utf-8",
        "css": "text/css; charset=utf-8", "json": "application/json", "svg": "image/svg+xml", "png": "image/png",
        "ico": "image/x-icon", "jpg": "image/jpeg", "webp": "image/webp", "woff": "font/woff", "woff2": "font/woff2",
        "ttf": "font/ttf", "txt": "text/plain; charset=utf-8", "webmanifest": "application/manifest+json",
        "map": "application/json", "wasm": "application/wasm",
    ]

    static func serve(_ request: APIRequest, folder: String?) -> APIReply {
        guard request.method == .GET || request.method == .HEAD else {
            return .error(.methodNotAllowed, "Method not allowed")
        }
        guard let folder else { return .error(.notFound, "external-ui is not configured") }
        // `/` and `/ui` go to `/ui/` so that relative asset paths resolve.
        if request.segments.isEmpty || (request.segments == ["ui"] && !request.rawPath.hasSuffix("/")) {
            return .redirect("/ui/")
        }
        let inner = request.segments.dropFirst()
        guard !inner.contains(where: { $0 == ".." || $0.contains("\0") || $0.hasPrefix(".") }) else {
            return .notFound
        }
        var path = ([folder] + inner).joined(separator: "/")
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            path += "/index.html"
        }
        // A single-page app's own routes fall back to its index.
        if !FileManager.default.fileExists(atPath: path) {
            let last = inner.last ?? ""
            guard !last.contains(".") else { return .notFound }
            path = folder + "/index.html"
        }
        guard let data = FileManager.default.contents(atPath: path) else { return .notFound }
        let ext = (path as NSString).pathExtension.lowercased()
        return .file(Array(data), contentType: types[ext] ?? "application/octet-stream")
    }
}
