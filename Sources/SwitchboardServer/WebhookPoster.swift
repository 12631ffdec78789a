import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Posts the events of one webhook lane, one at a time, on one event loop, until the lane is
/// empty. Each POST has its own connection (`Connection: close`) and one deadline covering the
/// connect, the request and the response; a receiver that does not answer in time is cut off.
///
/// Lives on its event loop only; nothing here blocks it.
final class WebhookPoster {
    private let webhook: StateWebhook
    private let lane: Int
    private let eventLoop: any EventLoop
    private let timeout: TimeAmount
    /// The POST in flight: its channel (once connected) and its end.
    private var channel: (any Channel)?
    private var pending: EventLoopPromise<HTTPResponseStatus>?
    /// Numbers the POSTs, so that what a finished one's channel reports late is ignored.
    private var postNumber = 0

    init(webhook: StateWebhook, lane: Int, eventLoop: any EventLoop, timeout: TimeAmount) {
        self.webhook = webhook
        self.lane = lane
        self.eventLoop = eventLoop
        self.timeout = timeout
    }

    func start() {
        next()
    }

    private func next() {
        guard let event = webhook.take(lane: lane) else { return }
        guard let target = WebhookTarget(event.url) else {
            webhook.logger.debug("state callback URL is not usable", metadata: ["webhook.url": "\(event.url)"])
            webhook.posted(.failed)
            eventLoop.assumeIsolated().execute { self.next() }
            return
        }
        post(event, to: target).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let status) where (200..<300).contains(status.code):
                self.webhook.posted(.ok)
            case .success(let status):
                self.webhook.logger.debug("state callback refused", metadata: [
                    "webhook.host": "\(target.host)", "http.status": "\(status.code)",
                ])
                self.webhook.posted(.failed)
            case .failure(let error as WebhookError) where error == .timedOut:
                self.webhook.logger.debug("state callback timed out", metadata: ["webhook.host": "\(target.host)"])
                self.webhook.posted(.timedOut)
            case .failure(let error):
                self.webhook.logger.debug("state callback failed", metadata: [
                    "webhook.host": "\(target.host)", "error": "\(error)",
                ])
                self.webhook.posted(.failed)
                if error is EventLoopError {
                    // The loop is shutting down: nothing more can be posted from it.
                    self.webhook.abandon(lane: self.lane)
                    return
                }
            }
            // A fresh loop turn per event: a run of instant failures must not grow the stack.
            self.eventLoop.assumeIsolated().execute { self.next() }
        }
    }

    private func post(_ event: StateWebhook.Event, to target: WebhookTarget) -> EventLoopFuture<HTTPResponseStatus> {
        let promise = eventLoop.makePromise(of: HTTPResponseStatus.self)
        pending = promise
        postNumber &+= 1
        let number = postNumber
        let timer = eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.finish(.failure(WebhookError.timedOut), post: number)
        }
        let uri = target.requestURI(sdkAppID: event.sdkAppID, optPlatform: event.optPlatform)
        let body = event.body
        connect(to: target, post: number).assumeIsolated().whenComplete { result in
            switch result {
            case .failure(let error):
                self.finish(.failure(error), post: number)
            case .success(let channel):
                guard self.pending != nil, self.postNumber == number else {
                    channel.close(promise: nil)  // timed out while connecting
                    return
                }
                self.channel = channel
                do {
                    let handler = try channel.pipeline.syncOperations.handler(type: WebhookResponseHandler.self)
                    handler.send(target: target, uri: uri, body: body)
                } catch {
                    self.finish(.failure(error), post: number)
                }
            }
        }
        return promise.futureResult.always { _ in timer.cancel() }
    }

    private func connect(to target: WebhookTarget, post number: Int) -> EventLoopFuture<any Channel> {
        let tls: NIOSSLContext?
        if target.tls {
            do {
                tls = try WebhookTLS.context()
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
        } else {
            tls = nil
        }
        let poster = NIOLoopBound(self, eventLoop: eventLoop)
        let ipAddress = try? SocketAddress(ipAddress: target.host, port: target.port)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        try sync.addHandler(NIOSSLClientHandler(context: tls,
                                                                serverHostname: ipAddress == nil ? target.host : nil))
                    }
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(WebhookResponseHandler(poster: poster.value, post: number))
                }
            }
        // An address needs no resolver: the resolver's thread reports back to the loop even after
        // the loop has shut down.
        if let ipAddress { return bootstrap.connect(to: ipAddress) }
        return bootstrap.connect(host: target.host, port: target.port)
    }

    /// Ends POST `number` if it is still in flight: closes its connection, completes its promise.
    fileprivate func finish(_ result: Result<HTTPResponseStatus, any Error>, post number: Int) {
        guard number == postNumber, let promise = pending else { return }
        pending = nil
        channel?.close(promise: nil)
        channel = nil
        promise.completeWith(result)
    }
}

@available(*, unavailable)
extension WebhookPoster: Sendable {}

enum WebhookError: Error, Hashable {
    case timedOut
    case connectionClosed
}

/// The client side of one POST: writes the request, reports the response's status at its end.
private final class WebhookResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private var poster: WebhookPoster?
    private let post: Int
    private var context: ChannelHandlerContext?
    private var status: HTTPResponseStatus?

    init(poster: WebhookPoster, post: Int) {
        self.poster = poster
        self.post = post
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        done(.failure(WebhookError.connectionClosed))
    }

    func send(target: WebhookTarget, uri: String, body: [UInt8]) {
        guard let context else { return }
        let headers = HTTPHeaders([
            ("Host", target.hostHeader),
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", String(body.count)),
            ("Connection", "close"),
            ("User-Agent", "Switchboard"),
        ])
        context.write(Self.wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: uri,
                                                                 headers: headers))), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))),
                      promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
        case .body:
            break
        case .end:
            if let status { done(.success(status)) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        done(.failure(WebhookError.connectionClosed))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done(.failure(error))
        context.close(promise: nil)
    }

    private func done(_ result: Result<HTTPResponseStatus, any Error>) {
        guard let poster else { return }
        self.poster = nil
        poster.finish(result, post: post)
    }
}

@available(*, unavailable)
extension WebhookResponseHandler: Sendable {}

/// One client TLS context per process for `https://` callbacks (system trust roots), made on
/// first use: making one reads the trust store.
private enum WebhookTLS {
    private static let shared = Mutex<NIOSSLContext?>(nil)

    static func context() throws -> NIOSSLContext {
        try shared.withLock { cached in
            if let cached { return cached }
            let context = try NIOSSLContext(configuration: .makeClientConfiguration())
            cached = context
            return context
        }
    }
}
