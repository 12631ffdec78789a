import Dispatch
import NIOCore
import NIOHTTP1
import SwitchboardCore

/// The HTTP phase of a WebSocket-port connection: answers plain HTTP (426 on `/ws`, 404
/// elsewhere), closes a connection that has not upgraded within `handshakeTimeout` (slow
/// headers), and gives the connection's place back to its address when it ends before the
/// upgrade (after it, the connection handler does).
final class HTTPFallbackHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let webSocketPath: String
    private let handshakeTimeout: TimeAmount
    private let limits: AddressLimits?
    private let addressKey: UInt64
    private var head: HTTPRequestHead?
    private var timeout: NIOScheduledCallback?
    /// Set when the upgrade hands the connection (and its place) to the connection handler.
    var handedOff = false

    init(webSocketPath: String, handshakeTimeout: TimeAmount, limits: AddressLimits?, addressKey: UInt64) {
        self.webSocketPath = webSocketPath
        self.handshakeTimeout = handshakeTimeout
        self.limits = limits
        self.addressKey = addressKey
    }

    func handlerAdded(context: ChannelHandlerContext) {
        timeout = try? context.eventLoop.scheduleCallback(in: handshakeTimeout,
                                                          handler: CloseChannel(channel: context.channel))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = nil
        if !handedOff {
            handedOff = true
            limits?.releaseConnection(addressKey)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            if path == webSocketPath {
                respond(context: context, status: .upgradeRequired, body: "this endpoint speaks WebSocket only\n",
                        extraHeaders: [("Upgrade", "websocket")])
            } else {
                respond(context: context, status: .notFound, body: "not found\n")
            }
        }
    }

    private func respond(context: ChannelHandlerContext, status: HTTPResponseStatus, body: String,
                         extraHeaders: [(String, String)] = []) {
        var headers = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8"),
                                   ("Content-Length", String(body.utf8.count)),
                                   ("Connection", "close")])
        headers.add(contentsOf: extraHeaders)
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
                      promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension HTTPFallbackHandler: Sendable {}

/// The admin port's HTTP: reads each request whole, its body capped at `AdminAPI.maxBodyBytes`
/// (past it the rest is read and dropped, then 413 and close), and writes what `AdminAPI`
/// answers. Keep-alive and pipelined requests are served in order.
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let api: AdminAPI
    private let isReady: @Sendable () -> Bool
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    /// Requests read and not answered yet, oldest first.
    private var waiting: [(HTTPRequestHead, AdminRequest)] = []
    private let offLoop: Bool

    init(gateway: Gateway, isReady: @escaping @Sendable () -> Bool) {
        self.api = AdminAPI(gateway: gateway)
        self.isReady = isReady
        self.offLoop = gateway.cluster != nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            let declared = head.headers.first(name: "content-length").flatMap { Int($0) } ?? 0
            tooLarge = declared > AdminAPI.maxBodyBytes
        case .body(let buffer):
            guard !tooLarge else { return }
            guard body.count + buffer.readableBytes <= AdminAPI.maxBodyBytes else {
                tooLarge = true
                body = []
                return
            }
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            self.head = nil
            if tooLarge {
                tooLarge = false
                respond(context: context, head: head, close: true, AdminAPI.bodyTooLarge)
                return
            }
            let request = AdminRequest(method: head.method, uri: head.uri, body: body)
            body = []
            waiting.append((head, request))
            if waiting.count == 1 { answerNext(context: context) }
        }
    }

    /// Answers queued requests in order. On one node the API answers at once; in a cluster its
    /// calls wait for the store, so they run on Dispatch, off the event loop, one at a time per
    /// connection (keep-alive replies stay in request order).
    private func answerNext(context: ChannelHandlerContext) {
        while let (head, request) = waiting.first {
            guard offLoop else {
                waiting.removeFirst()
                respond(context: context, head: head, close: !head.isKeepAlive, api.respond(to: request, ready: isReady()))
                continue
            }
            let api = self.api
            let ready = isReady()
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            DispatchQueue.global().async {
                let response = api.respond(to: request, ready: ready)
                loop.execute {
                    let (handler, context) = bound.value
                    handler.waiting.removeFirst()
                    handler.respond(context: context, head: head, close: !head.isKeepAlive, response)
                    handler.answerNext(context: context)
                }
            }
            return
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, close: Bool, _ response: AdminResponse) {
        var headers = HTTPHeaders([("Content-Type", response.contentType),
                                   ("Content-Length", String(response.body.count))])
        headers.add(contentsOf: response.headers)
        if close { headers.add(name: "Connection", value: "close") }
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status,
                                                                  headers: headers))), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))),
                      promise: nil)
        let done = context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        if close {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension AdminHTTPHandler: Sendable {}

/// Closes a channel when its time is up.
struct CloseChannel: NIOScheduledCallbackHandler, Sendable {
    let channel: any Channel

    func handleScheduledCallback(eventLoop: some EventLoop) {
        channel.close(promise: nil)
    }
}

/// Refuses a connection over its address's limit with a plain HTTP 429, then closes.
final class TooManyConnectionsHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var refused = false

    /// Added after a PROXY header, the channel was active before this handler: `channelActive`
    /// never comes, so refuse on the next turn (whichever comes first refuses).
    func handlerAdded(context: ChannelHandlerContext) {
        context.eventLoop.assumeIsolated().execute {
            if context.channel.isActive { self.refuse(context: context) }
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context: context)
    }

    private func refuse(context: ChannelHandlerContext) {
        guard !refused else { return }
        refused = true
        let body = "too many connections from this address\n"
        let response = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        context.writeAndFlush(Self.wrapOutboundOut(context.channel.allocator.buffer(string: response)))
            .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

@available(*, unavailable)
extension TooManyConnectionsHandler: Sendable {}
