import Testing
import SwitchboardCore
import SwitchboardProtocol

@Suite struct ResumeTests {
    /// Bob on Mac sends to alice, who is on iPhone.
    func setUp(resumeWindow: Int64 = 120, resumeBuffer: Int = 1000, expire: Int64 = 86_400)
        throws -> (Harness, alice: Client, bob: Client) {
        let h = Harness(resumeWindow: resumeWindow, resumeBuffer: resumeBuffer)
        let alice = try h.login("alice", .iPhone, expire: expire)
        let bob = try h.login("bob", .mac)
        return (h, alice, bob)
    }

    @Test func replaysExactlyTheEventsAfterLastSeqInOrder() throws {
        let (h, alice, bob) = try setUp()
        h.send(from: bob, to: "alice", n: 1)
        h.send(from: bob, to: "alice", n: 2)
        #expect(alice.sink.events.map(\.seq) == [1, 2])
        let until = h.detach(alice)
        #expect(until == h.clock.nowMillis() + 120_000)
        #expect(h.detach(alice) == nil)  // no longer attached to that connection
        #expect(h.table.instances(app: testAppID, userID: "alice")?.map(\.attached) == [false])
        for n in 3...5 {
            #expect(h.send(from: bob, to: "alice", n: n).online == 0)
        }
        #expect(alice.sink.deliveries.count == 2)  // nothing reaches the dropped connection
        #expect(h.table.lastSeq(sessionID: alice.sessionID) == 5)

        let (result, resumed) = h.resume(alice, lastSeq: 2)
        let replay = try #require(result.replay)
        #expect(replay.map(\.seq) == [3, 4, 5])
        #expect(try replay.map { try payloadNumber($0) } == [3, 4, 5])
        #expect(replay.allSatisfy { $0.name == .message })
        let info = try #require(result.session)
        #expect(info.sessionID == alice.sessionID)
        #expect(info.resumeToken == alice.info.resumeToken)
        #expect(info.userID == "alice" && info.platform == .iPhone && info.sdkAppID == testAppID)
        #expect(info.userSigExpireAt == alice.info.userSigExpireAt)
        #expect(resumed.sink.deliveries.isEmpty)  // replay is returned, not delivered
        #expect(alice.sink.movedAway.isEmpty)  // the old connection was already gone
        // Live events continue the sequence on the new connection.
        #expect(h.send(from: bob, to: "alice", n: 6).online == 1)
        #expect(resumed.sink.events.map(\.seq) == [6])
        #expect(alice.sink.deliveries.count == 2)
        #expect(h.table.instances(app: testAppID, userID: "alice")?.map(\.attached) == [true])
    }

    @Test(arguments: [0, 1, 3, 4, 5] as [UInt64])
    func replayStartsAfterAnyLastSeq(lastSeq: UInt64) throws {
        let (h, alice, bob) = try setUp()
        h.send(from: bob, to: "alice", n: 1)
        h.send(from: bob, to: "alice", n: 2)
        h.detach(alice)
        for n in 3...5 { h.send(from: bob, to: "alice", n: n) }
        let (result, _) = h.resume(alice, lastSeq: lastSeq)
        #expect(result.replay?.map(\.seq) == Array((lastSeq + 1)..<6))
    }

    @Test func lastSeqBeyondTheSessionIsRefused() throws {
        let (h, alice, bob) = try setUp()
        h.send(from: bob, to: "alice", n: 1)
        h.detach(alice)
        #expect(h.resume(alice, lastSeq: 2).0.failureCode == .invalidParameters)
        #expect(h.resume(alice, lastSeq: 1).0.replay?.isEmpty == true)
    }

