import NIOCore
import SwitchboardProtocol

/// One connection attempt. Each attempt gets a new number, so whatever an abandoned connection
/// still reports is recognised and ignored.
struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    let rawValue: UInt64
    var description: String { "#\(rawValue)" }
}

struct Credentials: Sendable, Hashable {
    var userID: String
    var userSig: String
}

/// What a successful `login` reply grants: what a resume needs, and the server's heartbeat.
struct SessionGrant: Sendable, Hashable {
    var sessionID: String
    var resumeToken: String
    var heartbeat: TimeAmount?
}

/// The listener callbacks, as values (PROTOCOL §5, §6; V2TIMSDKListener).
enum ListenerEvent: Sendable, Hashable {
    case connecting
    case connectSuccess
    case connectFailed(SwitchboardError)
    case kickedOffline
    case userSigExpired
}

/// The session events the SDK tells apart (PROTOCOL §6).
enum SessionEventKind: Sendable, Hashable {
    case message
    case kickedOffline
    case userSigExpired
    case other
}

/// The client's session lifecycle without sockets or clocks: login, staying online across drops
/// (resume first; a fresh login with the UserSig it holds when the session is gone), kick and
/// UserSig expiry (no reconnect), logout, and which events reach the app (each seq once, in
/// order). The driver feeds it what happened and performs the actions it answers; time comes in
/// as arguments and randomness from the generator it holds, so every decision can be replayed.
struct ClientSessionStateMachine: Sendable {
    enum State: Sendable, Hashable {
        case loggedOut
        /// The app's `login` call: one attempt, whose outcome the call receives.
        case loggingIn(Credentials, ConnectionID, awaitingReply: Bool)
        case online(Credentials, SessionGrant, ConnectionID)
        /// Between attempts. `session` nil: the next attempt logs in afresh.
        case waiting(Credentials, SessionGrant?, retry: UInt64)
        case reconnecting(Credentials, SessionGrant?, ConnectionID, stage: Stage)
        /// The app's `logout`: the session is ended on the server, reaching it again (a resume)
        /// if the connection is down or drops meanwhile, for at most `logoutAttempts` connections.
        /// `session` nil: a fresh login was in flight, whose session is ended once it is made.
        case loggingOut(Credentials, SessionGrant?, ConnectionID, stage: LogoutStage, attempt: Int)
    }

    enum LogoutStage: Sendable, Hashable {
        case connecting
        case resuming
        case loggingIn
        /// `logout` sent.
        case awaitingReply
    }

    static let logoutAttempts = 3

    enum Stage: Sendable, Hashable {
        case connecting
        case resuming
        case loggingIn
    }

    enum Action: Sendable, Hashable {
        /// Open a new connection (TCP, TLS, WebSocket upgrade) for this attempt.
        case connect(ConnectionID)
        case sendLogin(ConnectionID, Credentials)
        case sendResume(ConnectionID, sessionID: String, resumeToken: String, lastSeq: UInt64)
        case sendLogout(ConnectionID)
        case close(ConnectionID)
        /// The server is draining: leave this connection after `after` (the next attempt resumes).
        case closeLater(ConnectionID, after: TimeAmount)
        case scheduleRetry(token: UInt64, after: TimeAmount)
        case cancelRetry
        case notify(ListenerEvent)
        /// The session is attached on this connection: send the requests that waited, and watch
        /// the connection for silence (`heartbeat` is the server's, when known).
        case online(ConnectionID, heartbeat: TimeAmount?)
        /// Answer the app's pending `login` call (nil: success).
        case completeLogin(SwitchboardError?)
        case completeLogout
        /// The session is over: fail every request, sent or waiting.
        case failRequests(SwitchboardError)
        /// The connection is gone: fail the requests sent on it (their outcome is unknown);
        /// those still waiting to be sent wait for the next connection.
        case failInFlight(SwitchboardError)
    }

    enum LoginDecision: Sendable, Hashable {
        /// A login attempt has started; its outcome comes as `completeLogin`.
        case start([Action])
        /// Already logged in as this user: success, nothing changes.
        case alreadyLoggedIn
        case reject(SwitchboardError)
    }

