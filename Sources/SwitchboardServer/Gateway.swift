public import Logging
public import NIOCore
import NIOPosix
public import SwitchboardCore
public import SwitchboardCluster
import SwitchboardProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What every connection of one server shares: configuration, apps, the session table, counters.
public final class Gateway: Sendable {
    public let configuration: ServerConfiguration
    public let apps: AppRegistry
    /// The in-process session table (one node; unused in a cluster).
    public let table: SessionTable
    /// Where sessions live: `table` on one node, the Redis store in a cluster.
    public let directory: any SessionDirectory
    /// The cluster store's client, directory and liveness; nil on one node.
    public let cluster: ClusterDirectory?
    public let authenticator: Authenticator
    public let clock: any WallClock
    public let logger: Logger
    private let group: any EventLoopGroup
    private let connectionIDs = Atomic<UInt64>(0)
    private let openConnections = Atomic<Int>(0)
    private let loginCounts = Mutex<[Int: Int]>([:])
    private let resumes = Atomic<Int>(0)
    private let messages = Atomic<Int>(0)
    /// Prometheus metrics of this gateway, served on `/metrics`.
    let metrics: GatewayMetrics
    /// The `State.StateChange` webhook's queue and posters.
    let webhook: StateWebhook
    /// The WebSocket listener's port once bound (the configured one may be 0); -1 before.
    private let boundWebSocketPort = Atomic<Int>(-1)

    public init(configuration: ServerConfiguration, group: any EventLoopGroup, clock: any WallClock = SystemClock(),
                logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.clock = clock
        self.logger = logger
        self.apps = AppRegistry(configuration.apps)
        self.table = SessionTable(
            configuration: .init(resumeWindowSeconds: configuration.resumeWindowSeconds,
                                 resumeBuffer: configuration.resumeBuffer,
                                 shardCount: 64),
            clock: clock)
        self.authenticator = Authenticator(apps: apps, clock: clock)
        if let redis = configuration.redis {
            let cluster = ClusterDirectory(
                configuration: .init(redis: redis, nodeTTLSeconds: configuration.nodeTTLSeconds,
                                     resumeWindowSeconds: configuration.resumeWindowSeconds,
                                     resumeBuffer: configuration.resumeBuffer),
                group: group, clock: clock, logger: logger)
            self.cluster = cluster
            self.directory = cluster
        } else {
            self.cluster = nil
            let table = self.table
            let reaper = Reaper(table: table, group: group, clock: clock)
            self.directory = LocalDirectory(table: table) { sessionID, at in reaper.schedule(sessionID: sessionID, atMillis: at) }
        }
        self.metrics = GatewayMetrics()
        self.webhook = StateWebhook(configuration: .init(queueCapacity: configuration.webhookQueueSize,
                                                         timeoutSeconds: configuration.webhookTimeoutSeconds,
                                                         lanes: configuration.webhookConcurrency),
                                    group: group, metrics: metrics, logger: logger)
    }

    /// This node's name in the admin API's stats: `nodeID` from the configuration, else the host
    /// name, ":", and the WebSocket port.
    public var nodeID: String {
        if let configured = configuration.nodeID { return configured }
        let bound = boundWebSocketPort.load(ordering: .relaxed)
        return "\(Self.hostName):\(bound >= 0 ? bound : configuration.listen.port)"
    }

    /// Stops posting state callbacks (those still queued are dropped and counted). Call before
    /// the event loops shut down: a POST started afterwards would have no loop to finish on.
    public func close() {
        webhook.close()
    }

    /// Tells the gateway the port its WebSocket listener got (for `nodeID` when the configured
    /// port is 0).
    public func webSocketListening(port: Int) {
        boundWebSocketPort.store(port, ordering: .relaxed)
    }