    @Test func theSameTokenResumesTwice() throws {
        let (h, alice, bob) = try setUp()
        h.detach(alice)
        h.send(from: bob, to: "alice", n: 1)
        let (first, second) = h.resume(alice, lastSeq: 0)
        #expect(first.replay?.map(\.seq) == [1])
        h.send(from: bob, to: "alice", n: 2)
        #expect(second.sink.events.map(\.seq) == [2])
        #expect(h.detach(second) != nil)
        h.send(from: bob, to: "alice", n: 3)
        let (again, third) = h.resume(alice, lastSeq: 2, token: alice.info.resumeToken)
        #expect(again.replay?.map(\.seq) == [3])
        #expect(again.session?.resumeToken == alice.info.resumeToken)
        // And a third time, straight over a still-attached connection.
        let (thrice, fourth) = h.resume(alice, lastSeq: 3)
        #expect(thrice.replay?.isEmpty == true)
        #expect(third.sink.movedAway == [alice.sessionID])
        h.send(from: bob, to: "alice", n: 4)
        #expect(fourth.sink.events.map(\.seq) == [4])
        #expect(third.sink.events.isEmpty)
    }

    @Test func wrongTokenOrUnknownSessionIs6026() throws {
        let (h, alice, _) = try setUp()
        let other = try h.login("carol", .web)
        h.detach(alice)
        h.detach(other)
        #expect(h.resume(alice, lastSeq: 0, token: "x").0.failureCode == .noSessionToResume)
        #expect(h.resume(alice, lastSeq: 0, token: other.info.resumeToken).0.failureCode == .noSessionToResume)
        var flipped = Array(alice.info.resumeToken.utf8)
        flipped[0] = flipped[0] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(h.resume(alice, lastSeq: 0, token: String(decoding: flipped, as: UTF8.self)).0.failureCode
                    == .noSessionToResume)
        #expect(h.resume(alice, lastSeq: 0, token: alice.info.resumeToken + "A").0.failureCode == .noSessionToResume)
        #expect(h.resume(alice, lastSeq: 0, token: "").0.failureCode == .noSessionToResume)
        for unknown in ["0123456789abcdef0000", "", "nope", "ffffffffffffffffffff", alice.sessionID + "0"] {
            let result = h.table.resume(sessionID: unknown, resumeToken: alice.info.resumeToken, lastSeq: 0,
                                        connection: newConnection())
            #expect(result.failureCode == .noSessionToResume, "\(unknown)")
        }
        // A token from another table (another secret) does not work either.
        let otherTable = SessionTable(clock: h.clock)
        #expect(otherTable.resume(sessionID: alice.sessionID, resumeToken: alice.info.resumeToken, lastSeq: 0,
                                  connection: newConnection()).failureCode == .noSessionToResume)
        // The failed attempts changed nothing.
        #expect(h.resume(alice, lastSeq: 0).0.session != nil)
    }

    @Test func resumeAtTheEndOfTheWindowWorks() throws {
        let (h, alice, _) = try setUp(resumeWindow: 120)
        h.detach(alice)
        h.clock.advance(seconds: 120)
        h.table.reap(sessionID: alice.sessionID)
        #expect(h.resume(alice, lastSeq: 0).0.session != nil)
    }

    @Test func resumeAfterTheWindowIs6026() throws {
        let (h, alice, bob) = try setUp(resumeWindow: 120)
        h.detach(alice)
        h.send(from: bob, to: "alice", n: 1)
        h.clock.advance(millis: 120_001)
        #expect(h.resume(alice, lastSeq: 0).0.failureCode == .noSessionToResume)
        #expect(h.platforms(of: "alice") == [])
        // Its instance is free: a new login on the platform kicks nobody.
        #expect(try h.login("alice", .iPhone).kicked == 0)
    }

    @Test func reapedAfterTheWindowIs6026AndFreesTheInstance() throws {
        let (h, alice, _) = try setUp(resumeWindow: 30)
        h.detach(alice)
        h.clock.advance(seconds: 31)
        h.table.reap(sessionID: alice.sessionID)
        #expect(h.table.lastSeq(sessionID: alice.sessionID) == nil)
        #expect(h.table.counts(app: testAppID).detached == 0)
        #expect(h.resume(alice, lastSeq: 0).0.failureCode == .noSessionToResume)
        #expect(try h.login("alice", .android).kicked == 0)
    }

    @Test func kickedWhileDetachedIs6208() throws {
        let (h, alice, _) = try setUp()
        h.detach(alice)
        #expect(h.table.instances(app: testAppID, userID: "alice")?.map(\.attached) == [false])
        let android = try h.login("alice", .android)  // dual: the detached iPhone still counts
        #expect(android.kicked == 1)
        #expect(alice.sink.deliveries.isEmpty)  // nothing to deliver to
        #expect(h.platforms(of: "alice") == [.android])
        #expect(h.resume(alice, lastSeq: 0).0.failureCode == .kickedOffline)
        // Still 6208 later in the window, and again.
        h.clock.advance(seconds: 100)
        #expect(h.resume(alice, lastSeq: 0).0.failureCode == .kickedOffline)
        // A wrong token still says 6026, not why the session ended.
        #expect(h.resume(alice, lastSeq: 0, token: "AAAA").0.failureCode == .noSessionToResume)
        #expect(android.sink.deliveries.isEmpty)
    }

    @Test func kickedWhileAttachedCannotResumeEither() throws {
        let (h, alice, _) = try setUp()
        _ = try h.login("alice", .iPad)
        #expect(alice.sink.kicks.count == 1)
        #expect(h.detach(alice) == nil)
        #expect(h.resume(alice, lastSeq: 0).0.failureCode == .kickedOffline)
    }

    @Test func userSigExpiredWhileDetachedIs70001() throws {
        let (h, alice, _) = try setUp(resumeWindow: 120, expire: 60)
        h.detach(alice)
        h.clock.advance(seconds: 61)
        #expect(h.resume(alice, lastSeq: 0).0.failureCode == .userSigExpired)
        #expect(h.platforms(of: "alice") == [])
        #expect(h.resume(alice, lastSeq: 0).0.failureCode == .userSigExpired)
    }

    @Test func userSigValidToTheMillisecondOfExpiry() throws {
        let (h, alice, _) = try setUp(resumeWindow: 120, expire: 60)
        let expiresAtMillis = alice.info.userSigExpireAt * 1000
        h.detach(alice)
        h.clock.set(millis: expiresAtMillis)
        #expect(h.resume(alice, lastSeq: 0).0.session != nil)

        let (h2, alice2, _) = try setUp(resumeWindow: 120, expire: 60)
        h2.detach(alice2)
        h2.clock.set(millis: alice2.info.userSigExpireAt * 1000 + 1)
        #expect(h2.resume(alice2, lastSeq: 0).0.failureCode == .userSigExpired)
    }

    @Test func loggedOutIs6014() throws {
        let (h, alice, _) = try setUp()
        #expect(h.table.logout(sessionID: alice.sessionID, connectionID: alice.connectionID))
        #expect(h.resume(alice, lastSeq: 0).0.failureCode == .notLoggedIn)
        #expect(h.platforms(of: "alice") == [])
    }

    @Test(arguments: [1, 5, 64])
    func exactlyResumeBufferEventsStillResume(buffer: Int) throws {
        let (h, alice, bob) = try setUp(resumeBuffer: buffer)
        h.detach(alice)
        for n in 1...buffer { h.send(from: bob, to: "alice", n: n) }
        let (result, _) = h.resume(alice, lastSeq: 0)
        let replay = try #require(result.replay)
        #expect(replay.map(\.seq) == (1...UInt64(buffer)).map { $0 })
        #expect(try replay.map { try payloadNumber($0) } == (1...Int64(buffer)).map { $0 })
    }

    @Test(arguments: [1, 5, 64])
    func oneMoreThanResumeBufferIs6014(buffer: Int) throws {
        let (h, alice, bob) = try setUp(resumeBuffer: buffer)
        h.detach(alice)
        for n in 1...(buffer + 1) { h.send(from: bob, to: "alice", n: n) }
        #expect(h.resume(alice, lastSeq: 0).0.failureCode == .notLoggedIn)
        #expect(h.resume(alice, lastSeq: UInt64(buffer)).0.failureCode == .notLoggedIn)
        #expect(h.platforms(of: "alice") == [])  // the overflowed session no longer holds its instance
        #expect(try h.login("alice", .iPhone).kicked == 0)
    }

    @Test func theBufferLimitCountsAfresh() throws {
        // Each detach gets the whole buffer; a resume in between empties nothing it should not.
        let (h, alice, bob) = try setUp(resumeBuffer: 3)
        h.detach(alice)
        for n in 1...3 { h.send(from: bob, to: "alice", n: n) }
        var (result, current) = h.resume(alice, lastSeq: 0)
        #expect(result.replay?.map(\.seq) == [1, 2, 3])
        h.table.acknowledge(sessionID: alice.sessionID, connectionID: current.connectionID, through: 3)
        h.detach(current)
        for n in 4...6 { h.send(from: bob, to: "alice", n: n) }
        (result, current) = h.resume(alice, lastSeq: 3)
        #expect(result.replay?.map(\.seq) == [4, 5, 6])
    }

    @Test func unacknowledgedEventsBeyondTheBufferWhileAttached() throws {
        let (h, alice, bob) = try setUp(resumeBuffer: 3)
        for n in 1...5 { h.send(from: bob, to: "alice", n: n) }  // never acknowledged
        #expect(alice.sink.events.map(\.seq) == [1, 2, 3, 4, 5])
        h.detach(alice)
        // Events 1 and 2 were dropped: a client that saw less cannot resume without a gap.
        #expect(h.resume(alice, lastSeq: 0).0.failureCode == .notLoggedIn)
        #expect(h.resume(alice, lastSeq: 1).0.failureCode == .notLoggedIn)
        #expect(h.resume(alice, lastSeq: 2).0.replay?.map(\.seq) == [3, 4, 5])
    }

    @Test func resumeOfAnAttachedSessionMovesIt() throws {
        let (h, alice, bob) = try setUp()
        h.send(from: bob, to: "alice", n: 1)
        h.send(from: bob, to: "alice", n: 2)
        // A half-open old connection: the session is still attached to it.
        let (result, moved) = h.resume(alice, lastSeq: 1)
        #expect(result.replay?.map(\.seq) == [2])  // unacknowledged, so still buffered
        #expect(alice.sink.movedAway == [alice.sessionID])
        #expect(alice.sink.deliveries.count == 3)
        h.send(from: bob, to: "alice", n: 3)
        #expect(moved.sink.events.map(\.seq) == [3])
        #expect(alice.sink.deliveries.count == 3)
        // The old connection no longer owns the session.
        #expect(h.detach(alice) == nil)
        #expect(h.table.logout(sessionID: alice.sessionID, connectionID: alice.connectionID) == false)
        #expect(h.table.expireUserSig(sessionID: alice.sessionID, connectionID: alice.connectionID) == nil)
        #expect(h.table.instances(app: testAppID, userID: "alice")?.map(\.attached) == [true])
        #expect(h.table.logout(sessionID: alice.sessionID, connectionID: moved.connectionID))
    }

    @Test func acknowledgeTrimsTheBuffer() throws {
        let (h, alice, bob) = try setUp()
        for n in 1...5 { h.send(from: bob, to: "alice", n: n) }
        // Wrong connection: ignored.
        h.table.acknowledge(sessionID: alice.sessionID, connectionID: bob.connectionID, through: 5)
        h.table.acknowledge(sessionID: alice.sessionID, connectionID: alice.connectionID, through: 3)
        h.detach(alice)
        h.send(from: bob, to: "alice", n: 6)
        let (fromAck, current) = h.resume(alice, lastSeq: 3)
        #expect(fromAck.replay?.map(\.seq) == [4, 5, 6])
        #expect(try fromAck.replay?.map { try payloadNumber($0) } == [4, 5, 6])
        // Nothing up to the acknowledged seq is replayed, whatever is asked for: a resume from
        // before it either replays only what follows it or is refused (6014, log in again).
        h.detach(current)
        let (fromZero, _) = h.resume(alice, lastSeq: 0)
        if let replay = fromZero.replay {
            #expect(!replay.contains { $0.seq <= 3 })
        } else {
            #expect(fromZero.failureCode == .notLoggedIn)
        }
        let (fromAckAgain, again) = h.resume(alice, lastSeq: 3)
        #expect(fromAckAgain.replay?.map(\.seq) == [4, 5, 6])
        // Acknowledging everything leaves nothing to replay.
        h.table.acknowledge(sessionID: alice.sessionID, connectionID: again.connectionID, through: 6)
        h.detach(again)
        #expect(h.resume(alice, lastSeq: 6).0.replay?.isEmpty == true)
    }

    @Test func aDetachedSessionCountsAgainstTheLimitAndIsKickedFirst() throws {
        let h = Harness(policy: try LoginPolicy(kind: .dual, maxInstances: [.web: 2]))
        let w1 = try h.login("alice", .web)
        let w2 = try h.login("alice", .web)
        h.detach(w1)
        let w3 = try h.login("alice", .web)
        #expect(w3.kicked == 1)  // the detached, earliest one
        #expect(w1.sink.deliveries.isEmpty)
        #expect(w2.sink.deliveries.isEmpty)
        #expect(h.resume(w1, lastSeq: 0).0.failureCode == .kickedOffline)
        #expect(h.table.instances(app: testAppID, userID: "alice")?.map(\.attached) == [true, true])
    }

    @Test func aDetachedSessionKeepsItsPlaceInLoginOrder() throws {
        // Earliest means earliest login, not earliest (re)attachment.
        let h = Harness(policy: try LoginPolicy(kind: .dual, maxInstances: [.web: 2]))
        let w1 = try h.login("alice", .web)
        let w2 = try h.login("alice", .web)
        h.detach(w1)
        let (_, w1Again) = h.resume(w1, lastSeq: 0)
        let w3 = try h.login("alice", .web)
        #expect(w3.kicked == 1)
        #expect(w1Again.sink.kicks.map(\.sessionID) == [w1.sessionID])
        #expect(w2.sink.deliveries.isEmpty)
    }
}

