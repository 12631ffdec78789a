import Testing
import SwitchboardCore
import SwitchboardProtocol
import UserSig

@Suite struct SessionTableTests {
    // MARK: Login and kick

    @Test func loginReturnsSessionAndResumeToken() throws {
        let h = Harness()
        #expect(h.table.instances(app: testAppID, userID: "alice") == nil)  // no such user yet
        let issued = h.nowSeconds - 30
        let a = try h.login("alice", .iPhone, expire: 600, issuedAt: issued)
        #expect(a.info.userID == "alice")
        #expect(a.info.sdkAppID == testAppID)
        #expect(a.info.platform == .iPhone)
        #expect(a.info.userSigExpireAt == issued + 600)
        #expect(!a.info.sessionID.isEmpty)
        #expect(!a.info.resumeToken.isEmpty)
        #expect(a.kicked == 0)
        #expect(h.table.lastSeq(sessionID: a.sessionID) == 0)
        // No sign-up: the user exists from the first login on.
        #expect(h.platforms(of: "alice") == [.iPhone])
        #expect(h.table.instances(app: testAppID, userID: "alice")?.first?.attached == true)
        // Another app's user of the same name is another user.
        #expect(h.table.instances(app: otherAppID, userID: "alice") == nil)

        let b = try h.login("alice", .web)
        #expect(b.sessionID != a.sessionID)
        #expect(b.info.resumeToken != a.info.resumeToken)
        let other = try h.login("alice", .iPhone, app: h.registry.app(otherAppID)!)
        #expect(other.kicked == 0)  // apps are separate
        #expect(a.sink.deliveries.isEmpty)
    }

    @Test func kickDeliversKickedOfflineAfterTheVictimsLastSeq() throws {
        let h = Harness()  // dual
        let phone = try h.login("alice", .iPhone)
        let bob = try h.login("bob", .mac)
        h.send(from: bob, to: "alice", n: 1)
        h.send(from: bob, to: "alice", n: 2)
        #expect(phone.sink.events.map(\.seq) == [1, 2])
        #expect(h.table.lastSeq(sessionID: phone.sessionID) == 2)
        let android = try h.login("alice", .android)
        #expect(android.kicked == 1)
        let kicks = phone.sink.kicks
        try #require(kicks.count == 1)
        #expect(kicks[0].sessionID == phone.sessionID)
        #expect(kicks[0].event.seq == 3)
        #expect(kicks[0].event.name == .kickedOffline)
        #expect(try json(kicks[0].event) == kickData(reason: "multiDevice", byPlatform: .android))
        // The frame the client reads.
        let frame = try JSONParser.parse(kicks[0].event.frame)
        #expect(frame["op"] == "event")
        #expect(frame["event"] == "kickedOffline")
        #expect(frame["seq"]?.int64Value == 3)
        #expect(frame["data"] == kickData(reason: "multiDevice", byPlatform: .android))
        // The kicked session gets nothing more; the new one does.
        h.send(from: bob, to: "alice", n: 3)
        #expect(phone.sink.deliveries.count == 3)
        #expect(android.sink.events.map(\.seq) == [1])
        #expect(h.table.lastSeq(sessionID: phone.sessionID) == nil)
        // Its connection can no longer detach or log out what it held.
        #expect(h.detach(phone) == nil)
        #expect(h.table.logout(sessionID: phone.sessionID, connectionID: phone.connectionID) == false)
    }

