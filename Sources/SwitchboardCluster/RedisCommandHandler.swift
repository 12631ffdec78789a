import Logging
import NIOCore

/// A request waiting for its reply.
struct RedisPendingReply: Sendable {
    let promise: EventLoopPromise<RESPValue>
    /// False inside pipelines: an error reply is then returned as `.error`, not thrown.
    let throwOnError: Bool
}

/// Commands written together (one flush) and the replies they wait for, in order.
struct RedisCommandBatch: Sendable {
    var bytes: ByteBuffer
    var replies: [RedisPendingReply]

    func fail(_ error: RedisError) {
        for reply in replies {
            reply.promise.fail(error)
        }
    }

    /// Encodes `commands` and makes one promise per command on `eventLoop`.
    static func make(_ commands: [[RESPArgument]], throwOnError: Bool, eventLoop: any EventLoop,
                     allocator: ByteBufferAllocator) -> RedisCommandBatch {
        var bytes = allocator.buffer(capacity: 64 * commands.count)
        var replies: [RedisPendingReply] = []
        replies.reserveCapacity(commands.count)
        for command in commands {
            bytes.writeRESPCommand(command)
            replies.append(RedisPendingReply(promise: eventLoop.makePromise(), throwOnError: throwOnError))
        }
        return RedisCommandBatch(bytes: bytes, replies: replies)
    }
}

/// Matches replies to requests in FIFO order and enforces the request timeout.
///
/// A request with no reply by its deadline means the server (or the path to it) is stuck, and
/// replies on a connection are strictly ordered, so nothing behind it can complete either: the
/// overdue requests fail with `.timeout`, the rest with `.unavailable`, and the channel is
/// closed (the owner reconnects). One timer runs at a time, set for the oldest request.
final class RedisCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RedisCommandBatch
    typealias OutboundOut = ByteBuffer

    private struct Entry {
        var reply: RedisPendingReply
        var deadline: NIODeadline
    }

    private let timeout: TimeAmount
    private let logger: Logger
    private var queue = CircularBuffer<Entry>(initialCapacity: 16)
    private var timer: Scheduled<Void>?
    /// Set once the connection is finished with; later writes fail at once.
    private var finished = false

    init(timeout: TimeAmount, logger: Logger) {
        self.timeout = timeout
        self.logger = logger
    }

    /// What is sent right after connecting: AUTH and SELECT when needed, else a PING, so that
    /// "connected" always means the server has answered.
    static func handshakeCommands(for url: RedisURL) -> [[RESPArgument]] {
        var commands: [[RESPArgument]] = []
        if let password = url.password {
            if let user = url.user {
                commands.append(["AUTH", .string(user), .string(password)])
            } else {
                commands.append(["AUTH", .string(password)])
            }
        }
        if url.database != 0 {
            commands.append(["SELECT", .int(Int64(url.database))])
        }
        if commands.isEmpty {
            commands.append(["PING"])
        }
        return commands
    }

    /// Sends the handshake on a freshly connected channel.
    static func handshake(_ channel: any Channel, url: RedisURL) -> EventLoopFuture<Void> {
        let batch = RedisCommandBatch.make(handshakeCommands(for: url), throwOnError: true,
                                           eventLoop: channel.eventLoop, allocator: channel.allocator)
        channel.writeAndFlush(batch).whenFailure { _ in
            batch.fail(.unavailable("connection closed during the handshake"))
        }
        return EventLoopFuture.andAllSucceed(batch.replies.map(\.promise.futureResult), on: channel.eventLoop)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let batch = unwrapOutboundIn(data)
        if finished {
            batch.fail(.unavailable("connection closed"))
            promise?.fail(RedisError.unavailable("connection closed"))
            return
        }
        let deadline = NIODeadline.now() + timeout
        for reply in batch.replies {
            queue.append(Entry(reply: reply, deadline: deadline))
        }
        if timer == nil, !batch.replies.isEmpty {
            scheduleTimer(context: context, at: deadline)
        }
        context.write(wrapOutboundOut(batch.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        guard let entry = queue.popFirst() else {
            finish(context: context, error: .protocolError("a reply arrived with no request waiting: \(value)"))
            return
        }
        if entry.reply.throwOnError, case .error(let message) = value {
            entry.reply.promise.fail(RedisError.server(message))
        } else {
            entry.reply.promise.succeed(value)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let redisError = (error as? RedisError) ?? .unavailable("connection error: \(error)")
        if case .protocolError = redisError {
            logger.error("Redis sent malformed data; reconnecting", metadata: ["error": "\(redisError)"])
        }
        finish(context: context, error: redisError)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finished = true
        failAll(.unavailable("connection lost"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finished = true
        failAll(.unavailable("connection closed"))
    }

    private func finish(context: ChannelHandlerContext, error: RedisError) {
        finished = true
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        timer?.cancel()
        timer = nil
        while let entry = queue.popFirst() {
            entry.reply.promise.fail(error)
        }
    }

    private func scheduleTimer(context: ChannelHandlerContext, at deadline: NIODeadline) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        guard let oldest = queue.first else { return }
        let now = NIODeadline.now()
        if oldest.deadline > now {
            // The request this timer was set for has been answered; wait for the next one.
            scheduleTimer(context: context, at: oldest.deadline)
            return
        }
        logger.warning("Redis request timed out; reconnecting",
                       metadata: ["pending": "\(queue.count)", "timeout_ms": "\(timeout.nanoseconds / 1_000_000)"])
        finished = true
        while let entry = queue.popFirst() {
            entry.reply.promise.fail(entry.deadline <= now ? RedisError.timeout
                                                           : RedisError.unavailable("connection reset after a request timed out"))
        }
        context.close(promise: nil)
    }
}
