public import SwitchboardProtocol

/// The protocol state of one client connection, without the connection: which requests are
/// allowed, the LOGOUT → LOGINING → LOGINED lifecycle, and the malformed-frame budget. The
/// connection handler feeds it what happened and performs what it answers.
public struct ConnectionStateMachine: Sendable {
    public enum State: Sendable, Equatable {
        /// No session: waiting for `login` or `resume` (the login timer runs).
        case awaitingLogin
        /// A `login` or `resume` is being checked. `previous` is the session an account switch
        /// replaces, still in force until the new login succeeds.
        case logining(previous: SessionInfo?)
        case logined(SessionInfo)
        /// Kicked, moved or closing: nothing more is processed.
        case closed
    }

    /// What to do with a decoded frame.
    public enum FrameVerdict: Sendable, Equatable {
        case dispatch(InboundFrame)
        /// Answer with an error (a reply when `id` is set, else an `error` event).
        case reject(id: RequestID?, code: ErrorCode, desc: String)
        /// Answer with an error, then close the connection.
        case rejectAndClose(id: RequestID?, code: ErrorCode, desc: String, close: CloseCode)
        /// The connection is closed: drop the frame.
        case ignore
    }

    public enum LoginDecision: Sendable, Equatable {
        /// Check the UserSig and log in; the state is now LOGINING.
        case begin(switchingFrom: SessionInfo?)
        /// Already logged in as this user: reply with the current session, change nothing.
        case alreadyLoggedIn(SessionInfo)
        /// 7501: a login is in progress.
        case inProgress
    }

    public static let malformedLimit = 10
    /// Ops a connection may use before it logs in.
    static let openOps: Set<String> = ["login", "resume", "ping", "getLoginUser", "getLoginStatus"]
    /// Every op this version knows.
    public static let knownOps: Set<String> = openOps.union(["logout", "renewSig", "send"])

    public private(set) var state: State = .awaitingLogin
    private var malformedInARow = 0

    public init() {}

    public var status: LoginStatus {
        switch state {
        case .awaitingLogin, .closed: .logout
        case .logining: .logining
        case .logined: .logined
        }
    }

    /// The session in force (during an account switch, the one being replaced).
    public var session: SessionInfo? {
        switch state {
        case .logined(let s): s
        case .logining(let previous): previous
        case .awaitingLogin, .closed: nil
        }
    }

    public mutating func received(_ frame: FrameDecodeResult) -> FrameVerdict {
        if state == .closed { return .ignore }
        switch frame {
        case .malformed(let id, let reason):
            malformedInARow += 1
            if malformedInARow >= Self.malformedLimit {
                state = .closed
                return .rejectAndClose(id: id, code: .invalidParameters,
                                       desc: reason + "; too many malformed frames in a row",
                                       close: .policyViolation)
            }
            return .reject(id: id, code: .invalidParameters, desc: reason)
        case .request(let request):
            malformedInARow = 0
            guard Self.knownOps.contains(request.op) else {
                return .reject(id: request.id, code: .invalidParameters, desc: "unknown op \"\(request.op)\"")
            }
            if !Self.openOps.contains(request.op) {
                guard case .logined = state else {
                    return .reject(id: request.id, code: .notLoggedIn, desc: "not logged in")
                }
            }
            return .dispatch(request)
        }
    }

    public mutating func loginRequested(sdkAppID: UInt64, userID: String) -> LoginDecision {
        switch state {
        case .logining:
            return .inProgress
        case .logined(let current) where current.sdkAppID == sdkAppID && current.userID == userID:
            return .alreadyLoggedIn(current)
        case .logined(let current):
            state = .logining(previous: current)
            return .begin(switchingFrom: current)
        case .awaitingLogin, .closed:
            state = .logining(previous: nil)
            return .begin(switchingFrom: nil)
        }
    }

    /// `resume` is a first frame: allowed only with no session in force.
    public mutating func resumeRequested() -> ErrorCode {
        switch state {
        case .logining: return .loginInProcess
        case .logined: return .invalidParameters
        case .awaitingLogin, .closed:
            state = .logining(previous: nil)
            return .ok
        }
    }

    public mutating func loginSucceeded(_ session: SessionInfo) {
        guard state != .closed else { return }
        state = .logined(session)
    }

    /// The login or resume failed: back to where it started (the previous session stays).
    public mutating func loginFailed() {
        guard case .logining(let previous) = state else { return }
        state = previous.map { .logined($0) } ?? .awaitingLogin
    }

    /// The account switch logged the previous user out before logging the new one in.
    public mutating func previousSessionEnded() {
        if case .logining = state { state = .logining(previous: nil) }
    }

    /// logout or userSigExpired: no session, the connection stays for another login.
    public mutating func sessionEnded() {
        guard state != .closed else { return }
        state = .awaitingLogin
    }

    public mutating func renewed(userSigExpireAt: Int64) {
        if case .logined(var s) = state {
            s.userSigExpireAt = userSigExpireAt
            state = .logined(s)
        }
    }

    /// Kicked, resumed elsewhere, or the connection is closing.
    public mutating func close() {
        state = .closed
    }
}
