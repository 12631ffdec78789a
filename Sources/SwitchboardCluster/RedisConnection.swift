import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Reconnect delays: exponential from `initial` doubling to `maximum`, with "equal jitter"
/// (a delay is drawn uniformly from the upper half of the exponential step) so that many
/// clients that lost the same server do not come back in lockstep.
struct RedisBackoff: Sendable {
    var initial: TimeAmount = .milliseconds(50)
    var maximum: TimeAmount = .seconds(2)

    func delay(attempt: Int) -> TimeAmount {
        let shift = Swift.min(attempt, 30)
        let step = Swift.min(maximum.nanoseconds, initial.nanoseconds << shift)
        let half = step / 2
        return .nanoseconds(half + Int64.random(in: 0...half))
    }
}

/// Owns one TCP connection to Redis at a time and keeps it up:
/// connect → handshake → ready → (lost) → backoff → connect … until `close()`.
///
/// All mutable state lives in a `NIOLoopBoundBox` on `eventLoop` (every method that touches
/// it runs there); `isReady` is mirrored in an atomic so any thread can read it.
final class RedisConnectionCore: Sendable {
    let eventLoop: any EventLoop
    let url: RedisURL
    private let logger: Logger
    private let backoff: RedisBackoff
    /// Bounds both the TCP connect and the handshake.
    private let connectTimeout: TimeAmount
    /// Adds the channel handlers; runs on the channel's loop before it connects.
    private let configure: @Sendable (any Channel) throws -> Void
    /// Runs once connected; the connection is ready when the future succeeds.
    private let handshake: @Sendable (any Channel) -> EventLoopFuture<Void>
    private let onStateChange: @Sendable (Bool) -> Void
    private let ready = Atomic<Bool>(false)
    private let state: NIOLoopBoundBox<State>

    private enum Phase {
        case idle
        case connecting(id: UInt64, connect: EventLoopFuture<any Channel>, channel: (any Channel)?)
        case ready(id: UInt64, channel: any Channel, since: NIODeadline)
        case waiting(Scheduled<Void>)
        case closed
    }

    private struct State {
        var phase: Phase = .idle
        /// Failed attempts since the last connection that lasted; drives the backoff.
        var attempt = 0
        var lastID: UInt64 = 0
    }

    init(url: RedisURL, eventLoop: any EventLoop, logger: Logger, connectTimeout: TimeAmount,
         backoff: RedisBackoff = RedisBackoff(),
         configure: @escaping @Sendable (any Channel) throws -> Void,
         handshake: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>,
         onStateChange: @escaping @Sendable (Bool) -> Void) {
        self.url = url
        self.eventLoop = eventLoop
        self.logger = logger
        self.connectTimeout = connectTimeout
        self.backoff = backoff
        self.configure = configure
        self.handshake = handshake
        self.onStateChange = onStateChange
        self.state = .makeBoxSendingValue(State(), eventLoop: eventLoop)
    }

    var isReady: Bool { ready.load(ordering: .acquiring) }

    func start() {
        eventLoop.execute {
            guard case .idle = self.state.value.phase else { return }
            self.connect()
        }
    }

    /// The connection, if it is ready. Call on `eventLoop`.
    func readyChannel() -> (any Channel)? {
        if case .ready(_, let channel, _) = state.value.phase { return channel }
        return nil
    }

    func close() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit { self.closeOnLoop() }
    }

    private func closeOnLoop() -> EventLoopFuture<Void> {
        let previous = state.value.phase
        state.value.phase = .closed
        switch previous {
        case .idle, .closed:
            return eventLoop.makeSucceededVoidFuture()
        case .waiting(let task):
            task.cancel()
            return eventLoop.makeSucceededVoidFuture()
        case .connecting(_, _, let channel?):
            channel.close(promise: nil)
            return channel.closeFuture
        case .connecting(_, let connect, .none):
            // connectCompleted closes the channel when it arrives.
            return connect.flatMap { $0.closeFuture }.recover { _ in }
        case .ready(_, let channel, _):
            ready.store(false, ordering: .releasing)
            onStateChange(false)
            channel.close(promise: nil)
            return channel.closeFuture
        }
    }

    private func connect() {
        state.value.lastID += 1
        let id = state.value.lastID
        let configure = self.configure
        let future = ClientBootstrap(group: eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try configure(channel) }
            }
            .connect(host: url.host, port: url.port)
            .hop(to: eventLoop)
        state.value.phase = .connecting(id: id, connect: future, channel: nil)
        future.whenComplete { result in self.connectCompleted(id: id, result) }
    }

    private func connectCompleted(id: UInt64, _ result: Result<any Channel, any Error>) {
        guard case .connecting(id, let connect, .none) = state.value.phase else {
            // Closed meanwhile.
            if case .success(let channel) = result { channel.close(promise: nil) }
            return
        }
        switch result {
        case .failure(let error):
            let attempt = state.value.attempt
            if attempt == 0 || attempt % 30 == 0 {
                logger.warning("cannot connect to Redis", metadata: ["error": "\(error)", "attempt": "\(attempt + 1)"])
            } else {
                logger.debug("cannot connect to Redis", metadata: ["error": "\(error)", "attempt": "\(attempt + 1)"])
            }
            scheduleReconnect()
        case .success(let channel):
            state.value.phase = .connecting(id: id, connect: connect, channel: channel)
            channel.closeFuture.whenComplete { _ in self.channelClosed(id: id) }
            eventLoop.scheduleTask(in: connectTimeout) {
                guard case .connecting(id, _, let channel?) = self.state.value.phase else { return }
                self.logger.warning("Redis handshake timed out")
                channel.close(promise: nil)
            }
            handshake(channel).hop(to: eventLoop).whenComplete { result in
                self.handshakeCompleted(id: id, channel: channel, result)
            }
        }
    }

    private func handshakeCompleted(id: UInt64, channel: any Channel, _ result: Result<Void, any Error>) {
        guard case .connecting(id, _, _) = state.value.phase else { return }
        switch result {
        case .success:
            state.value.phase = .ready(id: id, channel: channel, since: .now())
            ready.store(true, ordering: .releasing)
            logger.info("connected to Redis")
            onStateChange(true)
        case .failure(let error):
            logger.warning("Redis handshake failed", metadata: ["error": "\(error)"])
            // channelClosed schedules the reconnect.
            channel.close(promise: nil)
        }
    }

    private func channelClosed(id: UInt64) {
        switch state.value.phase {
        case .connecting(id, _, _):
            scheduleReconnect()
        case .ready(id, _, let since):
            ready.store(false, ordering: .releasing)
            logger.warning("lost the Redis connection")
            // A connection that dropped at once does not reset the backoff, so a server that
            // accepts and then hangs up (maxclients, a proxy without a backend) is not hammered.
            if NIODeadline.now() - since >= .seconds(1) {
                state.value.attempt = 0
            }
            onStateChange(false)
            scheduleReconnect()
        default:
            return
        }
    }

    private func scheduleReconnect() {
        let delay = backoff.delay(attempt: state.value.attempt)
        state.value.attempt += 1
        let task = eventLoop.scheduleTask(in: delay) {
            guard case .waiting = self.state.value.phase else { return }
            self.connect()
        }
        state.value.phase = .waiting(task)
    }
}