@Suite struct ResumeBufferVolumeTests {
    /// Many events, acknowledged in uneven steps while attached (exercising the buffer's
    /// compaction), then a drop: the resume replays exactly what was not acknowledged.
    @Test(arguments: [(300, [7, 64, 65, 130, 200, 201, 290]), (1000, [1, 500, 999]), (257, [256])])
    func acknowledgeInStepsThenResume(total: Int, acks: [Int]) throws {
        let h = Harness(resumeBuffer: 2000)
        let alice = try h.login("alice", .iPhone)
        let bob = try h.login("bob", .mac)
        var sent = 0
        for ack in acks {
            while sent < ack + 5 && sent < total {
                sent += 1
                h.send(from: bob, to: "alice", n: sent)
            }
            h.table.acknowledge(sessionID: alice.sessionID, connectionID: alice.connectionID, through: UInt64(ack))
        }
        while sent < total {
            sent += 1
            h.send(from: bob, to: "alice", n: sent)
        }
        #expect(alice.sink.events.map(\.seq) == (1...UInt64(total)).map { $0 })
        h.detach(alice)
        let lastAck = acks.last!
        let (result, _) = h.resume(alice, lastSeq: UInt64(lastAck))
        let replay = try #require(result.replay)
        #expect(replay.map(\.seq) == ((lastAck + 1)...total).map { UInt64($0) })
        #expect(try replay.map { try payloadNumber($0) } == ((lastAck + 1)...total).map { Int64($0) })
    }
}
