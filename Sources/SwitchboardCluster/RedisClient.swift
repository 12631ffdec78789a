import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A command connection to Redis.
///
/// - Pipelining: any number of requests may be in flight (up to `maxPending`); replies are
///   matched to requests in order.
/// - Request timeout: a request with no reply within `requestTimeout` fails with `.timeout`,
///   and the connection is then closed and reconnected (see `RedisError.timeout`).
/// - Reconnects with exponential backoff and jitter (50 ms doubling to 2 s) forever, until
///   `close()`. On every (re)connect it sends AUTH (if the URL has a password) and SELECT (if the
///   database is not 0) before anything else, or a PING when neither is needed; the client counts
///   as connected once those are answered.
/// - Requests issued while not connected fail at once with `.unavailable`; nothing is queued.
///
/// Thread safety: the connection state lives on `eventLoop` (see `RedisConnectionCore`);
/// the in-flight count is an atomic. Every method may be called from any thread.
/// Futures complete on `eventLoop`. Call `close()` when done: until then it keeps reconnecting.
public final class RedisClient: Sendable {
    public static let defaultMaxPending = 10_000

    public let url: RedisURL
    public let requestTimeout: TimeAmount
    /// The most requests that may wait for a reply at once; more fail with
    /// `.unavailable("too many pending")`.
    public let maxPending: Int

    private let core: RedisConnectionCore
    private let inFlight = Atomic<Int>(0)
    private let allocator = ByteBufferAllocator()

    public init(url: RedisURL, group: any EventLoopGroup, requestTimeout: TimeAmount, logger: Logger,
                maxPending: Int = RedisClient.defaultMaxPending,
                onStateChange: @escaping @Sendable (Bool) -> Void = { _ in }) {
        var logger = logger
        logger[metadataKey: "redis"] = "\(url)"
        self.url = url
        self.requestTimeout = requestTimeout
        self.maxPending = maxPending
        let handlerLogger = logger
        self.core = RedisConnectionCore(
            url: url, eventLoop: group.next(), logger: logger, connectTimeout: requestTimeout,
            configure: { channel in
                try channel.pipeline.syncOperations.addHandlers(
                    ByteToMessageHandler(RESPDecoder()),
                    RedisCommandHandler(timeout: requestTimeout, logger: handlerLogger))
            },
            handshake: { channel in RedisCommandHandler.handshake(channel, url: url) },
            onStateChange: onStateChange)
    }

    /// The loop the connection lives on; every future the client returns completes on it.
    public var eventLoop: any EventLoop { core.eventLoop }

    /// True while connected and past AUTH/SELECT.
    public var isConnected: Bool { core.isReady }

    /// Requests sent and not yet answered (or failed).
    public var pendingCount: Int { inFlight.load(ordering: .relaxed) }

    /// Begins connecting and returns at once; `onStateChange(true)` tells when it is connected.
    public func start() {
        core.start()
    }

    /// Stops reconnecting, closes the connection and fails pending requests with `.unavailable`.
    /// The future completes once the connection is closed.
    public func close() -> EventLoopFuture<Void> {
        core.close()
    }

    /// Sends one command. An error reply fails the future with `RedisError.server`.
    public func send(_ arguments: [RESPArgument]) -> EventLoopFuture<RESPValue> {
        // Redis answers nothing at all to an empty command: it would only time out.
        if arguments.isEmpty { return eventLoop.makeFailedFuture(RedisError.protocolError("empty command")) }
        let batch = RedisCommandBatch.make([arguments], throwOnError: true, eventLoop: eventLoop,
                                           allocator: allocator)
        let future = batch.replies[0].promise.futureResult
        submit(batch)
        return future
    }

    public func send(_ arguments: String...) -> EventLoopFuture<RESPValue> {
        send(arguments.map { .string($0) })
    }

    /// Sends the commands in one write. The replies come back in order; error replies are
    /// returned as `.error` values, not thrown. The future fails only if the connection does
    /// (not connected, timeout, connection lost, too many pending).
    public func pipeline(_ commands: [[RESPArgument]]) -> EventLoopFuture<[RESPValue]> {
        if commands.isEmpty { return eventLoop.makeSucceededFuture([]) }
        if commands.contains(where: \.isEmpty) {
            return eventLoop.makeFailedFuture(RedisError.protocolError("empty command in a pipeline"))
        }
        let batch = RedisCommandBatch.make(commands, throwOnError: false, eventLoop: eventLoop,
                                           allocator: allocator)
        let futures = batch.replies.map(\.promise.futureResult)
        submit(batch)
        // whenAllComplete, not whenAllSucceed: the result must not be delivered (and the
        // in-flight count must not drop) while some replies are still pending.
        return EventLoopFuture.whenAllComplete(futures, on: eventLoop).flatMapThrowing { results in
            try results.map { try $0.get() }
        }
    }

    private func submit(_ batch: RedisCommandBatch) {
        let count = batch.replies.count
        let total = inFlight.wrappingAdd(count, ordering: .relaxed).newValue
        if total > maxPending {
            inFlight.wrappingSubtract(count, ordering: .relaxed)
            batch.fail(.unavailable("too many pending"))
            return
        }
        for reply in batch.replies {
            reply.promise.futureResult.whenComplete { _ in
                self.inFlight.wrappingSubtract(1, ordering: .relaxed)
            }
        }
        guard core.isReady else {
            batch.fail(.unavailable("not connected"))
            return
        }
        if eventLoop.inEventLoop {
            write(batch)
        } else {
            eventLoop.execute { self.write(batch) }
        }
    }

    private func write(_ batch: RedisCommandBatch) {
        guard let channel = core.readyChannel() else {
            batch.fail(.unavailable("not connected"))
            return
        }
        channel.writeAndFlush(batch).whenFailure { _ in
            batch.fail(.unavailable("connection closed"))
        }
    }
}

extension RedisClient {
    /// Runs `script` with EVALSHA, and with EVAL (which also caches it) when the server answers
    /// NOSCRIPT, as it does after a restart or SCRIPT FLUSH.
    public func eval(_ script: RedisScript, keys: [RESPArgument], arguments: [RESPArgument]) -> EventLoopFuture<RESPValue> {
        let tail: [RESPArgument] = [.int(Int64(keys.count))] + keys + arguments
        return send([.string("EVALSHA"), .string(script.sha1)] + tail).flatMapError { error in
            if case RedisError.server(let message) = error, message.hasPrefix("NOSCRIPT") {
                return self.send([.string("EVAL"), .string(script.source)] + tail)
            }
            return self.eventLoop.makeFailedFuture(error)
        }
    }
}
