import Testing
import SwitchboardCore
import SwitchboardProtocol

private typealias Machine = ConnectionStateMachine

private func frame(_ text: String) -> FrameDecodeResult {
    FrameDecoder.decode(Array(text.utf8))
}

private extension ConnectionStateMachine.FrameVerdict {
    var dispatchedOp: String? {
        if case .dispatch(let f) = self { f.op } else { nil }
    }

    /// (id, code) of a `.reject`.
    var rejection: (id: RequestID?, code: ErrorCode)? {
        if case .reject(let id, let code, _) = self { (id, code) } else { nil }
    }

    /// (id, code, close) of a `.rejectAndClose`.
    var closing: (id: RequestID?, code: ErrorCode, close: CloseCode)? {
        if case .rejectAndClose(let id, let code, _, let close) = self { (id, code, close) } else { nil }
    }
}

/// Two real sessions to put in the machine.
private func sessions() throws -> (alice: SessionInfo, bob: SessionInfo, aliceOtherApp: SessionInfo) {
    let h = Harness(policy: try LoginPolicy(kind: .multi))
    return (try h.login("alice", .iPhone).info, try h.login("bob", .web).info,
            try h.login("alice", .iPhone, app: h.registry.app(otherAppID)!).info)
}

private func loggedIn(_ session: SessionInfo) -> Machine {
    var m = Machine()
    #expect(m.loginRequested(sdkAppID: session.sdkAppID, userID: session.userID) == .begin(switchingFrom: nil))
    m.loginSucceeded(session)
    return m
}

@Suite struct ConnectionStateMachineTests {
    static let gatedOps = ["logout", "renewSig", "send"]
    static let openOps = ["login", "resume", "ping", "getLoginUser", "getLoginStatus"]

    @Test func statuses() throws {
        let (alice, _, _) = try sessions()
        #expect(LoginStatus.logined.rawValue == 1)
        #expect(LoginStatus.logining.rawValue == 2)
        #expect(LoginStatus.logout.rawValue == 3)
        var m = Machine()
        #expect(m.state == .awaitingLogin)
        #expect(m.status == .logout && m.session == nil)
        _ = m.loginRequested(sdkAppID: alice.sdkAppID, userID: alice.userID)
        #expect(m.status == .logining && m.session == nil)
        m.loginSucceeded(alice)
        #expect(m.status == .logined && m.session == alice)
        #expect(m.state == .logined(alice))
        m.sessionEnded()
        #expect(m.status == .logout && m.session == nil && m.state == .awaitingLogin)
        m.close()
        #expect(m.status == .logout && m.state == .closed && m.session == nil)
    }

