public import NIOCore
import NIOHTTP1
import NIOPosix
public import NIOSSL
import NIOWebSocket

/// Opens a client WebSocket connection to a Switchboard server: TCP, the HTTP/1.1 upgrade on
/// `GET /ws`, then the caller's handler receives `WebSocketFrame`s. Frames the handler writes must
/// be masked (RFC 6455 §5.3): build them with `WebSocketFrame.clientText(_:allocator:)`.
public enum WebSocketConnector {
    public struct UpgradeFailed: Error, CustomStringConvertible {
        public let description: String
    }

    /// - Parameters:
    ///   - localAddress: a source address to bind (load tests spread over 127.0.0.x).
    ///   - connectTimeout: bounds the TCP connect, the TLS handshake and the upgrade together
    ///     (fails with `ChannelError.connectTimeout`).
    ///   - tls: for `wss://`: the TLS client context; `serverHostname` is sent (SNI, unless an IP
    ///     address) and verified.
    ///   - makeHandlers: called on the channel's loop after the upgrade; the handlers it returns
    ///     are added to the pipeline in order.
    /// - Returns: the channel, once the upgrade is done.
    public static func connect(
        host: String, port: Int, path: String = "/ws", group: any EventLoopGroup,
        localAddress: SocketAddress? = nil, maxFrameSize: Int = 1 << 20,
        connectTimeout: TimeAmount = .seconds(10),
        tls: NIOSSLContext? = nil, serverHostname: String? = nil,
        makeHandlers: @escaping @Sendable (any Channel) throws -> [any ChannelHandler]
    ) -> EventLoopFuture<any Channel> {
        let upgraded = group.any().makePromise(of: Void.self)
        var bootstrap = ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        if let localAddress {
            bootstrap = bootstrap.bind(to: localAddress)
        }
        return bootstrap.channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                // A server (or a path) that accepts the connection but never answers the upgrade
                // must not hold the caller forever.
                let deadline = channel.eventLoop.scheduleTask(in: connectTimeout) {
                    upgraded.fail(ChannelError.connectTimeout(connectTimeout))
                    channel.close(promise: nil)
                }
                upgraded.futureResult.whenComplete { _ in deadline.cancel() }
                if let tls {
                    // An IP address cannot go in SNI; without a name NIOSSL verifies the peer's address.
                    let name = serverHostname.flatMap { (try? SocketAddress(ipAddress: $0, port: 0)) == nil ? $0 : nil }
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: name))
                }
                let request = UpgradeRequestHandler(host: host, port: port, path: path, failed: upgraded)
                let boundRequest = NIOLoopBound(request, eventLoop: channel.eventLoop)
                let upgrader = NIOWebSocketClientUpgrader(
                    maxFrameSize: maxFrameSize,
                    automaticErrorHandling: false,
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            // It sits where frames will flow: out of the way first.
                            channel.pipeline.syncOperations.removeHandler(boundRequest.value, promise: nil)
                            for handler in try makeHandlers(channel) {
                                try channel.pipeline.syncOperations.addHandler(handler)
                            }
                            upgraded.succeed(())
                        }
                    })
                try channel.pipeline.syncOperations.addHTTPClientHandlers(
                    withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                try channel.pipeline.syncOperations.addHandler(request)
            }
        }
        .connect(host: host, port: port)
        .flatMap { channel in
            upgraded.futureResult.map { channel }.flatMapError { error in
                channel.close(promise: nil)
                return channel.eventLoop.makeFailedFuture(error)
            }
        }
    }
}

extension WebSocketFrame {
    /// A masked text frame, as a client must send.
    public static func clientText(_ bytes: some Collection<UInt8>, allocator: ByteBufferAllocator) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: allocator.buffer(bytes: bytes))
    }
}

/// Sends the upgrade request once the TCP connection is up; fails the upgrade on any other answer.
private final class UpgradeRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let host: String
    private let port: Int
    private let path: String
    private let failed: EventLoopPromise<Void>

    init(host: String, port: Int, path: String, failed: EventLoopPromise<Void>) {
        self.host = host
        self.port = port
        self.path = path
        self.failed = failed
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(host):\(port)")
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Reached only when the server answered without upgrading.
        if case .head(let head) = Self.unwrapInboundIn(data) {
            failed.fail(WebSocketConnector.UpgradeFailed(description: "server answered \(head.status.code) instead of upgrading"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failed.fail(WebSocketConnector.UpgradeFailed(description: "connection closed before the upgrade"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failed.fail(error)
        context.close(promise: nil)
    }
}