    @Test(arguments: [1, 4])
    func policyAppliesToEachUserIndependently(shardCount: Int) throws {
        let h = Harness(policy: try LoginPolicy(kind: .triple), shardCount: shardCount)
        let users = (0..<40).map { "user_\($0)" }
        var first: [Client] = [], second: [Client] = [], web: [Client] = [], desktop: [Client] = []
        for u in users { first.append(try h.login(u, .iPhone)) }
        for u in users { web.append(try h.login(u, .web)) }
        for u in users { desktop.append(try h.login(u, .linux)) }
        for u in users { second.append(try h.login(u, .iPad)) }
        for i in users.indices {
            #expect(first[i].sink.kicks.map(\.sessionID) == [first[i].sessionID])
            #expect(try firstKickData(first[i].sink) == kickData(reason: "multiDevice", byPlatform: .iPad))
            #expect(second[i].kicked == 1)
            #expect(web[i].kicked == 0 && desktop[i].kicked == 0)
            #expect(web[i].sink.deliveries.isEmpty && desktop[i].sink.deliveries.isEmpty && second[i].sink.deliveries.isEmpty)
            #expect(h.platforms(of: users[i]) == [.web, .linux, .iPad])
        }
        #expect(h.table.counts(app: testAppID).attached == 3 * users.count)
        #expect(h.table.counts(app: testAppID).usersOnline == users.count)
    }

    @Test func logoutFreesTheInstance() throws {
        let h = Harness()
        let a = try h.login("alice", .iPhone)
        #expect(h.table.logout(sessionID: a.sessionID, connectionID: a.connectionID + 1_000_000) == false)
        #expect(h.platforms(of: "alice") == [.iPhone])
        #expect(h.table.logout(sessionID: a.sessionID, connectionID: a.connectionID))
        #expect(h.platforms(of: "alice") == [])
        #expect(h.table.lastSeq(sessionID: a.sessionID) == nil)
        #expect(h.table.logout(sessionID: a.sessionID, connectionID: a.connectionID) == false)
        let b = try h.login("alice", .iPhone)
        #expect(b.kicked == 0)
        #expect(a.sink.deliveries.isEmpty)
        // No more messages for the ended session.
        let bob = try h.login("bob", .web)
        #expect(h.send(from: bob, to: "alice", n: 1).online == 1)
        #expect(a.sink.deliveries.isEmpty)
        #expect(b.sink.events.map(\.seq) == [1])
        // Logout of a user who is then offline leaves the user known.
        #expect(h.table.logout(sessionID: b.sessionID, connectionID: b.connectionID))
        #expect(h.table.instances(app: testAppID, userID: "alice") == [])
    }

    // MARK: Messages

