import NIOCore
import NIOHTTP1

/// Answers plain HTTP on the WebSocket port: a request that did not upgrade gets 426 on `/ws`
/// and 404 elsewhere.
final class HTTPFallbackHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let webSocketPath: String
    private var head: HTTPRequestHead?

    init(webSocketPath: String) {
        self.webSocketPath = webSocketPath
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

/// The admin port's HTTP: health for now (the Tencent-compatible admin API grows here).
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let gateway: Gateway
    private let isReady: @Sendable () -> Bool
    private var head: HTTPRequestHead?

    init(gateway: Gateway, isReady: @escaping @Sendable () -> Bool) {
        self.gateway = gateway
        self.isReady = isReady
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
            switch (head.method, path) {
            case (.GET, "/healthz"):
                respond(context: context, head: head, status: .ok, body: "ok\n")
            case (.GET, "/readyz"):
                let ready = isReady()
                respond(context: context, head: head, status: ready ? .ok : .serviceUnavailable,
                        body: ready ? "ready\n" : "not ready\n")
            default:
                respond(context: context, head: head, status: .notFound, body: "not found\n")
            }
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, body: String) {
        let keepAlive = head.isKeepAlive
        var headers = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8"),
                                   ("Content-Length", String(body.utf8.count))])
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                      promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let done = context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension AdminHTTPHandler: Sendable {}