    enum LogoutDecision: Sendable, Hashable {
        /// Wait for `completeLogout`.
        case start([Action])
        /// Done at once (after performing these).
        case done([Action])
        case reject(SwitchboardError)
    }

    enum EventVerdict: Sendable, Hashable {
        /// Hand the event to the app.
        case deliver
        /// A duplicate, or from a connection that is no longer ours: drop it.
        case drop
        /// The session ended (kicked, UserSig expired): perform these.
        case end([Action])
    }

    private(set) var state: State = .loggedOut
    /// The highest seq handed to the app in the current session: what a resume asks to continue
    /// from, and below which nothing is delivered again.
    private(set) var lastDeliveredSeq: UInt64 = 0
    /// Failed attempts since the last connection that stayed up for `policy.resetAfter`.
    private(set) var failureStreak = 0
    private var onlineSince: NIODeadline?
    /// The connection the server asked us to leave (`reconnect`): its loss is not a failure.
    private var draining: ConnectionID?
    private var nextConnection: UInt64 = 0
    private var nextRetry: UInt64 = 0
    let policy: ReconnectPolicy
    private var random: SplitMix64

    init(policy: ReconnectPolicy, seed: UInt64) {
        self.policy = policy
        self.random = SplitMix64(seed: seed)
    }

    // MARK: What the app sees

    var status: LoginStatus {
        switch state {
        case .loggedOut: .logout
        case .loggingIn: .logining
        case .online, .waiting, .reconnecting, .loggingOut: .logined
        }
    }

    var userID: String? {
        switch state {
        case .online(let c, _, _), .waiting(let c, _, _), .reconnecting(let c, _, _, _), .loggingOut(let c, _, _, _, _):
            c.userID
        case .loggedOut, .loggingIn: nil
        }
    }

    /// The connection whose frames count, if any.
    var currentConnection: ConnectionID? {
        switch state {
        case .loggingIn(_, let id, _), .online(_, _, let id), .reconnecting(_, _, let id, _),
             .loggingOut(_, _, let id, _, _):
            id
        case .loggedOut, .waiting: nil
        }
    }

    var isOnline: Bool {
        if case .online = state { return true }
        return false
    }

    // MARK: App requests

    mutating func login(_ credentials: Credentials) -> LoginDecision {
        switch state {
        case .loggedOut:
            let id = makeConnectionID()
            state = .loggingIn(credentials, id, awaitingReply: false)
            lastDeliveredSeq = 0
            failureStreak = 0
            onlineSince = nil
            return .start([.notify(.connecting), .connect(id)])
        case .loggingIn:
            return .reject(.loginInProgress)
        case .loggingOut:
            return .reject(.logoutInProgress)
        case .online(let held, _, _), .waiting(let held, _, _), .reconnecting(let held, _, _, _):
            // Another user: the caller logs out first (an account switch).
            return held.userID == credentials.userID ? .alreadyLoggedIn : .reject(.loginInProgress)
        }
    }

    mutating func logout() -> LogoutDecision {
        switch state {
        case .loggedOut:
            return .done([])
        case .loggingIn(_, let id, _):
            state = .loggedOut
            return .done([.close(id), .notify(.connectFailed(.interrupted)), .completeLogin(.interrupted)])
        case .online(let c, let session, let id):
            state = .loggingOut(c, session, id, stage: .awaitingReply, attempt: 1)
            return .start([.sendLogout(id)])
        case .waiting(_, nil, _):
            // The session is already gone from the server (a fresh login was due).
            state = .loggedOut
            return .done([.cancelRetry, .failRequests(.notLoggedIn)])
        case .waiting(let c, let session?, _):
            // Detached on the server: come back to end it, or it would hold its instance until
            // its resume window ends.
            let id = makeConnectionID()
            state = .loggingOut(c, session, id, stage: .connecting, attempt: 1)
            return .start([.cancelRetry, .connect(id)])
        case .reconnecting(_, nil, let id, .connecting), .reconnecting(_, nil, let id, .resuming):
            state = .loggedOut
            return .done([.close(id), .notify(.connectFailed(.interrupted)), .failRequests(.notLoggedIn)])
        case .reconnecting(let c, let session, let id, let stage):
            // This attempt now serves the logout (the app hears that the reconnection ended).
            let next: LogoutStage = switch stage {
            case .connecting: .connecting
            case .resuming: .resuming
            case .loggingIn: .loggingIn
            }
            state = .loggingOut(c, stage == .loggingIn ? nil : session, id, stage: next, attempt: 1)
            return .start([.notify(.connectFailed(.interrupted))])
        case .loggingOut:
            return .reject(.logoutInProgress)
        }
    }

