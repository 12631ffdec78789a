import Logging
import NIOCore
import NIOPosix

/// A dedicated pub/sub connection.
///
/// On every (re)connect it sends AUTH (if the URL has a password) and SUBSCRIBEs to `channels`;
/// it counts as subscribed once Redis has confirmed every channel. Each message is handed to
/// `onMessage` on the connection's event loop, in the order Redis sends them. It reconnects
/// with the same backoff as `RedisClient` until `close()`. Messages published while it is
/// disconnected are lost (that is how Redis pub/sub works).
///
/// A PING every `healthCheckInterval` finds a server that hangs without closing the connection:
/// if nothing at all arrives for an interval after a PING, it reconnects. The interval also
/// bounds connecting and subscribing.
public final class RedisSubscriber: Sendable {
    public let url: RedisURL
    public let channels: [String]
    private let core: RedisConnectionCore

    public init(url: RedisURL, group: any EventLoopGroup, channels: [String], logger: Logger,
                healthCheckInterval: TimeAmount = .seconds(5),
                onMessage: @escaping @Sendable (_ channel: String, _ payload: ByteBuffer) -> Void,
                onStateChange: @escaping @Sendable (Bool) -> Void = { _ in }) {
        var logger = logger
        logger[metadataKey: "redis"] = "\(url)"
        logger[metadataKey: "redis_role"] = "subscriber"
        var unique: [String] = []
        for channel in channels where !unique.contains(channel) {
            unique.append(channel)
        }
        let subscribed = unique
        self.url = url
        self.channels = subscribed
        let handlerLogger = logger
        self.core = RedisConnectionCore(
            url: url, eventLoop: group.next(), logger: logger, connectTimeout: healthCheckInterval,
            configure: { channel in
                try channel.pipeline.syncOperations.addHandlers(
                    ByteToMessageHandler(RESPDecoder()),
                    RedisPubSubHandler(url: url, channels: subscribed, healthCheckInterval: healthCheckInterval,
                                       logger: handlerLogger, onMessage: onMessage))
            },
            handshake: { channel in
                let promise = channel.eventLoop.makePromise(of: Void.self)
                channel.writeAndFlush(RedisPubSubHandler.Start(subscribed: promise)).whenFailure { error in
                    promise.fail(error)
                }
                return promise.futureResult
            },
            onStateChange: onStateChange)
    }

    /// The loop the connection lives on; `onMessage` and `onStateChange` run on it.
    public var eventLoop: any EventLoop { core.eventLoop }

    public func start() {
        core.start()
    }

    /// True while connected and subscribed to every channel.
    public var isSubscribed: Bool { core.isReady }

    /// Stops reconnecting and closes the connection.
    public func close() -> EventLoopFuture<Void> {
        core.close()
    }
}

