import Foundation
import NIOCore
@_spi(Testing) import SwitchboardClient
import SwitchboardCore
import SwitchboardProtocol
import SwitchboardServer
import Testing
import UserSig

/// The SDK against a real server on loopback (through a `FaultProxy` where the path must break).
@Suite("SDK end to end")
struct SDKEndToEndTests {
    @Test func loginSendReceiveRenewAndLogout() async throws {
        try await withServer(serverConfiguration()) { server, port in
            let alice = try makeManager(port: port, platform: .iPhone)
            let bob = try makeManager(port: port, platform: .web)
            let listener = RecordingListener()
            alice.addListener(listener)
            let bobInbox = Inbox(bob)
            #expect(alice.getLoginStatus() == .logout)
            #expect(alice.getLoginUser() == nil)

            try await alice.login(userID: "alice", userSig: makeSig("alice"))
            try await bob.login(userID: "bob", userSig: makeSig("bob"))
            #expect(alice.getLoginStatus() == .logined)
            #expect(alice.getLoginUser() == "alice")
            #expect(listener.events == [.connecting, .connectSuccess])
            // Same user again: nothing to do.
            try await alice.login(userID: "alice", userSig: makeSig("alice"))
            #expect(listener.events == [.connecting, .connectSuccess])

            let receipt = try await alice.send(to: "bob", payload: ["text": "hi", "n": 1])
            #expect(receipt.online == 1)
            #expect(!receipt.msgID.isEmpty)
            let message = try await bobInbox.next(after: 0)
            #expect(message.from == "alice")
            #expect(message.to == "bob")
            #expect(message.msgID == receipt.msgID)
            #expect(message.payload == ["text": "hi", "n": 1])
            #expect(message.seq == 1)

            let expireAt = try await alice.renewSig(makeSig("alice", expire: 7200))
            #expect(expireAt > Int64(Date().timeIntervalSince1970) + 7000)

            try await alice.logout()
            #expect(alice.getLoginStatus() == .logout)
            #expect(alice.getLoginUser() == nil)
            #expect(server.instances(of: "alice").isEmpty)
            await #expect(throws: SwitchboardError.notLoggedIn) {
                try await alice.send(to: "bob", payload: 1)
            }
            await alice.shutdown()
            await bob.shutdown()
        }
    }

    @Test func aRefusedLoginIsReportedAndNotRetried() async throws {
        try await withServer(serverConfiguration()) { _, port in
            let manager = try makeManager(port: port)
            let listener = RecordingListener()
            manager.addListener(listener)
            let wrongKey = UserSigKey(secret: "not the key")
            let refused = await #expect(throws: SwitchboardError.self) {
                try await manager.login(userID: "carol", userSig: makeSig("carol", key: wrongKey))
            }
            #expect(refused?.code == 70009)
            #expect(listener.events == [.connecting, .connectFailed(70009)])
            #expect(manager.getLoginStatus() == .logout)
            try await Task.sleep(for: .milliseconds(200))
            #expect(await manager.connectionAttempts() == 1)

            // Nothing listening: 9511, once.
            let nowhere = try makeManager(port: 1)
            let unreachable = await #expect(throws: SwitchboardError.self) {
                try await nowhere.login(userID: "carol", userSig: makeSig("carol"))
            }
            #expect(unreachable?.code == SwitchboardError.connectFailed.code)
            #expect(await nowhere.connectionAttempts() == 1)
            await manager.shutdown()
            await nowhere.shutdown()
        }
    }

    /// The server pings every 0.2 s and drops a client silent for 0.4 s: an SDK that answers the
    /// pings stays on its first connection.
    @Test func pingsAreAnsweredAndTheConnectionStays() async throws {
        try await withServer(serverConfiguration(heartbeat: 0.2)) { server, port in
            let manager = try makeManager(port: port)
            try await manager.login(userID: "dave", userSig: makeSig("dave"))
            try await Task.sleep(for: .milliseconds(1200))
            #expect(await manager.connectionAttempts() == 1)
            #expect(server.summary(of: "dave") == ["iPhone attached"])
            await manager.shutdown()
        }
    }

    /// Requests made while the SDK reconnects wait for the connection, then go out.
    @Test func requestsWaitForTheReconnection() async throws {
        try await withServer(serverConfiguration()) { server, port in
            let proxy = try await FaultProxy.start(target: port)
            let erin = try makeManager(port: proxy.port)
            let frank = try makeManager(port: port, platform: .web)
            let inbox = Inbox(frank)
            let listener = RecordingListener()
            erin.addListener(listener)
            try await erin.login(userID: "erin", userSig: makeSig("erin"))
            try await frank.login(userID: "frank", userSig: makeSig("frank"))
            proxy.refuse(true)
            #expect(await proxy.inject(.cut))
            // Once the SDK knows (a request sent before that would be lost with the connection: 9508).
            try await eventually("the drop is noticed") { listener.events.contains(.connectFailed(9508)) }
            let sending = Task { try await erin.send(to: "frank", payload: "while away") }
            try await Task.sleep(for: .milliseconds(300))
            #expect(inbox.count == 0)
            #expect(erin.getLoginStatus() == .logined)
            proxy.refuse(false)
            let receipt = try await sending.value
            #expect(receipt.online == 1)
            #expect(try await inbox.next(after: 0).payload == "while away")
            #expect(server.instances(of: "erin").count == 1)
            await erin.shutdown()
            await frank.shutdown()
            await proxy.shutdown()
        }
    }

    /// A draining server says `reconnect` within `after` ms: the SDK leaves before the server's
    /// 1001 and comes back on a new connection (here the path leads to another server, which does
    /// not know the session: a fresh login there).
    @Test func aDrainingServerIsLeftBeforeItCloses() async throws {
        var drainingConfig = serverConfiguration()
        drainingConfig.drainTimeoutSeconds = 3  // `after` within 1.6 s; the 1001 close at `after`
        let draining = try await startServer(drainingConfig)
        let next = try await startServer(serverConfiguration())
        let proxy = try await FaultProxy.start(target: draining.webSocketAddress!.port!)
        let manager = try makeManager(port: proxy.port)
        let listener = RecordingListener()
        manager.addListener(listener)
        do {
            try await manager.login(userID: "pia", userSig: makeSig("pia"))
            try proxy.retarget(port: next.webSocketAddress!.port!)
            let drain = Task { try await draining.drain() }
            try await eventually("moved", timeout: .seconds(3)) {
                next.summary(of: "pia") == ["iPhone attached"] && listener.last == .connectSuccess
            }
            // Left by the SDK at its moment, not closed by the server (1001).
            #expect(listener.failureDescriptions.allSatisfy { !$0.contains("1001") }, "\(listener.failureDescriptions)")
            #expect(listener.events == [.connecting, .connectSuccess, .connectFailed(9508), .connecting, .connectSuccess])
            try await drain.value
        } catch {
            Issue.record(error)
        }
        await manager.shutdown()
        await proxy.shutdown()
        try? await draining.shutdown()
        try await next.shutdown()
    }

    /// The logout must reach the server (or the detached session would hold its instance for the
    /// whole resume window): when the connection dies under it, the SDK resumes to log out.
    @Test func logoutReachesTheServerWhenTheConnectionDiesUnderIt() async throws {
        try await withServer(serverConfiguration()) { server, port in
            let proxy = try await FaultProxy.start(target: port)
            let manager = try makeManager(port: proxy.port, deadAfter: .milliseconds(300))
            try await manager.login(userID: "quin", userSig: makeSig("quin"))
            // Everything held: the logout frame too; the SDK gives the connection up after 0.3 s.
            #expect(await proxy.inject(.stall, stall: .seconds(3)))
            try await manager.logout()
            #expect(manager.getLoginStatus() == .logout)
            #expect(server.instances(of: "quin").isEmpty)
            #expect(proxy.accepted == 2)

            // And from the backoff wait, with the connection already gone.
            try await manager.login(userID: "quin", userSig: makeSig("quin"))
            proxy.refuse(true)
            #expect(await proxy.inject(.cut))
            try await eventually("detached") { server.summary(of: "quin") == ["iPhone detached"] }
            proxy.refuse(false)
            try await manager.logout()
            #expect(server.instances(of: "quin").isEmpty)
            await manager.shutdown()
            await proxy.shutdown()
        }
    }

    // MARK: No reconnect after a kick or an expired UserSig

    @Test func aKickedClientIsToldOnceAndNeverReconnects() async throws {
        try await withServer(serverConfiguration(policy: .dual)) { server, port in
            let proxy = try await FaultProxy.start(target: port)
            let phone = try makeManager(port: proxy.port, platform: .iPhone)
            let listener = RecordingListener()
            phone.addListener(listener)
            try await phone.login(userID: "gina", userSig: makeSig("gina"))
            let android = try makeManager(port: port, platform: .android)
            try await android.login(userID: "gina", userSig: makeSig("gina"))

            try await eventually("kicked") { listener.count(.kickedOffline) == 1 }
            #expect(phone.getLoginStatus() == .logout)
            #expect(phone.getLoginUser() == nil)
            try await Task.sleep(for: .seconds(1))
            #expect(proxy.accepted == 1, "a kicked client must not connect again")
            #expect(await phone.connectionAttempts() == 1)
            #expect(listener.events == [.connecting, .connectSuccess, .kickedOffline])
            #expect(server.summary(of: "gina") == ["Android attached"])
            await #expect(throws: SwitchboardError.notLoggedIn) {
                try await phone.send(to: "gina", payload: 1)
            }
            // It logs in again when asked (kicking the other in turn).
            try await phone.login(userID: "gina", userSig: makeSig("gina"))
            #expect(phone.getLoginStatus() == .logined)
            await phone.shutdown()
            await android.shutdown()
            await proxy.shutdown()
        }
    }

    @Test func kickedWhileAwayIsToldOnResumeAndNeverReconnects() async throws {
        try await withServer(serverConfiguration(policy: .dual)) { server, port in
            let proxy = try await FaultProxy.start(target: port)
            let phone = try makeManager(port: proxy.port, platform: .iPhone)
            let listener = RecordingListener()
            phone.addListener(listener)
            try await phone.login(userID: "hank", userSig: makeSig("hank"))
            proxy.refuse(true)
            #expect(await proxy.inject(.cut))
            try await eventually("detached") { server.instances(of: "hank").first?.attached == false }
            let android = try makeManager(port: port, platform: .android)
            try await android.login(userID: "hank", userSig: makeSig("hank"))
            proxy.refuse(false)

            try await eventually("kicked") { listener.count(.kickedOffline) == 1 }
            #expect(listener.events.suffix(2) == [.connectFailed(6208), .kickedOffline])
            #expect(listener.attemptsAreWellFormed)
            let attempts = proxy.accepted
            try await Task.sleep(for: .seconds(1))
            #expect(proxy.accepted == attempts, "a kicked client must not connect again")
            #expect(phone.getLoginStatus() == .logout)
            #expect(server.summary(of: "hank") == ["Android attached"])
            await phone.shutdown()
            await android.shutdown()
            await proxy.shutdown()
        }
    }

    @Test func anExpiredUserSigIsToldAndNothingReconnects() async throws {
        try await withServer(serverConfiguration()) { server, port in
            let proxy = try await FaultProxy.start(target: port)
            let manager = try makeManager(port: proxy.port)
            let listener = RecordingListener()
            manager.addListener(listener)
            let now = Int64(Date().timeIntervalSince1970)
            // Lapses when the clock passes now + 1.
            try await manager.login(userID: "ivy", userSig: makeSig("ivy", expire: 101, time: now - 100))
            try await eventually("expired", timeout: .seconds(4)) { listener.count(.userSigExpired) == 1 }
            #expect(manager.getLoginStatus() == .logout)
            try await Task.sleep(for: .milliseconds(700))
            #expect(proxy.accepted == 1)
            #expect(listener.events == [.connecting, .connectSuccess, .userSigExpired])
            #expect(server.instances(of: "ivy").isEmpty)
            // A new UserSig logs in again.
            try await manager.login(userID: "ivy", userSig: makeSig("ivy"))
            #expect(manager.getLoginStatus() == .logined)
            await manager.shutdown()
            await proxy.shutdown()
        }
    }

    @Test func aUserSigThatExpiresWhileAwayIsToldOnResume() async throws {
        try await withServer(serverConfiguration()) { _, port in
            let proxy = try await FaultProxy.start(target: port)
            let manager = try makeManager(port: proxy.port)
            let listener = RecordingListener()
            manager.addListener(listener)
            let now = Int64(Date().timeIntervalSince1970)
            try await manager.login(userID: "jack", userSig: makeSig("jack", expire: 102, time: now - 100))
            proxy.refuse(true)
            #expect(await proxy.inject(.cut))
            // Past the expiry (now + 2), let it back.
            try await Task.sleep(for: .milliseconds(Int64(now + 3) * 1000 - Int64(Date().timeIntervalSince1970 * 1000)))
            proxy.refuse(false)
            try await eventually("expired", timeout: .seconds(4)) { listener.count(.userSigExpired) == 1 }
            #expect(listener.events.suffix(2) == [.connectFailed(70001), .userSigExpired])
            #expect(listener.attemptsAreWellFormed)
            let attempts = proxy.accepted
            try await Task.sleep(for: .milliseconds(700))
            #expect(proxy.accepted == attempts)
            #expect(manager.getLoginStatus() == .logout)
            await manager.shutdown()
            await proxy.shutdown()
        }
    }

    // MARK: Resume that fails: a fresh login with the UserSig held

    /// The server restarted (here: the path leads to a new server): resume answers 6026, and the
    /// SDK logs in again by itself; the new session's events arrive.
    @Test func aServerRestartMeans6026AndAFreshLogin() async throws {
        let first = try await startServer(serverConfiguration())
        let second = try await startServer(serverConfiguration())
        let proxy = try await FaultProxy.start(target: first.webSocketAddress!.port!)
        let manager = try makeManager(port: proxy.port)
        let listener = RecordingListener()
        manager.addListener(listener)
        let inbox = Inbox(manager)
        let sender = try makeManager(port: second.webSocketAddress!.port!, platform: .web)
        do {
            try await manager.login(userID: "kate", userSig: makeSig("kate"))
            try proxy.retarget(port: second.webSocketAddress!.port!)
            try await first.shutdown()
            try await eventually("logged in on the new server") {
                second.summary(of: "kate") == ["iPhone attached"] && listener.last == .connectSuccess
            }
            #expect(manager.getLoginStatus() == .logined)
            #expect(listener.count(.kickedOffline) == 0)
            try await sender.login(userID: "leo", userSig: makeSig("leo"))
            #expect(try await sender.send(to: "kate", payload: "after restart").online == 1)
            let message = try await inbox.next(after: 0)
            #expect(message.payload == "after restart")
            #expect(message.seq == 1)
        } catch {
            Issue.record(error)
        }
        await manager.shutdown()
        await sender.shutdown()
        await proxy.shutdown()
        try await second.shutdown()
    }

    /// More events than the buffer holds arrive while away: resume answers 6014, the SDK logs in
    /// again, and what comes next arrives.
    @Test func anOverflowedBufferMeans6014AndAFreshLogin() async throws {
        try await withServer(serverConfiguration(resumeBuffer: 3)) { server, port in
            let proxy = try await FaultProxy.start(target: port)
            let manager = try makeManager(port: proxy.port)
            let inbox = Inbox(manager)
            let sender = try makeManager(port: port, platform: .web)
            try await manager.login(userID: "mia", userSig: makeSig("mia"))
            try await sender.login(userID: "ned", userSig: makeSig("ned"))
            proxy.refuse(true)
            #expect(await proxy.inject(.cut))
            try await eventually("detached") { server.instances(of: "mia").first?.attached == false }
            for n in 1...5 {
                try await sender.send(to: "mia", payload: .number(JSONNumber(n)))
            }
            #expect(server.instances(of: "mia").isEmpty, "the fourth event ended the session")
            proxy.refuse(false)
            try await eventually("logged in again") {
                server.summary(of: "mia") == ["iPhone attached"]
            }
            try await sender.send(to: "mia", payload: "fresh")
            let message = try await inbox.next(after: 0)
            #expect(message.payload == "fresh")
            #expect(message.seq == 1)
            await manager.shutdown()
            await sender.shutdown()
            await proxy.shutdown()
        }
    }
}