    /// The logout took longer than the app's request timeout: give up on telling the server.
    mutating func logoutTimedOut() -> [Action] {
        guard case .loggingOut(_, _, let id, _, _) = state else { return [] }
        return finishLogout(closing: id)
    }

    /// The SDK is shut down: forget everything without a word to the server.
    mutating func shutDown() {
        state = .loggedOut
        onlineSince = nil
        draining = nil
    }

    /// `renewSig` succeeded: a later fresh login uses the new UserSig.
    mutating func userSigRenewed(_ userSig: String) {
        switch state {
        case .online(var c, let s, let id):
            c.userSig = userSig
            state = .online(c, s, id)
        case .loggingOut(var c, let s, let id, let stage, let attempt):
            c.userSig = userSig
            state = .loggingOut(c, s, id, stage: stage, attempt: attempt)
        case .waiting(var c, let s, let retry):
            c.userSig = userSig
            state = .waiting(c, s, retry: retry)
        case .reconnecting(var c, let s, let id, let stage):
            c.userSig = userSig
            state = .reconnecting(c, s, id, stage: stage)
        case .loggedOut, .loggingIn:
            break
        }
    }

    // MARK: Connections

    /// The WebSocket upgrade of `id` is done.
    mutating func connected(_ id: ConnectionID) -> [Action] {
        switch state {
        case .loggingIn(let c, id, awaitingReply: false):
            state = .loggingIn(c, id, awaitingReply: true)
            return [.sendLogin(id, c)]
        case .reconnecting(let c, let session?, id, .connecting):
            state = .reconnecting(c, session, id, stage: .resuming)
            return [.sendResume(id, sessionID: session.sessionID, resumeToken: session.resumeToken,
                                lastSeq: lastDeliveredSeq)]
        case .reconnecting(let c, nil, id, .connecting):
            state = .reconnecting(c, nil, id, stage: .loggingIn)
            return [.sendLogin(id, c)]
        case .loggingOut(let c, let session?, id, .connecting, let attempt):
            state = .loggingOut(c, session, id, stage: .resuming, attempt: attempt)
            return [.sendResume(id, sessionID: session.sessionID, resumeToken: session.resumeToken,
                                lastSeq: lastDeliveredSeq)]
        case .loggingOut(_, nil, id, .connecting, _):
            return finishLogout(closing: id)
        default:
            return [.close(id)]
        }
    }

    /// The attempt `id` ended before it was established, or the established connection `id` was
    /// lost. `closeCode` is the server's close frame's code, when one came.
    mutating func connectionLost(_ id: ConnectionID, error: SwitchboardError, closeCode: UInt16?,
                                 now: NIODeadline) -> [Action] {
        guard currentConnection == id else { return [] }
        // A kick whose event did not make it, or our session taken by another connection: either
        // way the session is no longer ours, and coming back would only take it from its owner.
        let sessionTaken = closeCode == CloseCode.kickedOffline.rawValue
            || closeCode == CloseCode.resumedElsewhere.rawValue
        switch state {
        case .online, .reconnecting:
            if sessionTaken {
                return end(.kickedOffline, connection: id, duringAttempt: !isOnline)
            }
        default:
            break
        }
        switch state {
        case .loggingIn:
            state = .loggedOut
            return [.notify(.connectFailed(error)), .completeLogin(error)]
        case .online(let c, let session, _):
            let drained = draining == id
            if drained || onlineSince.map({ now - $0 >= policy.resetAfter }) == true {
                failureStreak = 0
            }
            draining = nil
            onlineSince = nil
            return [.failInFlight(.networkDisconnected), .notify(.connectFailed(error))]
                + scheduleNextAttempt(c, session)
        case .reconnecting(let c, let session, _, _):
            return [.notify(.connectFailed(error))] + scheduleNextAttempt(c, session)
        case .loggingOut(let c, let session, _, let stage, let attempt):
            // Lost before the server confirmed: reach it again while the session may be there.
            guard !sessionTaken, let session, stage != .loggingIn, attempt < Self.logoutAttempts else {
                return finishLogout(closing: nil)
            }
            let next = makeConnectionID()
            state = .loggingOut(c, session, next, stage: .connecting, attempt: attempt + 1)
            return [.connect(next)]
        case .loggedOut, .waiting:
            return []
        }
    }