    private static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }()

    func makeConnectionID() -> UInt64 {
        connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// WebSocket connections open now, logged in or not.
    public var connections: Int { openConnections.load(ordering: .relaxed) }

    func connectionOpened() { openConnections.add(1, ordering: .relaxed) }
    func connectionClosed() { openConnections.subtract(1, ordering: .relaxed) }

    // MARK: What happened. Metrics, the state-change webhook and logs hang off these hooks;
    // they run on the connection's event loop and must not block it.

    /// Every login attempt, whatever its result; `started` is when the check began.
    func loginFinished(code: ErrorCode, started: NIODeadline) {
        loginCounts.withLock { $0[code.rawValue, default: 0] += 1 }
        metrics.loginFinished(code: code, nanoseconds: max(0, (NIODeadline.now() - started).nanoseconds))
    }

    /// A login succeeded; `kicked` are the platforms of the instances it pushed out.
    func loggedIn(_ session: SessionInfo, kicked: [Platform]) {
        metrics.kicked(multiDevice: kicked.count)
        notify(session.sdkAppID, session.userID, .login, .register, platform: session.platform, kicked: kicked)
    }

    /// The session ended at its client's request (`logout`, or an account switch).
    func loggedOut(_ session: SessionInfo) {
        notify(session.sdkAppID, session.userID, .logout, .unregister, platform: session.platform)
    }

    /// The session ended because its UserSig lapsed while online.
    func userSigExpired(_ session: SessionInfo) {
        notify(session.sdkAppID, session.userID, .logout, .unregister, platform: session.platform)
    }

    /// The session's connection went away without logout: the session is detached.
    /// `timedOut`: the peer went silent (heartbeat) rather than closing the connection.
    func disconnected(_ session: SessionInfo, timedOut: Bool) {
        notify(session.sdkAppID, session.userID, .disconnect, timedOut ? .timeOut : .linkClose,
               platform: session.platform)
    }

    /// The admin API kicked every instance of a user (`instances` of them).
    func adminKicked(app: UInt64, userID: String, instances: Int) {
        metrics.kicked(admin: instances)
        logger.info("admin kick", metadata: ["app.id": "\(app)", "user.id": "\(userID)", "kick.instances": "\(instances)"])
        if instances > 0 {
            notify(app, userID, .logout, .unregister, platform: nil)
        }
    }

    /// Queues a state-change callback when the app has a URL for them: a lock and an append,
    /// nothing that waits.
    private func notify(_ app: UInt64, _ userID: String, _ action: StateWebhook.Action, _ reason: StateWebhook.Reason,
                        platform: Platform?, kicked: [Platform]? = nil) {
        guard let url = apps.app(app)?.stateCallbackURL, !url.isEmpty else { return }
        // Tencent's OptPlatform names: iOS for iPhone, RESTAPI for the admin API.
        let optPlatform = switch platform {
        case nil: "RESTAPI"
        case .iPhone?: "iOS"
        case let other?: other.rawValue
        }
        webhook.enqueue(.init(sdkAppID: app, url: url, action: action, reason: reason, userID: userID,
                              optPlatform: optPlatform, kicked: kicked, time: clock.nowMillis()))
    }

    /// Logins so far by result code.
    public var loginsByCode: [Int: Int] { loginCounts.withLock { $0 } }

    func resumeFinished(success: Bool) {
        if success { resumes.add(1, ordering: .relaxed) }
        metrics.resumeFinished(success: success)
    }

    func messageSent() {
        messages.add(1, ordering: .relaxed)
        metrics.messageSent()
    }
}

/// Frees detached sessions of the in-process table when their resume window ends.
private struct Reaper: Sendable {
    let table: SessionTable
    let group: any EventLoopGroup
    let clock: any WallClock

    func schedule(sessionID: String, atMillis: Int64) {
        let delay = max(0, atMillis - clock.nowMillis()) + 1
        // A callback, not a task: no promise per detached session, and a loop that is shutting
        // down simply refuses it (the process is ending; nothing is left to free).
        // The current loop when there is one: during shutdown `any()` may hand out a stopped one.
        let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? group.any()
        _ = try? loop.scheduleCallback(in: .milliseconds(delay),
                                       handler: ReapCallback(table: table, sessionID: sessionID))
    }
}

private struct ReapCallback: NIOScheduledCallbackHandler, Sendable {
    let table: SessionTable
    let sessionID: String

    func handleScheduledCallback(eventLoop: some EventLoop) {
        table.reap(sessionID: sessionID)
    }
}
