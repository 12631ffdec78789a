public import Logging
public import NIOCore
public import SwitchboardCore
import SwitchboardProtocol
import Synchronization

/// What every connection of one server shares: configuration, apps, the session table, counters.
public final class Gateway: Sendable {
    public let configuration: ServerConfiguration
    public let apps: AppRegistry
    public let table: SessionTable
    public let authenticator: Authenticator
    public let clock: any WallClock
    public let logger: Logger
    private let group: any EventLoopGroup
    private let connectionIDs = Atomic<UInt64>(0)
    private let openConnections = Atomic<Int>(0)
    private let loginCounts = Mutex<[Int: Int]>([:])
    private let resumes = Atomic<Int>(0)
    private let messages = Atomic<Int>(0)

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
    }

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
    }

    /// A login succeeded; `kicked` are the platforms of the instances it pushed out.
    func loggedIn(_ session: SessionInfo, kicked: [Platform]) {}

    /// The session ended at its client's request (`logout`, or an account switch).
    func loggedOut(_ session: SessionInfo) {}

    /// The session ended because its UserSig lapsed while online.
    func userSigExpired(_ session: SessionInfo) {}

    /// The session's connection went away without logout: the session is detached.
    /// `timedOut`: the peer went silent (heartbeat) rather than closing the connection.
    func disconnected(_ session: SessionInfo, timedOut: Bool) {}

    /// Logins so far by result code.
    public var loginsByCode: [Int: Int] { loginCounts.withLock { $0 } }

    func resumeFinished(success: Bool) {
        if success { resumes.add(1, ordering: .relaxed) }
    }

    func messageSent() { messages.add(1, ordering: .relaxed) }

    /// Frees a detached session when its resume window ends (if it has not come back).
    func scheduleReap(sessionID: String, atMillis: Int64) {
        let delay = max(0, atMillis - clock.nowMillis()) + 1
        // A callback, not a task: no promise per detached session, and a loop that is shutting
        // down simply refuses it (the process is ending; nothing is left to free).
        _ = try? group.any().scheduleCallback(in: .milliseconds(delay),
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
