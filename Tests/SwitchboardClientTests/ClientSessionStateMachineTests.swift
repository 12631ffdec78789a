import NIOCore
@testable import SwitchboardClient
import SwitchboardProtocol
import Testing

/// The SDK's session lifecycle without sockets or clocks: inputs in, actions out.
@Suite("Client session state machine")
struct ClientSessionStateMachineTests {
    typealias Machine = ClientSessionStateMachine
    typealias Action = ClientSessionStateMachine.Action

    static let alice = Credentials(userID: "alice", userSig: "sig-a")
    static let grant = SessionGrant(sessionID: "s1", resumeToken: "t1", heartbeat: .seconds(30))
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
    /// Jitter off and a plain doubling, so the expected delays are exact.
    static let policy = ReconnectPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(2), multiplier: 2,
                                        jitter: 0, immediateFirstRetry: true, resetAfter: .seconds(5))

    /// Logs alice in; returns the machine online and the connection.
    func online(policy: ReconnectPolicy = policy) -> (Machine, ConnectionID) {
        var m = Machine(policy: policy, seed: 1)
        guard case .start(let actions) = m.login(Self.alice), case .connect(let id)? = actions.last else {
            Issue.record("login did not start")
            return (m, ConnectionID(rawValue: 0))
        }
        #expect(actions == [.notify(.connecting), .connect(id)])
        #expect(m.status == .logining)
        #expect(m.connected(id) == [.sendLogin(id, Self.alice)])
        #expect(m.loginReplied(id, .success(Self.grant), now: Self.t0)
            == [.notify(.connectSuccess), .online(id, heartbeat: .seconds(30)), .completeLogin(nil)])
        #expect(m.status == .logined)
        #expect(m.userID == "alice")
        return (m, id)
    }

    /// After a drop: the reconnection's connection id from the actions.
    func reconnectID(_ actions: [Action]) -> ConnectionID? {
        for case .connect(let id) in actions { return id }
        return nil
    }

    // MARK: Login

    @Test func loginSucceeds() {
        _ = online()
    }

    @Test func aSecondLoginWhileLoggingInIs7501AndTheSameUserOnlineIsAlreadyDone() {
        var m = Machine(policy: Self.policy, seed: 1)
        _ = m.login(Self.alice)
        #expect(m.login(Self.alice) == .reject(.loginInProgress))
        var (n, _) = online()
        #expect(n.login(Self.alice) == .alreadyLoggedIn)
    }

    @Test func aFailedFirstLoginIsReportedAndNotRetried() {
        var m = Machine(policy: Self.policy, seed: 1)
        guard case .start(let actions) = m.login(Self.alice), let id = reconnectID(actions) else {
            Issue.record("login did not start")
            return
        }
        let refused = SwitchboardError.connectFailed
        #expect(m.connectionLost(id, error: refused, closeCode: nil, now: Self.t0)
            == [.notify(.connectFailed(refused)), .completeLogin(refused)])
        #expect(m.status == .logout)

        // The server refuses the UserSig: same, with its code.
        guard case .start(let again) = m.login(Self.alice), let id2 = reconnectID(again) else {
            Issue.record("login did not start")
            return
        }
        _ = m.connected(id2)
        let badSig = SwitchboardError(code: 70009, desc: "signature mismatch")
        #expect(m.loginReplied(id2, .failure(badSig), now: Self.t0)
            == [.close(id2), .notify(.connectFailed(badSig)), .completeLogin(badSig)])
        #expect(m.status == .logout)
        #expect(m.userID == nil)
    }

    // MARK: Resume

    @Test func aDropResumesAtOnceWithTheLastDeliveredSeq() {
        var (m, id) = online()
        #expect(m.sessionEvent(.message, seq: 1, on: id) == .deliver)
        #expect(m.sessionEvent(.message, seq: 2, on: id) == .deliver)
        let lost = m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: Self.t0 + .seconds(1))
        guard let next = reconnectID(lost) else {
            Issue.record("no reconnection: \(lost)")
            return
        }
        #expect(lost == [.failInFlight(.networkDisconnected), .notify(.connectFailed(.networkDisconnected)),
                         .notify(.connecting), .connect(next)])
        #expect(m.status == .logined, "still logged in while reconnecting")
        #expect(m.connected(next) == [.sendResume(next, sessionID: "s1", resumeToken: "t1", lastSeq: 2)])
        #expect(m.resumeReplied(next, .success(()), now: Self.t0 + .seconds(2))
            == [.notify(.connectSuccess), .online(next, heartbeat: .seconds(30))])
        #expect(m.lastDeliveredSeq == 2)
    }

    /// A replay overlapping what was delivered is cut to what is new; nothing from an abandoned
    /// connection counts.
    @Test func eventsAreDeliveredOnceInOrder() {
        var (m, id) = online()
        for seq in 1...3 as ClosedRange<UInt64> {
            #expect(m.sessionEvent(.message, seq: seq, on: id) == .deliver)
        }
        #expect(m.sessionEvent(.message, seq: 3, on: id) == .drop)
        #expect(m.sessionEvent(.message, seq: 2, on: id) == .drop)
        let next = reconnectID(m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: Self.t0))!
        #expect(m.sessionEvent(.message, seq: 4, on: id) == .drop, "the old connection no longer counts")
        _ = m.connected(next)
        #expect(m.sessionEvent(.message, seq: 4, on: next) == .drop, "nothing before the resume reply")
        _ = m.resumeReplied(next, .success(()), now: Self.t0)
        #expect(m.sessionEvent(.message, seq: 2, on: next) == .drop)
        #expect(m.sessionEvent(.message, seq: 3, on: next) == .drop)
        #expect(m.sessionEvent(.message, seq: 4, on: next) == .deliver)
        #expect(m.sessionEvent(.message, seq: 5, on: next) == .deliver)
        #expect(m.lastDeliveredSeq == 5)
    }

    @Test(arguments: [6026, 6014, 6017])
    func aResumeThatCannotWorkLogsInAgainWithTheHeldUserSig(code: Int) {
        var (m, id) = online()
        _ = m.sessionEvent(.message, seq: 7, on: id)
        let next = reconnectID(m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: Self.t0))!
        _ = m.connected(next)
        let failure = SwitchboardError(code: code, desc: "gone")
        // Same connection: a failed resume leaves it open for a login.
        #expect(m.resumeReplied(next, .failure(failure), now: Self.t0) == [.sendLogin(next, Self.alice)])
        #expect(m.status == .logined)
        let fresh = SessionGrant(sessionID: "s2", resumeToken: "t2", heartbeat: .seconds(30))
        #expect(m.loginReplied(next, .success(fresh), now: Self.t0)
            == [.notify(.connectSuccess), .online(next, heartbeat: .seconds(30))])
        // The new session counts from 1 again.
        #expect(m.sessionEvent(.message, seq: 1, on: next) == .deliver)
        // And the next drop resumes the new session.
        let third = reconnectID(m.connectionLost(next, error: .networkDisconnected, closeCode: nil,
                                                 now: Self.t0 + .seconds(10)))!
        #expect(m.connected(third) == [.sendResume(third, sessionID: "s2", resumeToken: "t2", lastSeq: 1)])
    }

    @Test func aRenewedUserSigIsTheOneUsedToLogInAgain() {
        var (m, id) = online()
        m.userSigRenewed("sig-new")
        let next = reconnectID(m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: Self.t0))!
        _ = m.connected(next)
        #expect(m.resumeReplied(next, .failure(.noSessionToResume), now: Self.t0)
            == [.sendLogin(next, Credentials(userID: "alice", userSig: "sig-new"))])
    }

    // MARK: Kick and expiry: no reconnect

    @Test func aKickEndsTheSessionAndNothingReconnects() {
        var (m, id) = online()
        guard case .end(let actions) = m.sessionEvent(.kickedOffline, seq: 1, on: id) else {
            Issue.record("a kick must end the session")
            return
        }
        #expect(actions == [.close(id), .notify(.kickedOffline), .failRequests(.kickedOffline)])
        #expect(m.status == .logout)
        // The 4002 close that follows, and anything else, changes nothing.
        #expect(m.connectionLost(id, error: .networkDisconnected, closeCode: 4002, now: Self.t0).isEmpty)
        #expect(m.retryDue(1).isEmpty)
    }

    @Test(arguments: [UInt16(4002), 4005])
    func aKickCloseWithoutItsEventIsStillAKick(code: UInt16) {
        var (m, id) = online()
        let actions = m.connectionLost(id, error: .networkDisconnected, closeCode: code, now: Self.t0)
        #expect(actions == [.close(id), .notify(.kickedOffline), .failRequests(.kickedOffline)])
        #expect(m.status == .logout)
    }

    @Test func kickedWhileAwayIsReportedWithoutReconnecting() {
        var (m, id) = online()
        let next = reconnectID(m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: Self.t0))!
        _ = m.connected(next)
        let kicked = SwitchboardError(code: 6208, desc: "kicked while away")
        #expect(m.resumeReplied(next, .failure(kicked), now: Self.t0)
            == [.close(next), .notify(.connectFailed(kicked)), .notify(.kickedOffline), .failRequests(.kickedOffline)])
        #expect(m.status == .logout)
    }

    @Test func anExpiredUserSigEndsTheSessionOnlineOrAway() {
        var (m, id) = online()
        guard case .end(let actions) = m.sessionEvent(.userSigExpired, seq: 1, on: id) else {
            Issue.record("expiry must end the session")
            return
        }
        #expect(actions == [.close(id), .notify(.userSigExpired), .failRequests(.userSigExpired)])

        var (n, nid) = online()
        let next = reconnectID(n.connectionLost(nid, error: .networkDisconnected, closeCode: nil, now: Self.t0))!
        _ = n.connected(next)
        let expired = SwitchboardError(code: 70001, desc: "expired while away")
        #expect(n.resumeReplied(next, .failure(expired), now: Self.t0)
            == [.close(next), .notify(.connectFailed(expired)), .notify(.userSigExpired), .failRequests(.userSigExpired)])
        #expect(n.status == .logout)
    }

    @Test func aFreshLoginThatMeetsAnExpiredOrBadUserSigStops() {
        for (code, last) in [(70001, Action.notify(.userSigExpired)), (70052, .notify(.kickedOffline))] {
            var (m, id) = online()
            let next = reconnectID(m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: Self.t0))!
            _ = m.connected(next)
            _ = m.resumeReplied(next, .failure(.noSessionToResume), now: Self.t0)
            let actions = m.loginReplied(next, .failure(SwitchboardError(code: code, desc: "")), now: Self.t0)
            #expect(actions.contains(last))
            #expect(!actions.contains { if case .connect = $0 { true } else if case .scheduleRetry = $0 { true } else { false } })
            #expect(m.status == .logout)
        }
        var (m, id) = online()
        let next = reconnectID(m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: Self.t0))!
        _ = m.connected(next)
        _ = m.resumeReplied(next, .failure(.noSessionToResume), now: Self.t0)
        let mismatch = SwitchboardError(code: 70009, desc: "wrong key")
        #expect(m.loginReplied(next, .failure(mismatch), now: Self.t0)
            == [.close(next), .notify(.connectFailed(mismatch)), .failRequests(mismatch)])
        #expect(m.status == .logout)
    }

    @Test func aBusyServerIsRetriedLater() {
        var (m, id) = online()
        let next = reconnectID(m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: Self.t0))!
        _ = m.connected(next)
        let busy = SwitchboardError(code: 70169, desc: "busy")
        #expect(m.resumeReplied(next, .failure(busy), now: Self.t0)
            == [.close(next), .notify(.connectFailed(busy)), .scheduleRetry(token: 1, after: .milliseconds(100))])
        #expect(m.status == .logined)
        guard let third = reconnectID(m.retryDue(1)) else {
            Issue.record("the retry did not connect")
            return
        }
        #expect(m.connected(third) == [.sendResume(third, sessionID: "s1", resumeToken: "t1", lastSeq: 0)])
    }

    // MARK: Backoff

    /// Failed attempts back off exponentially to the cap; a connection that stays up resets the
    /// count, one that drops at once does not.
    @Test func backoffGrowsWhileAttemptsFailAndResetsAfterAStableConnection() {
        var (m, id) = online()
        var now = Self.t0 + .seconds(60)
        var actions = m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: now)
        var delays: [TimeAmount] = []
        for _ in 0..<7 {
            let attempt: ConnectionID
            if let immediate = reconnectID(actions) {
                delays.append(.zero)
                attempt = immediate
            } else if case .scheduleRetry(let token, let after)? = actions.last {
                delays.append(after)
                guard let retried = reconnectID(m.retryDue(token)) else {
                    Issue.record("retry did not connect")
                    return
                }
                attempt = retried
            } else {
                Issue.record("unexpected \(actions)")
                return
            }
            actions = m.connectionLost(attempt, error: .connectFailed, closeCode: nil, now: now)
        }
        #expect(delays == [.zero, .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                           .milliseconds(1600), .seconds(2)])

        // Come online, drop at once: still backing off.
        guard case .scheduleRetry(let token, _)? = actions.last, let attempt = reconnectID(m.retryDue(token)) else {
            Issue.record("no retry")
            return
        }
        _ = m.connected(attempt)
        _ = m.resumeReplied(attempt, .success(()), now: now)
        now = now + .seconds(1)
        let quick = m.connectionLost(attempt, error: .networkDisconnected, closeCode: nil, now: now)
        #expect(quick.last == .scheduleRetry(token: token + 1, after: .seconds(2)))

        // Come online and stay up past resetAfter: the next drop retries at once.
        guard let steady = reconnectID(m.retryDue(token + 1)) else {
            Issue.record("no retry")
            return
        }
        _ = m.connected(steady)
        _ = m.resumeReplied(steady, .success(()), now: now)
        let later = m.connectionLost(steady, error: .networkDisconnected, closeCode: nil, now: now + .seconds(6))
        #expect(reconnectID(later) != nil)
    }

    @Test func aStaleRetryTimerDoesNothing() {
        var (m, id) = online()
        let next = reconnectID(m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: Self.t0))!
        let failed = m.connectionLost(next, error: .connectFailed, closeCode: nil, now: Self.t0)
        guard case .scheduleRetry(let token, _)? = failed.last else {
            Issue.record("no retry scheduled")
            return
        }
        #expect(m.retryDue(token + 1).isEmpty)
        #expect(reconnectID(m.retryDue(token)) != nil)
        #expect(m.retryDue(token).isEmpty, "fires once")
    }

    // MARK: Drain

    @Test func aDrainingServerIsLeftWithinItsWindowAndResumedAtOnce() {
        var (m, id) = online()
        let actions = m.reconnectRequested(id, after: .milliseconds(500))
        guard case .closeLater(id, let after)? = actions.first, actions.count == 1 else {
            Issue.record("expected closeLater, got \(actions)")
            return
        }
        #expect(after >= .zero && after < .milliseconds(500))
        #expect(m.reconnectRequested(id, after: .milliseconds(500)).isEmpty, "once")
        // Dropped right after coming online, but a drain is no failure: resume at once.
        let lost = m.connectionLost(id, error: .networkDisconnected, closeCode: 1001, now: Self.t0)
        #expect(reconnectID(lost) != nil)
    }

    // MARK: Logout

    @Test func logoutWhileOnlineAsksTheServer() {
        var (m, id) = online()
        #expect(m.logout() == .start([.sendLogout(id)]))
        #expect(m.logout() == .reject(.logoutInProgress))
        #expect(m.logoutReplied(id) == [.close(id), .completeLogout, .failRequests(.notLoggedIn)])
        #expect(m.status == .logout)
        #expect(m.logout() == .done([]))
    }

    /// The server must hear the logout, or the detached session would hold its instance until its
    /// window ends: while reconnecting, the attempt is used to resume and log out.
    @Test func logoutWhileReconnectingResumesToLogOut() {
        var (m, id) = online()
        let next = reconnectID(m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: Self.t0))!
        #expect(m.logout() == .start([.notify(.connectFailed(.interrupted))]))
        #expect(m.status == .logined, "until the server confirms")
        #expect(m.connected(next) == [.sendResume(next, sessionID: "s1", resumeToken: "t1", lastSeq: 0)])
        #expect(m.sessionEvent(.message, seq: 1, on: next) == .drop, "nothing more for the app")
        #expect(m.resumeReplied(next, .success(()), now: Self.t0) == [.sendLogout(next)])
        #expect(m.logoutReplied(next) == [.close(next), .completeLogout, .failRequests(.notLoggedIn)])
        #expect(m.status == .logout)

        // From the backoff wait: a connection of its own; a session already gone ends it at once.
        var (n, nid) = online()
        _ = n.connectionLost(nid, error: .networkDisconnected, closeCode: nil, now: Self.t0)
        let failed = n.connectionLost(n.currentConnection!, error: .connectFailed, closeCode: nil, now: Self.t0)
        guard case .scheduleRetry(let token, _)? = failed.last,
              case .start(let actions) = n.logout(), let fresh = reconnectID(actions) else {
            Issue.record("expected a retry, then a logout connection")
            return
        }
        #expect(actions == [.cancelRetry, .connect(fresh)])
        #expect(n.retryDue(token).isEmpty)
        _ = n.connected(fresh)
        #expect(n.resumeReplied(fresh, .failure(.noSessionToResume), now: Self.t0)
            == [.close(fresh), .completeLogout, .failRequests(.notLoggedIn)])
    }

    @Test func aConnectionLostDuringLogoutIsReplacedAFewTimesThenGivenUp() {
        var (m, id) = online()
        _ = m.logout()
        var current = id
        for _ in 1..<Machine.logoutAttempts {
            let actions = m.connectionLost(current, error: .networkDisconnected, closeCode: nil, now: Self.t0)
            guard let next = reconnectID(actions), actions.count == 1 else {
                Issue.record("expected a new connection, got \(actions)")
                return
            }
            current = next
        }
        #expect(m.connectionLost(current, error: .networkDisconnected, closeCode: nil, now: Self.t0)
            == [.completeLogout, .failRequests(.notLoggedIn)])
        #expect(m.status == .logout)

        var (n, nid) = online()
        _ = n.logout()
        #expect(n.logoutTimedOut() == [.close(nid), .completeLogout, .failRequests(.notLoggedIn)])
        #expect(n.logoutTimedOut().isEmpty)
    }

    @Test func logoutDuringAFreshLoginEndsWhatTheLoginMakes() {
        var (m, id) = online()
        let next = reconnectID(m.connectionLost(id, error: .networkDisconnected, closeCode: nil, now: Self.t0))!
        _ = m.connected(next)
        _ = m.resumeReplied(next, .failure(.noSessionToResume), now: Self.t0)  // logging in afresh
        #expect(m.logout() == .start([.notify(.connectFailed(.interrupted))]))
        let fresh = SessionGrant(sessionID: "s2", resumeToken: "t2", heartbeat: nil)
        #expect(m.loginReplied(next, .success(fresh), now: Self.t0) == [.sendLogout(next)])
        #expect(m.logoutReplied(next) == [.close(next), .completeLogout, .failRequests(.notLoggedIn)])
    }

    // MARK: Random walks

    /// Random inputs, including stale and out-of-order ones, from a seeded generator: whatever
    /// happens, the listener sees each attempt end once, events go to the app in strictly rising
    /// seq within a session, and after a kick or an expiry nothing connects again.
    @Test(arguments: 0..<20)
    func invariantsHoldUnderRandomInputs(seed: UInt64) {
        var random = SplitMix64(seed: seed &* 7919 &+ 1)
        var m = Machine(policy: Self.policy, seed: seed)
        var openAttempt = false
        var ended = false
        var session: String?
        var lastDelivered: UInt64 = 0
        var seen: [ConnectionID] = []
        var pendingRetry: UInt64?
        var idle = 0
        var now = Self.t0
        var (deliveries, connects) = (0, 0)

        func check(_ actions: [Action], _ context: String) {
            for action in actions {
                switch action {
                case .notify(.connecting):
                    #expect(!openAttempt, "seed \(seed): onConnecting twice without an outcome (\(context))")
                    #expect(!ended, "seed \(seed): reconnecting after a kick or expiry (\(context))")
                    openAttempt = true
                case .notify(.connectSuccess):
                    #expect(openAttempt, "seed \(seed): success without an attempt (\(context))")
                    openAttempt = false
                case .notify(.connectFailed):
                    openAttempt = false
                case .notify(.kickedOffline), .notify(.userSigExpired):
                    #expect(!ended, "seed \(seed): told twice (\(context))")
                    ended = true
                case .connect(let id):
                    connects += 1
                    #expect(!ended, "seed \(seed): connecting after a kick or expiry (\(context))")
                    seen.append(id)
                case .scheduleRetry(let token, _):
                    #expect(!ended, "seed \(seed): retry scheduled after a kick or expiry (\(context))")
                    pendingRetry = token
                default:
                    break
                }
            }
        }

        for step in 0..<2000 {
            if m.status == .logout {
                #expect(!openAttempt, "seed \(seed): an attempt left open at logout (step \(step))")
                // Stay logged out a few steps (stale inputs must change nothing), then a new life.
                idle += 1
                if idle > 5 {
                    idle = 0
                    ended = false
                    check(m.login(Self.alice).actions, "login \(step)")
                    continue
                }
            }
            now = now + .milliseconds(Int64(random.next() % 3000))
            let stale = seen.isEmpty ? ConnectionID(rawValue: 1) : seen[Int(random.next() % UInt64(seen.count))]
            let id = random.next() % 4 == 0 ? stale : (m.currentConnection ?? stale)
            switch random.next() % 16 {
            case 0, 1:
                check(m.connected(id), "connected \(step)")
            case 2:
                let code: UInt16? = [nil, nil, nil, 1001, 4002][Int(random.next() % 5)]
                check(m.connectionLost(id, error: .networkDisconnected, closeCode: code, now: now), "lost \(step)")
            case 3, 4:
                let result: Result<SessionGrant, SwitchboardError> = random.next() % 4 == 0
                    ? .failure(SwitchboardError(code: [70001, 70169, 70009, 6017][Int(random.next() % 4)], desc: ""))
                    : .success(SessionGrant(sessionID: "s\(step)", resumeToken: "t", heartbeat: nil))
                check(m.loginReplied(id, result, now: now), "login reply \(step)")
            case 5, 6:
                let result: Result<Void, SwitchboardError> = random.next() % 3 != 0
                    ? .success(())
                    : .failure(SwitchboardError(code: [6026, 6014, 6208, 70001, 70169][Int(random.next() % 5)], desc: ""))
                check(m.resumeReplied(id, result, now: now), "resume reply \(step)")
            case 7...12:
                // Around what was delivered: duplicates, the next one, and gaps.
                let seq = UInt64(max(0, Int(m.lastDeliveredSeq) + Int(random.next() % 6) - 2))
                let kind: SessionEventKind = random.next() % 25 == 0 ? .kickedOffline : .message
                let verdict = m.sessionEvent(kind, seq: seq, on: id)
                switch verdict {
                case .deliver:
                    let current = Self.sessionID(m.state)
                    if current != session {
                        session = current
                        lastDelivered = 0
                    }
                    #expect(seq > lastDelivered, "seed \(seed): seq \(seq) delivered after \(lastDelivered)")
                    lastDelivered = seq
                    deliveries += 1
                case .drop:
                    break
                case .end(let actions):
                    check(actions, "event end \(step)")
                }
            case 13:
                if let token = pendingRetry { check(m.retryDue(token), "retry \(step)") }
            case 14:
                check(m.reconnectRequested(id, after: .milliseconds(100)), "drain \(step)")
            default:
                guard random.next() % 6 == 0 else { break }
                switch m.logout() {
                case .start(let actions), .done(let actions): check(actions, "logout \(step)")
                case .reject: break
                }
                if let id = m.currentConnection { check(m.logoutReplied(id), "logout reply \(step)") }
                if random.next() % 4 == 0 { check(m.logoutTimedOut(), "logout timeout \(step)") }
            }
        }
        // The walk went through the interesting places.
        #expect(deliveries > 30 && connects > 50, "seed \(seed): \(deliveries) \(connects)")
    }

    static func sessionID(_ state: Machine.State) -> String? {
        switch state {
        case .online(_, let grant, _), .waiting(_, let grant?, _), .reconnecting(_, let grant?, _, _): grant.sessionID
        default: nil
        }
    }
}

extension ClientSessionStateMachine.LoginDecision {
    var actions: [ClientSessionStateMachine.Action] {
        if case .start(let actions) = self { return actions }
        return []
    }
}