    @Test func sendReachesEveryInstanceAndCopiesToTheSendersOthers() throws {
        let h = Harness(policy: try LoginPolicy(kind: .multi, maxInstances: [.web: 3]))
        let bobs = try [h.login("bob", .web), h.login("bob", .web), h.login("bob", .android)]
        let alicePhone = try h.login("alice", .iPhone)
        let aliceWeb = try h.login("alice", .web)
        let carol = try h.login("carol", .mac)
        h.clock.advance(millis: 1234)
        let result = h.table.send(from: alicePhone.info, to: "bob",
                                  payload: .object(["text": "hi", "list": [1, 2, .null]]))
        #expect(result.online == 3)
        #expect(!result.msgID.isEmpty)
        for bob in bobs {
            let events = bob.sink.events
            try #require(events.count == 1)
            #expect(events[0].seq == 1)
            #expect(events[0].name == .message)
            let data = try json(events[0])
            #expect(data == .object([
                "from": "alice", "to": "bob", "msgID": .string(result.msgID),
                "payload": .object(["text": "hi", "list": [1, 2, .null]]),
                "time": .number(JSONNumber(h.clock.nowMillis())),
            ]))
            #expect(bob.sink.deliveries.count == 1)
        }
        #expect(aliceWeb.sink.events.map(\.seq) == [1])
        #expect(try aliceWeb.sink.events.first.map { try json($0) } == bobs[0].sink.events.first.map { try json($0) })
        #expect(alicePhone.sink.deliveries.isEmpty)
        #expect(carol.sink.deliveries.isEmpty)
        #expect(h.table.lastSeq(sessionID: alicePhone.sessionID) == 0)

        // seq counts per session: a later login starts at 1.
        let lateBob = try h.login("bob", .iPad)
        let second = h.send(from: aliceWeb, to: "bob", n: 2)
        #expect(second.online == 4)
        #expect(second.msgID != result.msgID)
        for bob in bobs { #expect(bob.sink.events.map(\.seq) == [1, 2]) }
        #expect(lateBob.sink.events.map(\.seq) == [1])
        #expect(alicePhone.sink.events.map(\.seq) == [1])
        #expect(aliceWeb.sink.events.map(\.seq) == [1])  // the sending session gets no copy
        #expect(try alicePhone.sink.events.first.flatMap { try payloadNumber($0) } == 2)
        #expect(h.table.lastSeq(sessionID: alicePhone.sessionID) == 1)
        #expect(h.table.lastSeq(sessionID: aliceWeb.sessionID) == 1)
    }

    @Test func onlineCountsOnlyAttachedRecipientInstances() throws {
        let h = Harness(policy: try LoginPolicy(kind: .multi))
        let alice = try h.login("alice", .web)
        let bobPhone = try h.login("bob", .iPhone)
        let bobMac = try h.login("bob", .mac)
        let aliceMac = try h.login("alice", .mac)
        #expect(h.detach(bobMac) != nil)
        #expect(h.send(from: alice, to: "bob", n: 1).online == 1)
        #expect(bobPhone.sink.events.count == 1)
        #expect(bobMac.sink.deliveries.isEmpty)
        #expect(h.send(from: alice, to: "nobody", n: 2).online == 0)
        #expect(aliceMac.sink.events.count == 2)  // copies, whoever the recipient
        // The detached instance buffered its message.
        let (resumed, _) = h.resume(bobMac, lastSeq: 0)
        #expect(try resumed.replay?.map { try payloadNumber($0) } == [1])
        #expect(h.send(from: alice, to: "bob", n: 3).online == 2)
    }

    // MARK: expireUserSig and renewUserSig

    @Test func expireUserSigEndsTheSession() throws {
        let h = Harness()
        let a = try h.login("alice", .iPhone)
        let bob = try h.login("bob", .web)
        h.send(from: bob, to: "alice", n: 1)
        h.send(from: bob, to: "alice", n: 2)
        #expect(h.table.expireUserSig(sessionID: a.sessionID, connectionID: a.connectionID + 1_000_000) == nil)
        let event = try #require(h.table.expireUserSig(sessionID: a.sessionID, connectionID: a.connectionID))
        #expect(event.name == .userSigExpired)
        #expect(event.seq == 3)
        #expect(try json(event) == .object([:]))
        #expect(h.table.expireUserSig(sessionID: a.sessionID, connectionID: a.connectionID) == nil)
        #expect(h.platforms(of: "alice") == [])
        #expect(h.table.lastSeq(sessionID: a.sessionID) == nil)
        #expect(h.send(from: bob, to: "alice", n: 3).online == 0)
        #expect(a.sink.deliveries.count == 2)
        #expect(h.resume(a, lastSeq: 2).0.failureCode == .userSigExpired)
        #expect(try h.login("alice", .iPhone).kicked == 0)
    }

    @Test func renewUserSigMovesTheExpiry() throws {
        let h = Harness(resumeWindow: 600)
        let renewed = try h.login("alice", .iPhone, expire: 60)
        let notRenewed = try h.login("bob", .iPhone, expire: 60)
        let fresh = try h.ticket("alice", expire: 3600)
        #expect(h.table.renewUserSig(sessionID: renewed.sessionID, connectionID: renewed.connectionID + 1_000_000,
                                     ticket: fresh) == .notLoggedIn)
        #expect(h.table.renewUserSig(sessionID: renewed.sessionID, connectionID: renewed.connectionID, ticket: fresh) == .ok)
        #expect(h.table.renewUserSig(sessionID: "00000000000000000000", connectionID: renewed.connectionID,
                                     ticket: fresh) == .notLoggedIn)
        h.detach(renewed)
        h.detach(notRenewed)
        h.clock.advance(seconds: 120)
        let (r1, _) = h.resume(renewed, lastSeq: 0)
        #expect(r1.session?.userSigExpireAt == fresh.expiresAt)
        #expect(r1.session?.userSigExpireAt == h.nowSeconds - 120 + 3600)
        #expect(h.resume(notRenewed, lastSeq: 0).0.failureCode == .userSigExpired)
    }

    @Test func renewWithARevokedUserSigIs70052() throws {
        let h = Harness()
        _ = try h.login("alice", .iPhone)
        let revokedAt = h.nowSeconds
        #expect(h.table.adminKick(app: testAppID, userID: "alice", revokeThrough: revokedAt) == 1)
        h.clock.advance(seconds: 1)
        let a = try h.login("alice", .iPhone)  // issued after the revocation
        let old = try h.ticket("alice", issuedAt: revokedAt)
        #expect(h.table.renewUserSig(sessionID: a.sessionID, connectionID: a.connectionID, ticket: old) == .userSigRevoked)
        #expect(h.table.renewUserSig(sessionID: a.sessionID, connectionID: a.connectionID,
                                     ticket: try h.ticket("alice")) == .ok)
    }

    // MARK: Admin kick and revocation

    @Test func adminKickKicksEveryInstanceAndRevokes() throws {
        let h = Harness(policy: try LoginPolicy(kind: .multi))
        let phone = try h.login("alice", .iPhone)
        let web = try h.login("alice", .web)
        let mac = try h.login("alice", .mac)
        let bob = try h.login("bob", .android)
        h.send(from: bob, to: "alice", n: 1)
        h.detach(mac)
        h.clock.advance(seconds: 5)
        let kickSecond = h.nowSeconds
        #expect(h.table.adminKick(app: testAppID, userID: "alice", revokeThrough: kickSecond) == 3)
        for victim in [phone, web] {
            let kicks = victim.sink.kicks
            try #require(kicks.count == 1)
            #expect(kicks[0].sessionID == victim.sessionID)
            #expect(kicks[0].event.seq == 2)
            #expect(kicks[0].event.name == .kickedOffline)
            #expect(try json(kicks[0].event) == kickData(reason: "admin", byPlatform: nil))
        }
        #expect(mac.sink.kicks.isEmpty)  // detached: nothing to write to
        #expect(h.resume(mac, lastSeq: 0).0.failureCode == .kickedOffline)
        #expect(h.platforms(of: "alice") == [])
        #expect(bob.sink.deliveries.isEmpty)
        #expect(h.platforms(of: "bob") == [.android])

        // UserSigs issued at or before the kick's second are revoked...
        for issued in [kickSecond - 3600, kickSecond - 1, kickSecond] {
            #expect(try h.attemptLogin("alice", .iPhone, issuedAt: issued).failureCode == .userSigRevoked, "TLS.time \(issued)")
        }
        // ... even after the clock moves on, and one issued later works.
        h.clock.advance(seconds: 10)
        #expect(try h.attemptLogin("alice", .web, issuedAt: kickSecond).failureCode == .userSigRevoked)
        let later = try h.login("alice", .iPhone, issuedAt: kickSecond + 1)
        #expect(later.kicked == 0)
        #expect(h.platforms(of: "alice") == [.iPhone])
        // Bob's UserSigs are untouched.
        #expect(try h.attemptLogin("bob", .web, issuedAt: kickSecond - 10).session != nil)
    }

    @Test func adminKickOfUnknownUserIsNil() throws {
        let h = Harness()
        #expect(h.table.adminKick(app: testAppID, userID: "ghost", revokeThrough: h.nowSeconds) == nil)
        // A user who never logged in still logs in afterwards with any UserSig.
        #expect(try h.attemptLogin("ghost", .iPhone, issuedAt: h.nowSeconds - 10).session != nil)
        // A user known to the app but offline: 0 kicked, the revocation still applies.
        let a = try h.login("alice", .iPhone)
        h.table.logout(sessionID: a.sessionID, connectionID: a.connectionID)
        #expect(h.table.adminKick(app: testAppID, userID: "alice", revokeThrough: h.nowSeconds) == 0)
        #expect(try h.attemptLogin("alice", .iPhone).failureCode == .userSigRevoked)
        // Another app's "alice" is unknown.
        #expect(h.table.adminKick(app: otherAppID, userID: "alice", revokeThrough: h.nowSeconds) == nil)
    }

    // MARK: Counts and DAU

    @Test func dauCountsEachUserOncePerUTCDay() throws {
        // 2024-01-01T10:00:00Z
        let day0 = Int64(1_704_103_200_000)
        let h = Harness(policy: try LoginPolicy(kind: .multi), nowMillis: day0)
        #expect(h.table.counts(app: testAppID).dau == 0)
        let a1 = try h.login("alice", .iPhone)
        #expect(h.table.counts(app: testAppID).dau == 1)
        _ = try h.login("alice", .web)
        h.table.logout(sessionID: a1.sessionID, connectionID: a1.connectionID)
        _ = try h.login("alice", .iPhone)
        _ = try h.login("alice", .iPhone)
        #expect(h.table.counts(app: testAppID).dau == 1)
        _ = try h.login("bob", .mac)
        _ = try h.login("bob", .mac)
        _ = try h.login("carol", .mac, app: h.registry.app(otherAppID)!)
        #expect(h.table.counts(app: testAppID).dau == 2)
        #expect(h.table.counts(app: otherAppID).dau == 1)
        // An admin kick of an unknown user does not create one.
        #expect(h.table.adminKick(app: testAppID, userID: "erin", revokeThrough: 0) == nil)
        #expect(h.table.counts(app: testAppID).dau == 2)
        // Bob's UserSigs up to now are revoked.
        let bobRevokedThrough = h.nowSeconds
        #expect(h.table.adminKick(app: testAppID, userID: "bob", revokeThrough: bobRevokedThrough) == 1)

        // Next UTC day: the count starts again.
        h.clock.set(millis: day0 + 14 * 3_600_000)  // 2024-01-02T00:00:00.000Z
        #expect(h.table.counts(app: testAppID).dau == 0)
        // A refused login does not count.
        #expect(try h.attemptLogin("bob", .web, issuedAt: bobRevokedThrough).failureCode == .userSigRevoked)
        #expect(h.table.counts(app: testAppID).dau == 0)
        _ = try h.login("alice", .iPhone)
        _ = try h.login("alice", .web)
        #expect(h.table.counts(app: testAppID).dau == 1)
        _ = try h.login("bob", .web)
        #expect(h.table.counts(app: testAppID).dau == 2)
        #expect(h.table.counts(app: otherAppID).dau == 0)
    }

    @Test func dauRollsOverAtMidnightUTCExactly() throws {
        let lastMillisOfDay = Int64(1_704_153_599_999)  // 2024-01-01T23:59:59.999Z
        let h = Harness(nowMillis: lastMillisOfDay)
        _ = try h.login("alice", .iPhone)
        #expect(h.table.counts(app: testAppID).dau == 1)
        h.clock.advance(millis: 1)
        #expect(h.table.counts(app: testAppID).dau == 0)
        _ = try h.login("alice", .web)
        #expect(h.table.counts(app: testAppID).dau == 1)
        h.clock.advance(seconds: 86_399)
        _ = try h.login("alice", .android)
        #expect(h.table.counts(app: testAppID).dau == 1)
    }

    @Test func countsAttachedDetachedOnlineAndByPlatform() throws {
        let h = Harness(resumeWindow: 60)
        let alicePhone = try h.login("alice", .iPhone)
        let aliceWeb = try h.login("alice", .web)
        _ = try h.login("bob", .android)
        let carol = try h.login("carol", .web)
        _ = alicePhone
        h.detach(aliceWeb)
        h.detach(carol)
        var counts = h.table.counts(app: testAppID)
        #expect(counts.attached == 2)
        #expect(counts.detached == 2)
        #expect(counts.usersOnline == 2)
        #expect(counts.byPlatform == [.iPhone: 1, .android: 1])
        #expect(h.table.instances(app: testAppID, userID: "alice")?.map(\.attached) == [true, false])
        h.clock.advance(seconds: 61)
        counts = h.table.counts(app: testAppID)
        #expect(counts.detached == 0)
        #expect(counts.attached == 2)
        #expect(h.platforms(of: "carol") == [])
        #expect(h.table.counts(app: otherAppID) == SessionCounts())
    }
}