/// Runs the subscription on one connection: AUTH + SUBSCRIBE, then messages and health PINGs.
final class RedisPubSubHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = Start
    typealias OutboundOut = ByteBuffer

    /// Written by the connection core once connected; `subscribed` completes when every
    /// channel is confirmed, or fails if the connection ends first.
    struct Start: Sendable {
        let subscribed: EventLoopPromise<Void>
    }

    private let url: RedisURL
    private let channels: [String]
    private let healthCheckInterval: TimeAmount
    private let logger: Logger
    private let onMessage: @Sendable (String, ByteBuffer) -> Void

    private var subscribedPromise: EventLoopPromise<Void>?
    private var awaitingAuth = false
    private var unconfirmed: Set<String> = []
    private var isSubscribed = false
    /// Something was sent that must be answered, and nothing has arrived since.
    private var awaitingReply = false
    private var timer: Scheduled<Void>?
    private var finished = false

    init(url: RedisURL, channels: [String], healthCheckInterval: TimeAmount, logger: Logger,
         onMessage: @escaping @Sendable (String, ByteBuffer) -> Void) {
        self.url = url
        self.channels = channels
        self.healthCheckInterval = healthCheckInterval
        self.logger = logger
        self.onMessage = onMessage
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let start = unwrapOutboundIn(data)
        guard !finished, subscribedPromise == nil, !isSubscribed else {
            start.subscribed.fail(RedisError.unavailable("connection closed"))
            promise?.fail(RedisError.unavailable("connection closed"))
            return
        }
        subscribedPromise = start.subscribed
        var bytes = context.channel.allocator.buffer(capacity: 64)
        if let password = url.password {
            awaitingAuth = true
            if let user = url.user {
                bytes.writeRESPCommand(["AUTH", .string(user), .string(password)])
            } else {
                bytes.writeRESPCommand(["AUTH", .string(password)])
            }
        }
        if !channels.isEmpty {
            unconfirmed = Set(channels)
            bytes.writeRESPCommand([.string("SUBSCRIBE")] + channels.map { .string($0) })
        }
        if bytes.readableBytes > 0 {
            awaitingReply = true
            context.writeAndFlush(wrapOutboundOut(bytes), promise: promise)
        } else {
            promise?.succeed()
        }
        checkSubscribed(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        awaitingReply = false
        let value = unwrapInboundIn(data)
        switch value {
        case .simpleString:
            // +OK to AUTH; +PONG if there are no channels (not in subscribed mode).
            if awaitingAuth {
                awaitingAuth = false
                checkSubscribed(context: context)
            }
        case .error(let message):
            fail(context: context, error: .server(message))
        case .array(let elements?) where !elements.isEmpty:
            handlePush(context: context, elements)
        default:
            logger.debug("ignoring an unexpected pub/sub reply", metadata: ["reply": "\(value)"])
        }
    }

    private func handlePush(context: ChannelHandlerContext, _ elements: [RESPValue]) {
        switch elements[0].string?.lowercased() {
        case "message":
            guard elements.count == 3, let channel = elements[1].string, let payload = elements[2].bytes else {
                logger.debug("ignoring a malformed pub/sub message", metadata: ["reply": "\(RESPValue.array(elements))"])
                return
            }
            var buffer = context.channel.allocator.buffer(capacity: payload.count)
            buffer.writeBytes(payload)
            onMessage(channel, buffer)
        case "subscribe":
            if elements.count >= 2, let channel = elements[1].string {
                unconfirmed.remove(channel)
                checkSubscribed(context: context)
            }
        case "pong", "unsubscribe":
            break
        default:
            logger.debug("ignoring an unexpected pub/sub reply", metadata: ["reply": "\(RESPValue.array(elements))"])
        }
    }

    private func checkSubscribed(context: ChannelHandlerContext) {
        guard let promise = subscribedPromise, !awaitingAuth, unconfirmed.isEmpty else { return }
        subscribedPromise = nil
        isSubscribed = true
        scheduleHealthCheck(context: context)
        promise.succeed()
    }

    private func scheduleHealthCheck(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: healthCheckInterval) {
            self.healthCheck(context: context)
        }
    }

    private func healthCheck(context: ChannelHandlerContext) {
        timer = nil
        guard !finished else { return }
        if awaitingReply {
            logger.warning("Redis did not answer a PING on the pub/sub connection; reconnecting")
            fail(context: context, error: .timeout)
            return
        }
        awaitingReply = true
        var bytes = context.channel.allocator.buffer(capacity: 16)
        bytes.writeRESPCommand(["PING"])
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        scheduleHealthCheck(context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let redisError = (error as? RedisError) ?? .unavailable("connection error: \(error)")
        fail(context: context, error: redisError)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.unavailable("connection lost"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish(.unavailable("connection closed"))
    }

    private func fail(context: ChannelHandlerContext, error: RedisError) {
        if isSubscribed {
            logger.warning("closing the pub/sub connection", metadata: ["error": "\(error)"])
        }
        finish(error)
        context.close(promise: nil)
    }

    private func finish(_ error: RedisError) {
        finished = true
        timer?.cancel()
        timer = nil
        subscribedPromise?.fail(error)
        subscribedPromise = nil
    }
}
