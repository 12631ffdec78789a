import Foundation
import NIOCore
import NIOPosix
import SwitchboardCluster
import SwitchboardCore
import SwitchboardProtocol
import Synchronization
import Testing
import UserSig

/// Two `ClusterDirectory` nodes on one real redis-server, driven directly (no sockets to clients):
/// the connection side is a sink that records what it is handed.
@Suite("Cluster directory: two nodes on a real Redis")
struct ClusterDirectoryTests {
    static let app = AppConfiguration(sdkAppID: 1_400_000_001, secretKey: "cluster-directory-test-key",
                                      policy: try! LoginPolicy(kind: .dual))

    /// Runs a directory's answers at once, on whatever thread gives them.
    struct Inline: DirectoryExecutor {
        func execute(_ work: @escaping @Sendable () -> Void) { work() }
    }

    final class Sink: SessionSink {
        let deliveries = Mutex<[SessionDelivery]>([])
        func deliver(_ delivery: SessionDelivery) { deliveries.withLock { $0.append(delivery) } }
        var all: [SessionDelivery] { deliveries.withLock { $0 } }
    }

    struct Node {
        let directory: ClusterDirectory
        let name: String
    }

    static func node(_ name: String, redis: RedisServerProcess, ttl: Double = 1.5) async throws -> Node {
        let directory = ClusterDirectory(
            configuration: .init(redis: "redis://127.0.0.1:\(redis.port)/0", nodeTTLSeconds: ttl,
                                 resumeWindowSeconds: 30, resumeBuffer: 100),
            group: redisTestGroup, clock: SystemClock(), logger: redisTestLogger(name))
        directory.start(nodeID: name)
        try await waitUntil("\(name) available") { directory.isAvailable }
        return Node(directory: directory, name: name)
    }

    static func ticket(_ user: String) -> UserSigTicket {
        UserSigTicket(identifier: user, sdkAppID: app.sdkAppID, time: Int64(Date().timeIntervalSince1970) - 1,
                      expire: 86_400)
    }

    static func login(_ node: Node, _ user: String, _ platform: Platform, connection: UInt64, sink: Sink) async
        -> LoginResult {
        await withCheckedContinuation { continuation in
            node.directory.login(app: app, userID: user, platform: platform, ticket: ticket(user),
                                 connection: ConnectionRef(id: connection, sink: sink), executor: Inline()) {
                continuation.resume(returning: $0)
            }
        }
    }

    static func send(_ node: Node, from sender: SessionInfo, to user: String, _ payload: JSONValue) async
        -> Result<SendResult, RequestError> {
        await withCheckedContinuation { continuation in
            node.directory.send(from: sender, to: user, payload: payload, executor: Inline()) {
                continuation.resume(returning: $0)
            }
        }
    }

    static func session(_ result: LoginResult) throws -> (SessionInfo, [Platform]) {
        guard case .success(let info, let kicked) = result else {
            throw TimedOut(description: "login failed: \(result)")
        }
        return (info, kicked)
    }