    @Test(arguments: gatedOps)
    func gatedBeforeLogin(op: String) throws {
        let (alice, _, _) = try sessions()
        var m = Machine()
        let v = m.received(frame(#"{"op":"\#(op)","id":7}"#))
        #expect(v.rejection?.code == .notLoggedIn)
        #expect(v.rejection?.id == .number(7))
        #expect(m.received(frame(#"{"op":"\#(op)"}"#)).rejection.map { $0.id == nil && $0.code == .notLoggedIn } == true)
        #expect(m.received(frame(#"{"op":"\#(op)","id":"s"}"#)).rejection?.id == .string("s"))
        // While LOGINING as well.
        _ = m.loginRequested(sdkAppID: alice.sdkAppID, userID: alice.userID)
        #expect(m.received(frame(#"{"op":"\#(op)","id":8}"#)).rejection?.code == .notLoggedIn)
        // Allowed once logged in.
        m.loginSucceeded(alice)
        #expect(m.received(frame(#"{"op":"\#(op)","id":9}"#)).dispatchedOp == op)
        // Gated again after logout / userSigExpired.
        m.sessionEnded()
        #expect(m.received(frame(#"{"op":"\#(op)","id":10}"#)).rejection?.code == .notLoggedIn)
        #expect(m.state == .awaitingLogin)
    }

    @Test(arguments: openOps)
    func openOpsAreDispatchedInAnyStatus(op: String) throws {
        let (alice, _, _) = try sessions()
        var m = Machine()
        #expect(m.received(frame(#"{"op":"\#(op)","id":1}"#)).dispatchedOp == op)
        #expect(m.state == .awaitingLogin)  // receiving changes no state
        _ = m.loginRequested(sdkAppID: alice.sdkAppID, userID: alice.userID)
        #expect(m.received(frame(#"{"op":"\#(op)","id":2}"#)).dispatchedOp == op)
        m.loginSucceeded(alice)
        #expect(m.received(frame(#"{"op":"\#(op)","id":3}"#)).dispatchedOp == op)
    }

    @Test(arguments: ["bogus", "LOGIN", "Login", "", "pong", "reply", "event", "kick"])
    func unknownOpIs6017EvenBeforeLogin(op: String) throws {
        let (alice, _, _) = try sessions()
        var m = Machine()
        let v = m.received(frame(#"{"op":"\#(op)","id":3}"#))
        #expect(v.rejection?.code == .invalidParameters)
        #expect(v.rejection?.id == .number(3))
        _ = m.loginRequested(sdkAppID: alice.sdkAppID, userID: alice.userID)
        #expect(m.received(frame(#"{"op":"\#(op)"}"#)).rejection?.code == .invalidParameters)
        m.loginSucceeded(alice)
        #expect(m.received(frame(#"{"op":"\#(op)","id":4}"#)).rejection?.code == .invalidParameters)
        #expect(m.state == .logined(alice))
    }

    static let malformed = [
        "not json", "[]", "{}", #"{"op":1}"#, #"{"op":null,"id":2}"#, #""login""#, "42", "{", #"{"op":"ping",}"#,
        #"{"op":["login"]}"#, "null",
    ]

    @Test func tenMalformedFramesInARowClose1008() throws {
        for bad in Self.malformed {
            var m = Machine()
            for i in 1...9 {
                let v = m.received(frame(bad))
                #expect(v.rejection?.code == .invalidParameters, "\(bad) #\(i)")
                #expect(m.state == .awaitingLogin)
            }
            let tenth = m.received(frame(bad))
            #expect(tenth.closing?.code == .invalidParameters, "\(bad)")
            #expect(tenth.closing?.close == .policyViolation)
            #expect(tenth.closing?.close.rawValue == 1008)
            #expect(m.state == .closed)
            // Everything after is dropped.
            #expect(m.received(frame(#"{"op":"ping"}"#)) == .ignore)
            #expect(m.received(frame(bad)) == .ignore)
        }
    }

    @Test func malformedWithAUsableIDIsAnsweredWithThatID() {
        var m = Machine()
        #expect(m.received(frame(#"{"id":5,"op":7}"#)).rejection?.id == .number(5))
        #expect(m.received(frame(#"{"id":"x"}"#)).rejection?.id == .string("x"))
        #expect(m.received(frame(#"{"id":true,"op":"ping"}"#)).rejection.map { $0.id == nil } == true)
    }

    @Test(arguments: [#"{"op":"ping"}"#, #"{"op":"getLoginStatus","id":1}"#, #"{"op":"send","id":1}"#,
                      #"{"op":"nonsense","id":1}"#])
    func aWellFormedFrameResetsTheCount(good: String) {
        var m = Machine()
        for _ in 1...9 { #expect(m.received(frame("nope")).rejection != nil) }
        _ = m.received(frame(good))
        for _ in 1...9 { #expect(m.received(frame("nope")).rejection != nil) }
        #expect(m.state == .awaitingLogin)
        #expect(m.received(frame("nope")).closing?.close == .policyViolation)
    }

    @Test func malformedFramesCountWhileLoggedInToo() throws {
        let (alice, _, _) = try sessions()
        var m = loggedIn(alice)
        for _ in 1...9 { _ = m.received(frame("][")) }
        #expect(m.state == .logined(alice))
        #expect(m.received(frame("][")).closing != nil)
        #expect(m.state == .closed && m.session == nil)
    }

    @Test func loginWhileLoginingIs7501() throws {
        let (alice, bob, _) = try sessions()
        var m = Machine()
        #expect(m.loginRequested(sdkAppID: alice.sdkAppID, userID: "alice") == .begin(switchingFrom: nil))
        #expect(m.state == .logining(previous: nil))
        #expect(m.loginRequested(sdkAppID: alice.sdkAppID, userID: "alice") == .inProgress)
        #expect(m.loginRequested(sdkAppID: bob.sdkAppID, userID: "bob") == .inProgress)
        #expect(m.resumeRequested() == .loginInProcess)
        #expect(m.state == .logining(previous: nil))  // the first login goes on
        m.loginSucceeded(alice)
        #expect(m.state == .logined(alice))
        // And during an account switch.
        #expect(m.loginRequested(sdkAppID: bob.sdkAppID, userID: "bob") == .begin(switchingFrom: alice))
        #expect(m.loginRequested(sdkAppID: bob.sdkAppID, userID: "bob") == .inProgress)
        #expect(m.loginRequested(sdkAppID: alice.sdkAppID, userID: "alice") == .inProgress)
        #expect(m.resumeRequested() == .loginInProcess)
        #expect(m.status == .logining)
    }

    @Test func sameUserWhileLoginedIsAlreadyLoggedIn() throws {
        let (alice, _, aliceOtherApp) = try sessions()
        var m = loggedIn(alice)
        #expect(m.loginRequested(sdkAppID: alice.sdkAppID, userID: "alice") == .alreadyLoggedIn(alice))
        #expect(m.state == .logined(alice))
        #expect(m.status == .logined)
        // The same name in another app is another account: a switch.
        #expect(m.loginRequested(sdkAppID: aliceOtherApp.sdkAppID, userID: "alice") == .begin(switchingFrom: alice))
    }

    @Test func accountSwitchBeginsWithSwitchingFrom() throws {
        let (alice, bob, _) = try sessions()
        var m = loggedIn(alice)
        #expect(m.loginRequested(sdkAppID: bob.sdkAppID, userID: "bob") == .begin(switchingFrom: alice))
        #expect(m.state == .logining(previous: alice))
        #expect(m.status == .logining)
        #expect(m.session == alice)  // still in force until the new login succeeds
        m.previousSessionEnded()
        #expect(m.state == .logining(previous: nil))
        #expect(m.session == nil)
        m.loginSucceeded(bob)
        #expect(m.state == .logined(bob))
        #expect(m.session == bob)
    }

    @Test func loginFailedReturnsToThePreviousState() throws {
        let (alice, bob, _) = try sessions()
        // From no session.
        var m = Machine()
        _ = m.loginRequested(sdkAppID: alice.sdkAppID, userID: "alice")
        m.loginFailed()
        #expect(m.state == .awaitingLogin)
        #expect(m.status == .logout)
        // From a session, when the UserSig check fails before the switch logs it out.
        m = loggedIn(alice)
        _ = m.loginRequested(sdkAppID: bob.sdkAppID, userID: "bob")
        m.loginFailed()
        #expect(m.state == .logined(alice))
        #expect(m.status == .logined)
        // After the switch logged the previous session out: no session.
        _ = m.loginRequested(sdkAppID: bob.sdkAppID, userID: "bob")
        m.previousSessionEnded()
        m.loginFailed()
        #expect(m.state == .awaitingLogin)
        // A failed resume.
        #expect(m.resumeRequested() == .ok)
        m.loginFailed()
        #expect(m.state == .awaitingLogin)
        // Nothing to undo outside LOGINING.
        m = loggedIn(alice)
        m.loginFailed()
        #expect(m.state == .logined(alice))
    }

    @Test func resumeRules() throws {
        let (alice, _, _) = try sessions()
        var m = Machine()
        #expect(m.resumeRequested() == .ok)
        #expect(m.state == .logining(previous: nil))
        #expect(m.status == .logining)
        #expect(m.resumeRequested() == .loginInProcess)  // 7501 during LOGINING
        #expect(m.loginRequested(sdkAppID: alice.sdkAppID, userID: "alice") == .inProgress)
        m.loginSucceeded(alice)
        #expect(m.resumeRequested() == .invalidParameters)  // 6017 while LOGINED
        #expect(m.resumeRequested().rawValue == 6017)
        #expect(m.state == .logined(alice))
        m.sessionEnded()
        #expect(m.resumeRequested() == .ok)
    }

    @Test func closedStaysClosed() throws {
        let (alice, _, _) = try sessions()
        var m = loggedIn(alice)
        m.close()
        #expect(m.state == .closed)
        m.loginSucceeded(alice)
        #expect(m.state == .closed)
        m.sessionEnded()
        #expect(m.state == .closed)
        #expect(m.received(frame(#"{"op":"login","id":1}"#)) == .ignore)
        #expect(m.received(frame(#"{"op":"bogus","id":1}"#)) == .ignore)
    }

    @Test func renewedMovesTheExpiryOfTheSessionInForce() throws {
        let (alice, _, _) = try sessions()
        var m = loggedIn(alice)
        m.renewed(userSigExpireAt: alice.userSigExpireAt + 999)
        #expect(m.session?.userSigExpireAt == alice.userSigExpireAt + 999)
        #expect(m.session?.sessionID == alice.sessionID)
        var idle = Machine()
        idle.renewed(userSigExpireAt: 1)
        #expect(idle.state == .awaitingLogin)
    }

    @Test func knownOps() {
        #expect(Machine.knownOps == Set(Self.openOps + Self.gatedOps))
        #expect(Machine.malformedLimit == 10)
    }
}
