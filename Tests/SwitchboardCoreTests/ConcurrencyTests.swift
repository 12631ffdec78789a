import Dispatch
import Synchronization
import Testing
import SwitchboardCore
import SwitchboardProtocol
import UserSig

/// A small seeded generator, so a failing round can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct ConcurrencyTests {
    static let logins = 64

    struct Round: Sendable, CustomTestStringConvertible {
        var kind: LoginPolicy.Kind
        var seed: UInt64
        /// All logins on one platform (the held set is then fully determined), else random platforms.
        var onePlatform: Bool
        var testDescription: String { "\(kind) seed \(seed)\(onePlatform ? " one platform" : "")" }
    }

    static let rounds: [Round] = LoginPolicy.Kind.allCases.flatMap { kind in
        (1...4).map { Round(kind: kind, seed: UInt64($0) * 7919, onePlatform: false) }
            + [Round(kind: kind, seed: 31, onePlatform: true)]
    }

    @Test(arguments: rounds)
    func simultaneousLoginsOfOneUser(round: Round) throws {
        var rng = SplitMix64(state: round.seed)
        var limits: [Platform: Int] = [:]
        for p in allPlatforms {
            limits[p] = Int.random(in: 1...LoginPolicy.ceiling(for: p), using: &rng)
        }
        let policy = try LoginPolicy(kind: round.kind, maxInstances: limits)
        let only = allPlatforms.randomElement(using: &rng)!
        let platforms = (0..<Self.logins).map { _ in
            round.onePlatform ? only : allPlatforms.randomElement(using: &rng)!
        }
        // Few shards: the user's shard is shared with the bystanders' traffic.
        let h = Harness(policy: policy, shardCount: 2)
        let bystander = try h.login("bystander", .web)
        let tickets = try (0..<Self.logins).map { _ in try h.ticket("alice") }
        let sinks = (0..<Self.logins).map { _ in RecordingSink() }
        let connections = sinks.map { newConnection($0) }
        let results = Mutex<[Int: (SessionInfo, [Platform])]>([:])
        let failures = Mutex<[String]>([])
        let table = h.table, app = h.app

        DispatchQueue.concurrentPerform(iterations: Self.logins) { i in
            switch table.login(app: app, userID: "alice", platform: platforms[i], ticket: tickets[i],
                               connection: connections[i]) {
            case .success(let info, let kicked):
                results.withLock { $0[i] = (info, kicked) }
            case .failure(let code, let desc):
                failures.withLock { $0.append("\(i): \(code) \(desc)") }
            }
            // Some unrelated traffic in the meantime.
            if i % 8 == 0 { _ = table.send(from: bystander.info, to: "bystander", payload: .null) }
        }

        #expect(failures.withLock { $0 }.isEmpty)
        let sessions = results.withLock { $0 }
        try #require(sessions.count == Self.logins)
        #expect(Set(sessions.values.map(\.0.sessionID)).count == Self.logins)
        for (i, (info, _)) in sessions { #expect(info.platform == platforms[i]) }

        // Every login's session was kicked exactly once or is still held; never both, none lost.
        var held: [Int] = []
        var kickedCount = 0
        for i in 0..<Self.logins {
            let sessionID = sessions[i]!.0.sessionID
            let kicks = sinks[i].kicks
            let stillHeld = table.lastSeq(sessionID: sessionID) != nil
            #expect(kicks.count <= 1, "login \(i) kicked \(kicks.count) times")
            #expect((kicks.count == 1) != stillHeld, "login \(i): kicked \(kicks.count), held \(stillHeld)")
            #expect(sinks[i].deliveries.count == kicks.count)
            if stillHeld { held.append(i) }
            if let kick = kicks.first {
                kickedCount += 1
                #expect(kick.sessionID == sessionID)
                #expect(kick.event.seq == 1)
                let data = try json(kick.event)
                #expect(data["reason"] == "multiDevice")
                // Whoever kicked it logged in on a platform of its group (or its own).
                let by = try #require(data["byPlatform"]?.stringValue.flatMap(Platform.init(rawValue:)))
                #expect(by == platforms[i] || specSameGroup(round.kind, by, platforms[i]))
            }
        }
        #expect(kickedCount + held.count == Self.logins)
        // What the logins said they kicked adds up to the kicks delivered, platform by platform.
        let reported = sessions.values.flatMap(\.1).map(\.rawValue).sorted()
        let delivered = (0..<Self.logins).filter { !sinks[$0].kicks.isEmpty }.map { platforms[$0].rawValue }.sorted()
        #expect(reported.count == kickedCount)
        #expect(reported == delivered)

        // The table agrees with the sessions held.
        let instances = try #require(table.instances(app: testAppID, userID: "alice"))
        #expect(instances.allSatisfy { $0.attached })
        #expect(instances.map(\.platform.rawValue).sorted() == held.map { platforms[$0].rawValue }.sorted())

        // The held set is what the policy allows.
        let heldPlatforms = held.map { platforms[$0] }
        let groups = specGroups[round.kind]!
        for (g, group) in groups.enumerated() {
            let inGroup = heldPlatforms.filter { group.contains($0.rawValue) }
            let loggedInGroup = platforms.filter { group.contains($0.rawValue) }
            // The latest login of each group survives, so a group with logins is never empty.
            #expect(inGroup.isEmpty == loggedInGroup.isEmpty, "group \(g)")
            // One platform per group, within its limit.
            #expect(Set(inGroup).count <= 1, "group \(g): \(inGroup.map(\.rawValue))")
            if let p = inGroup.first {
                #expect(inGroup.count <= limits[p]!, "\(p.rawValue): \(inGroup.count) held, limit \(limits[p]!)")
                // When the group saw logins on one platform only, it holds exactly min(limit, logins).
                if Set(loggedInGroup).count == 1 {
                    #expect(inGroup.count == min(limits[p]!, loggedInGroup.count), "\(p.rawValue)")
                }
            }
        }
        if round.onePlatform {
            #expect(held.count == min(limits[only]!, Self.logins))
        }

        // A message reaches exactly the held sessions, once each.
        let result = table.send(from: bystander.info, to: "alice", payload: "after")
        #expect(result.online == held.count)
        for i in 0..<Self.logins {
            let messages = sinks[i].events.filter { $0.name == .message }
            #expect(messages.count == (held.contains(i) ? 1 : 0), "login \(i)")
        }
        // Nothing leaked to the bystander.
        #expect(bystander.sink.kicks.isEmpty)
        #expect(h.platforms(of: "bystander") == [.web])
    }

    @Test(arguments: LoginPolicy.Kind.allCases)
    func simultaneousLoginsOfManyUsers(kind: LoginPolicy.Kind) throws {
        // 64 users × 4 logins each on random platforms, all at once: every user ends up within the
        // policy, and no kick crosses users.
        let h = Harness(policy: try LoginPolicy(kind: kind), shardCount: 4)
        var rng = SplitMix64(state: 42)
        let jobs = (0..<256).map { i in ("user_\(i % 64)", allPlatforms.randomElement(using: &rng)!) }
        let tickets = try jobs.map { try h.ticket($0.0) }
        let sinks = jobs.map { _ in RecordingSink() }
        let connections = sinks.map { newConnection($0) }
        let sessions = Mutex<[Int: SessionInfo]>([:])
        let table = h.table, app = h.app
        DispatchQueue.concurrentPerform(iterations: jobs.count) { i in
            if case .success(let info, _) = table.login(app: app, userID: jobs[i].0, platform: jobs[i].1,
                                                        ticket: tickets[i], connection: connections[i]) {
                sessions.withLock { $0[i] = info }
            }
        }
        let all = sessions.withLock { $0 }
        try #require(all.count == jobs.count)
        for u in 0..<64 {
            let user = "user_\(u)"
            let mine = jobs.indices.filter { jobs[$0].0 == user }
            let held = mine.filter { table.lastSeq(sessionID: all[$0]!.sessionID) != nil }
            for i in mine {
                #expect(sinks[i].kicks.count == (held.contains(i) ? 0 : 1))
                #expect(sinks[i].kicks.allSatisfy { $0.sessionID == all[i]!.sessionID })
            }
            let platforms = held.map { jobs[$0].1 }
            #expect(h.platforms(of: user)?.map(\.rawValue).sorted() == platforms.map(\.rawValue).sorted())
            for group in specGroups[kind]! {
                let inGroup = platforms.filter { group.contains($0.rawValue) }
                #expect(inGroup.count <= 1, "\(user): \(inGroup.map(\.rawValue))")
                #expect(inGroup.isEmpty == !mine.contains { group.contains(jobs[$0].1.rawValue) })
            }
        }
    }
}