    @Test("A login on one node kicks the instance the other holds, with the next seq")
    func crossNodeKick() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let a = try await Self.node("node-a", redis: redis)
        let b = try await Self.node("node-b", redis: redis)
        let first = Sink(), second = Sink()
        let (old, _) = try Self.session(await Self.login(a, "alice", .web, connection: 1, sink: first))
        let (new, kicked) = try Self.session(await Self.login(b, "alice", .web, connection: 1, sink: second))
        #expect(kicked == [.web])
        #expect(old.sessionID != new.sessionID)
        try await waitUntil("kick delivered") { !first.all.isEmpty }
        guard case .kicked(let sessionID, let event)? = first.all.first else {
            Issue.record("expected a kick, got \(first.all)")
            return
        }
        #expect(sessionID == old.sessionID && event.seq == 1 && event.name == .kickedOffline)
        #expect(String(decoding: event.data, as: UTF8.self) == #"{"reason":"multiDevice","byPlatform":"Web"}"#)
        // A native login does not conflict with Web under dual.
        let (_, none) = try Self.session(await Self.login(a, "alice", .android, connection: 2, sink: Sink()))
        #expect(none == [])
        #expect(try a.directory.instances(app: Self.app.sdkAppID, userIDs: ["alice", "nobody"])
            == [[InstanceStatus(platform: .web, attached: true), InstanceStatus(platform: .android, attached: true)], nil])
        await a.directory.shutdown()
        await b.directory.shutdown()
    }

    @Test("Messages reach the other node in order; a detached session buffers and resumes on either node")
    func messagesAndResume() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let a = try await Self.node("node-a", redis: redis)
        let b = try await Self.node("node-b", redis: redis)
        let aliceSink = Sink()
        let (alice, _) = try Self.session(await Self.login(a, "alice", .web, connection: 1, sink: aliceSink))
        let (bob, _) = try Self.session(await Self.login(b, "bob", .web, connection: 1, sink: Sink()))
        for i in 0..<50 {
            let sent = try await Self.send(b, from: bob, to: "alice", .number(JSONNumber(i))).get()
            #expect(sent.online == 1)
        }
        try await waitUntil("50 events") { aliceSink.all.count == 50 }
        let seqs = aliceSink.all.compactMap { delivery -> UInt64? in
            if case .event(_, let event) = delivery { event.seq } else { nil }
        }
        #expect(seqs == Array(1...50))

        #expect(a.directory.detach(alice, connectionID: 1))
        try await waitUntil("detached") {
            (try? a.directory.instances(app: Self.app.sdkAppID, userIDs: ["alice"]))
                == [[InstanceStatus(platform: .web, attached: false)]]
        }
        for i in 50..<53 {
            #expect(try await Self.send(b, from: bob, to: "alice", .number(JSONNumber(i))).get().online == 0)
        }
        let resumed = Sink()
        let result: ResumeResult = await withCheckedContinuation { continuation in
            b.directory.resume(sessionID: alice.sessionID, resumeToken: alice.resumeToken, lastSeq: 50,
                               connection: ConnectionRef(id: 7, sink: resumed), executor: Inline()) {
                continuation.resume(returning: $0)
            }
        }
        guard case .success(let info, let replay) = result else {
            Issue.record("resume failed: \(result)")
            return
        }
        #expect(info.userID == "alice" && info.platform == .web)
        #expect(replay.map(\.seq) == [51, 52, 53])
        #expect(replay.map { String(decoding: $0.data, as: UTF8.self).contains("\"payload\":52") } == [false, false, true])  // payloads 50, 51, 52
        let forged: ResumeResult = await withCheckedContinuation { continuation in
            a.directory.resume(sessionID: alice.sessionID, resumeToken: "AAAAAAAAAAAAAAA", lastSeq: 0,
                               connection: ConnectionRef(id: 8, sink: Sink()), executor: Inline()) {
                continuation.resume(returning: $0)
            }
        }
        guard case .failure(let code, _) = forged else {
            Issue.record("a forged token resumed")
            return
        }
        #expect(code == .noSessionToResume)
        await a.directory.shutdown()
        await b.directory.shutdown()
    }

    @Test("Without the store: 70169 at once, not available; back: available, sessions registered again")
    func outage() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let a = try await Self.node("node-a", redis: redis)
        let aliceSink = Sink()
        let (alice, _) = try Self.session(await Self.login(a, "alice", .web, connection: 1, sink: aliceSink))
        redis.kill()
        try await waitUntil("unavailable") { !a.directory.isAvailable }
        let started = ContinuousClock.now
        let refused = await Self.login(a, "carol", .web, connection: 2, sink: Sink())
        guard case .failure(let code, _) = refused else {
            Issue.record("login succeeded without a store")
            return
        }
        #expect(code == .serverBusy)
        #expect(ContinuousClock.now - started < .seconds(1))
        #expect(throws: RequestError.self) { try a.directory.counts(app: Self.app.sdkAppID) }
        try await redis.launch()  // same port, empty
        try await waitUntil("available again", timeout: .seconds(10)) { a.directory.isAvailable }
        // alice was registered again: a message reaches her with the next seq.
        let (carol, _) = try Self.session(await Self.login(a, "carol", .web, connection: 2, sink: Sink()))
        #expect(try await Self.send(a, from: carol, to: "alice", .string("back")).get().online == 1)
        try await waitUntil("delivered") { !aliceSink.all.isEmpty }
        guard case .event(let sessionID, let event)? = aliceSink.all.last else {
            Issue.record("expected an event, got \(aliceSink.all)")
            return
        }
        #expect(sessionID == alice.sessionID && event.seq == 1)
        await a.directory.shutdown()
    }
}