    /// The backoff timer `token` fired.
    mutating func retryDue(_ token: UInt64) -> [Action] {
        guard case .waiting(let c, let session, token) = state else { return [] }
        let id = makeConnectionID()
        state = .reconnecting(c, session, id, stage: .connecting)
        return [.notify(.connecting), .connect(id)]
    }

    /// The server is draining (a `reconnect` event): move within `after`, at a random moment so a
    /// whole node's clients do not come back at once.
    mutating func reconnectRequested(_ id: ConnectionID, after: TimeAmount) -> [Action] {
        guard case .online(_, _, id) = state, draining != id else { return [] }
        draining = id
        let window = UInt64(max(after.nanoseconds, 0))
        let delay = window == 0 ? 0 : random.next() % window
        return [.closeLater(id, after: .nanoseconds(Int64(delay)))]
    }

    // MARK: Replies

    mutating func loginReplied(_ id: ConnectionID, _ result: Result<SessionGrant, SwitchboardError>,
                               now: NIODeadline) -> [Action] {
        switch (state, result) {
        case (.loggingIn(let c, id, awaitingReply: true), .success(let grant)):
            goOnline(c, grant, id, now: now)
            return [.notify(.connectSuccess), .online(id, heartbeat: grant.heartbeat), .completeLogin(nil)]
        case (.loggingIn(_, id, awaitingReply: true), .failure(let error)):
            state = .loggedOut
            return [.close(id), .notify(.connectFailed(error)), .completeLogin(error)]
        case (.reconnecting(let c, nil, id, .loggingIn), .success(let grant)):
            lastDeliveredSeq = 0
            goOnline(c, grant, id, now: now)
            return [.notify(.connectSuccess), .online(id, heartbeat: grant.heartbeat)]
        case (.reconnecting(let c, nil, id, .loggingIn), .failure(let error)):
            switch error.code {
            case SwitchboardError.userSigExpiredOnServer.code:
                return end(.userSigExpired, connection: id, duringAttempt: true, cause: error)
            case SwitchboardError.userSigRevoked.code:
                return end(.kickedOffline, connection: id, duringAttempt: true, cause: error)
            case let code where Self.isPermanentLoginFailure(code):
                // Retrying cannot help (a bad UserSig, an unknown app): stop and say why.
                state = .loggedOut
                return [.close(id), .notify(.connectFailed(error)), .failRequests(error)]
            default:
                return [.close(id), .notify(.connectFailed(error))] + scheduleNextAttempt(c, nil)
            }
        case (.loggingOut(let c, nil, id, .loggingIn, let attempt), .success(let grant)):
            // Logged out while this login was under way: end what it made.
            state = .loggingOut(c, grant, id, stage: .awaitingReply, attempt: attempt)
            return [.sendLogout(id)]
        case (.loggingOut(_, nil, id, .loggingIn, _), .failure):
            return finishLogout(closing: id)
        default:
            return []
        }
    }

