import Testing
import SwitchboardCore
import SwitchboardProtocol
import UserSig

@Suite struct AuthenticatorTests {
    func verify(_ h: Harness, app: UInt64 = testAppID, user: String = "alice", sig: String) -> ErrorCode {
        do {
            _ = try h.authenticator.verify(sdkAppID: app, userID: user, userSig: sig)
            return .ok
        } catch {
            return error.code
        }
    }

    @Test func validUserSigGivesTheAppAndTicket() throws {
        let h = Harness()
        let issued = h.nowSeconds - 100
        let sig = TLSSigAPIv2.issue(sdkAppID: testAppID, key: UserSigKey(secret: testSecret), identifier: "alice",
                                    expire: 3600, userbuf: Array("buf".utf8), time: issued)
        let (app, ticket) = try h.authenticator.verify(sdkAppID: testAppID, userID: "alice", userSig: sig)
        #expect(app.sdkAppID == testAppID)
        #expect(app.secretKey == testSecret)
        #expect(ticket.identifier == "alice")
        #expect(ticket.sdkAppID == testAppID)
        #expect(ticket.time == issued)
        #expect(ticket.expire == 3600)
        #expect(ticket.expiresAt == issued + 3600)
        #expect(ticket.userbuf == Array("buf".utf8))
    }

    @Test func unknownAppIs70020() {
        let h = Harness()
        let unknown: UInt64 = 1_400_000_999
        // Even with an otherwise perfect UserSig for that app.
        #expect(verify(h, app: unknown, sig: h.sig("alice", app: unknown)) == .unknownSDKAppID)
        #expect(verify(h, app: unknown, sig: h.sig("alice")) == .unknownSDKAppID)
        #expect(verify(h, app: unknown, sig: "garbage") == .unknownSDKAppID)
        #expect(ErrorCode.unknownSDKAppID.rawValue == 70020)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var code: Int
        var make: @Sendable (Harness) -> (app: UInt64, user: String, sig: String)
        var testDescription: String { "\(name) → \(code)" }
    }

    static let cases: [Case] = [
        Case(name: "empty", code: 70002) { _ in (testAppID, "alice", "") },
        Case(name: "not base64", code: 70003) { _ in (testAppID, "alice", "!!!!") },
        Case(name: "not zlib", code: 70003) { _ in (testAppID, "alice", "aGVsbG8gd29ybGQ_") },
        Case(name: "another app's", code: 70014) { h in (testAppID, "alice", h.sig("alice", app: otherAppID)) },
        Case(name: "another user's", code: 70013) { h in (testAppID, "alice", h.sig("bob")) },
        Case(name: "wrong key", code: 70009) { h in
            (testAppID, "alice", TLSSigAPIv2.issue(sdkAppID: testAppID, key: UserSigKey(secret: "wrong"),
                                                   identifier: "alice", expire: 3600, userbuf: nil, time: h.nowSeconds))
        },
        Case(name: "expired", code: 70001) { h in (testAppID, "alice", h.sig("alice", expire: 10, issuedAt: h.nowSeconds - 11)) },
        Case(name: "expired long ago", code: 70001) { h in
            (testAppID, "alice", h.sig("alice", expire: 86_400, issuedAt: h.nowSeconds - 86_400 * 365))
        },
        Case(name: "valid", code: 0) { h in (testAppID, "alice", h.sig("alice")) },
        Case(name: "valid for the other app", code: 0) { h in (otherAppID, "alice", h.sig("alice", app: otherAppID)) },
    ]

    @Test(arguments: cases)
    func section4ErrorCodesComeThrough(c: Case) {
        let h = Harness()
        let (app, user, sig) = c.make(h)
        #expect(verify(h, app: app, user: user, sig: sig).rawValue == c.code)
    }

    @Test func expiryAtTheExactMillisecond() {
        let h = Harness()
        let issued = h.nowSeconds
        let sig = h.sig("alice", expire: 100, issuedAt: issued)
        let expiresAtMillis = (issued + 100) * 1000
        h.clock.set(millis: issued * 1000)
        #expect(verify(h, sig: sig) == .ok)
        h.clock.set(millis: expiresAtMillis - 1)
        #expect(verify(h, sig: sig) == .ok)
        h.clock.set(millis: expiresAtMillis)
        #expect(verify(h, sig: sig) == .ok)
        h.clock.set(millis: expiresAtMillis + 1)
        #expect(verify(h, sig: sig) == .userSigExpired)
        h.clock.set(millis: expiresAtMillis + 999)
        #expect(verify(h, sig: sig) == .userSigExpired)
        h.clock.set(millis: expiresAtMillis + 1000)
        #expect(verify(h, sig: sig) == .userSigExpired)
    }

    @Test func errorOrderAppBeforeUserBeforeKeyBeforeExpiry() {
        let h = Harness()
        let wrongKey = UserSigKey(secret: "wrong")
        let old = h.nowSeconds - 1000
        // Another app's sig, for another user, with the wrong key, expired: the app mismatch wins.
        let all = TLSSigAPIv2.issue(sdkAppID: otherAppID, key: wrongKey, identifier: "bob", expire: 1, userbuf: nil, time: old)
        #expect(verify(h, sig: all) == .userSigWrongApp)
        let userKeyExpiry = TLSSigAPIv2.issue(sdkAppID: testAppID, key: wrongKey, identifier: "bob", expire: 1,
                                              userbuf: nil, time: old)
        #expect(verify(h, sig: userKeyExpiry) == .userSigWrongUser)
        let keyExpiry = TLSSigAPIv2.issue(sdkAppID: testAppID, key: wrongKey, identifier: "alice", expire: 1,
                                          userbuf: nil, time: old)
        #expect(verify(h, sig: keyExpiry) == .userSigMismatch)
    }

    @Test func reloadReplacesTheKey() {
        let h = Harness()
        let sig = h.sig("alice")
        #expect(verify(h, sig: sig) == .ok)
        h.registry.replace(with: [AppConfiguration(sdkAppID: testAppID, secretKey: "rotated")])
        #expect(verify(h, sig: sig) == .userSigMismatch)
        #expect(verify(h, app: otherAppID, sig: h.sig("alice", app: otherAppID)) == .unknownSDKAppID)
        #expect(h.registry.all.map(\.sdkAppID) == [testAppID])
        let rotated = TLSSigAPIv2.issue(sdkAppID: testAppID, key: UserSigKey(secret: "rotated"), identifier: "alice",
                                        expire: 60, userbuf: nil, time: h.nowSeconds)
        #expect(verify(h, sig: rotated) == .ok)
    }
}
