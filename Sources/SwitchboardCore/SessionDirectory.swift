public import SwitchboardProtocol
public import UserSig

/// Where a connection's answers are run: the connection's own event loop.
///
/// A directory answers either before the call returns (the in-process table) or later through
/// this executor (a cluster store); it never runs a connection's code on another thread.
public protocol DirectoryExecutor: Sendable {
    func execute(_ work: @escaping @Sendable () -> Void)
}

/// The sessions of a gateway, wherever they live: the in-process `SessionTable` on one node, a
/// shared store in a cluster. Connection-facing calls answer through `then`: at once for the
/// table, later on `executor` for a store. Admin calls block; a gateway makes them off its
/// event loops.
///
/// Every call that needs the shared store fails with `ErrorCode.serverBusy` (70169) while it is
/// unreachable, except those the contract lets a node settle by itself (`logout`, `detach`,
/// `acknowledge`, `expireUserSig`).
public protocol SessionDirectory: Sendable {
    /// Whether new logins can be taken now (a cluster: its store reachable and this node's
    /// sessions registered there).
    var isAvailable: Bool { get }

    func login(app: AppConfiguration, userID: String, platform: Platform, ticket: UserSigTicket,
               connection: ConnectionRef, executor: any DirectoryExecutor,
               then: @escaping @Sendable (LoginResult) -> Void)

    func resume(sessionID: String, resumeToken: String, lastSeq: UInt64, connection: ConnectionRef,
                executor: any DirectoryExecutor, then: @escaping @Sendable (ResumeResult) -> Void)

    /// Ends a session at its client's request; `then` once the end is recorded (in an outage:
    /// at once, settled with the store when it is back).
    func logout(_ session: SessionInfo, connectionID: UInt64, executor: any DirectoryExecutor,
                then: @escaping @Sendable () -> Void)

    /// Ends a session whose UserSig lapsed while attached; answers the `userSigExpired` event to
    /// write (its seq follows `writtenSeq` when the store cannot say), or nil when the session is
    /// no longer this connection's.
    func expireUserSig(_ session: SessionInfo, connectionID: UInt64, writtenSeq: UInt64,
                       executor: any DirectoryExecutor, then: @escaping @Sendable (SessionEvent?) -> Void)

    func renewUserSig(_ session: SessionInfo, connectionID: UInt64, ticket: UserSigTicket,
                      executor: any DirectoryExecutor, then: @escaping @Sendable (ErrorCode) -> Void)

    /// The connection dropped without logout: the session stays for a resume.
    /// - Returns: true when the session was this connection's and is now detached (or will be,
    ///   once a cluster store is back).
    func detach(_ session: SessionInfo, connectionID: UInt64) -> Bool

    /// The client has read every event through `seq`.
    func acknowledge(_ session: SessionInfo, connectionID: UInt64, through seq: UInt64)

    func send(from sender: SessionInfo, to recipient: String, payload: JSONValue, executor: any DirectoryExecutor,
              then: @escaping @Sendable (Result<SendResult, RequestError>) -> Void)

    // MARK: Admin (blocking; never call on an event loop)

    /// Kicks every instance (reason `admin`) and revokes the user's UserSigs issued at or before
    /// the current second. Nil: the user never logged in.
    func adminKick(app: UInt64, userID: String) throws(RequestError) -> Int?
    /// The instances of each user, in order; nil for a user who never logged in.
    func instances(app: UInt64, userIDs: [String]) throws(RequestError) -> [[InstanceStatus]?]
    func push(app: UInt64, from adminUser: String, to recipients: [String], payload: JSONValue)
        throws(RequestError) -> [SendResult]
    func counts(app: UInt64) throws(RequestError) -> SessionCounts
}

/// The one-node directory: the in-process session table, answering before each call returns.
public struct LocalDirectory: SessionDirectory {
    public let table: SessionTable
    /// Called with a detached session and when its resume window ends, to free it then.
    private let scheduleReap: @Sendable (String, Int64) -> Void

    public init(table: SessionTable, scheduleReap: @escaping @Sendable (_ sessionID: String, _ atMillis: Int64) -> Void) {
        self.table = table
        self.scheduleReap = scheduleReap
    }

    public var isAvailable: Bool { true }

    public func login(app: AppConfiguration, userID: String, platform: Platform, ticket: UserSigTicket,
                      connection: ConnectionRef, executor: any DirectoryExecutor,
                      then: @escaping @Sendable (LoginResult) -> Void) {
        then(table.login(app: app, userID: userID, platform: platform, ticket: ticket, connection: connection))
    }

    public func resume(sessionID: String, resumeToken: String, lastSeq: UInt64, connection: ConnectionRef,
                       executor: any DirectoryExecutor, then: @escaping @Sendable (ResumeResult) -> Void) {
        then(table.resume(sessionID: sessionID, resumeToken: resumeToken, lastSeq: lastSeq, connection: connection))
    }

    public func logout(_ session: SessionInfo, connectionID: UInt64, executor: any DirectoryExecutor,
                       then: @escaping @Sendable () -> Void) {
        table.logout(sessionID: session.sessionID, connectionID: connectionID)
        then()
    }

    public func expireUserSig(_ session: SessionInfo, connectionID: UInt64, writtenSeq: UInt64,
                              executor: any DirectoryExecutor, then: @escaping @Sendable (SessionEvent?) -> Void) {
        then(table.expireUserSig(sessionID: session.sessionID, connectionID: connectionID))
    }

    public func renewUserSig(_ session: SessionInfo, connectionID: UInt64, ticket: UserSigTicket,
                             executor: any DirectoryExecutor, then: @escaping @Sendable (ErrorCode) -> Void) {
        then(table.renewUserSig(sessionID: session.sessionID, connectionID: connectionID, ticket: ticket))
    }

    public func detach(_ session: SessionInfo, connectionID: UInt64) -> Bool {
        guard let reapAt = table.detach(sessionID: session.sessionID, connectionID: connectionID) else { return false }
        scheduleReap(session.sessionID, reapAt)
        return true
    }

    public func acknowledge(_ session: SessionInfo, connectionID: UInt64, through seq: UInt64) {
        table.acknowledge(sessionID: session.sessionID, connectionID: connectionID, through: seq)
    }

    public func send(from sender: SessionInfo, to recipient: String, payload: JSONValue,
                     executor: any DirectoryExecutor,
                     then: @escaping @Sendable (Result<SendResult, RequestError>) -> Void) {
        then(.success(table.send(from: sender, to: recipient, payload: payload)))
    }

    public func adminKick(app: UInt64, userID: String) throws(RequestError) -> Int? {
        let second = Self.floorDiv(table.clock.nowMillis(), 1000)
        return table.adminKick(app: app, userID: userID, revokeThrough: second)
    }

    public func instances(app: UInt64, userIDs: [String]) throws(RequestError) -> [[InstanceStatus]?] {
        userIDs.map { table.instances(app: app, userID: $0) }
    }

    public func push(app: UInt64, from adminUser: String, to recipients: [String], payload: JSONValue)
        throws(RequestError) -> [SendResult] {
        recipients.map { table.push(app: app, from: adminUser, to: $0, payload: payload) }
    }

    public func counts(app: UInt64) throws(RequestError) -> SessionCounts {
        table.counts(app: app)
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