    mutating func resumeReplied(_ id: ConnectionID, _ result: Result<Void, SwitchboardError>,
                                now: NIODeadline) -> [Action] {
        if case .loggingOut(let c, let session, id, .resuming, let attempt) = state {
            guard case .success = result else {
                return finishLogout(closing: id)  // the session is gone already
            }
            state = .loggingOut(c, session, id, stage: .awaitingReply, attempt: attempt)
            return [.sendLogout(id)]
        }
        guard case .reconnecting(let c, let session?, id, .resuming) = state else { return [] }
        switch result {
        case .success:
            goOnline(c, session, id, now: now)
            return [.notify(.connectSuccess), .online(id, heartbeat: session.heartbeat)]
        case .failure(let error):
            switch error.code {
            case SwitchboardError.kickedOffline.code:
                return end(.kickedOffline, connection: id, duringAttempt: true, cause: error)
            case SwitchboardError.userSigExpiredOnServer.code:
                return end(.userSigExpired, connection: id, duringAttempt: true, cause: error)
            case 70169, 9506:
                // The server is busy: the session may well still be there; try again later.
                return [.close(id), .notify(.connectFailed(error))] + scheduleNextAttempt(c, session)
            default:
                // 6026 (gone, or the window passed), 6014 (ended, or the buffer overflowed) and
                // anything unexpected: the session cannot come back. Log in again with the
                // UserSig we hold, on this same connection (a failed resume leaves it open).
                lastDeliveredSeq = 0
                state = .reconnecting(c, nil, id, stage: .loggingIn)
                return [.sendLogin(id, c)]
            }
        }
    }

    mutating func logoutReplied(_ id: ConnectionID) -> [Action] {
        guard case .loggingOut(_, _, id, .awaitingReply, _) = state else { return [] }
        return finishLogout(closing: id)
    }

    private mutating func finishLogout(closing id: ConnectionID?) -> [Action] {
        state = .loggedOut
        onlineSince = nil
        draining = nil
        return (id.map { [Action.close($0)] } ?? []) + [.completeLogout, .failRequests(.notLoggedIn)]
    }

    // MARK: Events

    /// A session event with `seq` arrived on `id`.
    mutating func sessionEvent(_ kind: SessionEventKind, seq: UInt64, on id: ConnectionID) -> EventVerdict {
        guard case .online(_, _, id) = state, seq > lastDeliveredSeq else { return .drop }
        lastDeliveredSeq = seq
        switch kind {
        case .message: return .deliver
        case .kickedOffline: return .end(end(.kickedOffline, connection: id, duringAttempt: false))
        case .userSigExpired: return .end(end(.userSigExpired, connection: id, duringAttempt: false))
        case .other: return .drop
        }
    }

    // MARK: Internals

    private mutating func goOnline(_ c: Credentials, _ grant: SessionGrant, _ id: ConnectionID, now: NIODeadline) {
        state = .online(c, grant, id)
        onlineSince = now
    }

    private mutating func scheduleNextAttempt(_ c: Credentials, _ session: SessionGrant?) -> [Action] {
        let delay = policy.delay(attempt: failureStreak, using: &random)
        failureStreak += 1
        if delay <= .zero {
            let id = makeConnectionID()
            state = .reconnecting(c, session, id, stage: .connecting)
            return [.notify(.connecting), .connect(id)]
        }
        nextRetry += 1
        state = .waiting(c, session, retry: nextRetry)
        return [.scheduleRetry(token: nextRetry, after: delay)]
    }

    /// Kicked or UserSig expired: the session is over and the SDK does not reconnect by itself.
    private mutating func end(_ event: ListenerEvent, connection id: ConnectionID, duringAttempt: Bool,
                              cause: SwitchboardError? = nil) -> [Action] {
        state = .loggedOut
        onlineSince = nil
        draining = nil
        let reason: SwitchboardError = event == .kickedOffline ? .kickedOffline : .userSigExpired
        var actions: [Action] = [.close(id)]
        if duringAttempt {
            actions.append(.notify(.connectFailed(cause ?? reason)))
        }
        actions.append(.notify(event))
        actions.append(.failRequests(reason))
        return actions
    }

    private mutating func makeConnectionID() -> ConnectionID {
        nextConnection += 1
        return ConnectionID(rawValue: nextConnection)
    }

    /// Login failures that another attempt with the same UserSig cannot fix.
    static func isPermanentLoginFailure(_ code: Int) -> Bool {
        switch code {
        case 6017, 70002, 70003, 70009, 70013, 70014, 70020: true
        default: false
        }
    }
}
