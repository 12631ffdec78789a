import Testing
import SwitchboardCore
import SwitchboardProtocol

/// Every ordered pair of the seven platforms.
let orderedPlatformPairs: [(Platform, Platform)] = allPlatforms.flatMap { a in allPlatforms.map { (a, $0) } }

@Suite struct LoginPolicyTests {
    @Test func specTablePartitionsTheSevenPlatforms() {
        for kind in LoginPolicy.Kind.allCases {
            let names = specGroups[kind]!.flatMap { $0 }
            #expect(names.count == 7, "\(kind)")
            #expect(Set(names) == Set(allPlatforms.map(\.rawValue)), "\(kind)")
        }
        #expect(LoginPolicy.Kind.allCases.map(\.rawValue).sorted() == ["dual", "multi", "single", "triple"])
    }

    @Test func defaultIsDualWithOneInstancePerPlatform() throws {
        let policy = try LoginPolicy()
        #expect(policy.kind == .dual)
        for p in allPlatforms {
            #expect(policy.maxInstances(on: p) == 1)
        }
        #expect(AppConfiguration(sdkAppID: 1, secretKey: "k").policy.kind == .dual)
    }

    /// Pure policy: does a login on B push out an existing instance on A?
    @Test(arguments: LoginPolicy.Kind.allCases, orderedPlatformPairs)
    func evictionOfOneExistingInstance(kind: LoginPolicy.Kind, pair: (Platform, Platform)) throws {
        let (a, b) = pair
        // Same platform with the default limit of 1 is full; otherwise the §5 groups decide.
        let expectKick = a == b || specSameGroup(kind, a, b)
        let policy = try LoginPolicy(kind: kind)
        #expect(policy.evictions(existing: [a], newPlatform: b) == (expectKick ? [0] : []),
                "\(kind): \(a.rawValue) then \(b.rawValue)")
        // Groups by the implementation agree with the spec table.
        #expect((policy.group(of: a) == policy.group(of: b)) == specSameGroup(kind, a, b))
    }

    /// Through the session table: the instance on A receives the kick, or nothing.
    @Test(arguments: LoginPolicy.Kind.allCases, orderedPlatformPairs)
    func loginOnBKicksA(kind: LoginPolicy.Kind, pair: (Platform, Platform)) throws {
        let (a, b) = pair
        let expectKick = a == b || specSameGroup(kind, a, b)
        let h = Harness(policy: try LoginPolicy(kind: kind))
        let first = try h.login("alice", a)
        let second = try h.login("alice", b)
        #expect(first.kicked == 0)
        #expect(second.kickedPlatforms == (expectKick ? [a] : []))
        #expect(second.sink.deliveries.isEmpty)
        if expectKick {
            let kicks = first.sink.kicks
            try #require(kicks.count == 1)
            #expect(first.sink.deliveries.count == 1)
            #expect(kicks[0].sessionID == first.sessionID)
            #expect(kicks[0].event.name == .kickedOffline)
            #expect(kicks[0].event.seq == 1)
            #expect(try json(kicks[0].event) == kickData(reason: "multiDevice", byPlatform: b))
            #expect(h.platforms(of: "alice") == [b])
            #expect(h.table.lastSeq(sessionID: first.sessionID) == nil)
        } else {
            #expect(first.sink.deliveries.isEmpty)
            #expect(h.platforms(of: "alice") == [a, b])
            #expect(h.table.lastSeq(sessionID: first.sessionID) == 0)
        }
        #expect(h.table.instances(app: testAppID, userID: "alice")?.allSatisfy(\.attached) == true)
    }

    /// A sequence through all seven platforms: what stays is one platform per spec group, the
    /// latest login of each group.
    @Test(arguments: LoginPolicy.Kind.allCases)
    func everyPlatformInTurn(kind: LoginPolicy.Kind) throws {
        let h = Harness(policy: try LoginPolicy(kind: kind))
        var clients: [Client] = []
        for p in allPlatforms {
            clients.append(try h.login("alice", p))
        }
        let groups = specGroups[kind]!
        let expected = allPlatforms.filter { p in
            // the last platform (in login order) of its group
            let group = groups[specGroupIndex(kind, p)]
            return allPlatforms.last { group.contains($0.rawValue) } == p
        }
        #expect(h.platforms(of: "alice") == expected)
        for (i, client) in clients.enumerated() {
            let kept = expected.contains(client.info.platform)
            #expect(client.sink.kicks.count == (kept ? 0 : 1), "\(client.info.platform.rawValue)")
            if !kept {
                // Kicked by the next login of its group.
                let kicker = allPlatforms[(i + 1)...].first { specSameGroup(kind, $0, client.info.platform) }!
                #expect(try firstKickData(client.sink) == kickData(reason: "multiDevice", byPlatform: kicker))
            }
        }
        #expect(clients.map(\.kicked).reduce(0, +) == 7 - expected.count)
    }

    // MARK: Per-platform limits

    @Test func fourthWebLoginEvictsExactlyTheEarliest() throws {
        let policy = try LoginPolicy(kind: .dual, maxInstances: [.web: 3])
        #expect(policy.maxInstances(on: .web) == 3)
        #expect(policy.evictions(existing: [], newPlatform: .web) == [])
        #expect(policy.evictions(existing: [.web], newPlatform: .web) == [])
        #expect(policy.evictions(existing: [.web, .web], newPlatform: .web) == [])
        #expect(policy.evictions(existing: [.web, .web, .web], newPlatform: .web) == [0])
        #expect(policy.evictions(existing: [.iPhone, .web, .web, .web], newPlatform: .web) == [1])

        let h = Harness(policy: policy)
        let w1 = try h.login("alice", .web)
        let w2 = try h.login("alice", .web)
        let w3 = try h.login("alice", .web)
        #expect([w1, w2, w3].allSatisfy { $0.kicked == 0 && $0.sink.deliveries.isEmpty })
        let w4 = try h.login("alice", .web)
        #expect(w4.kicked == 1)
        #expect(w1.sink.kicks.map(\.sessionID) == [w1.sessionID])
        #expect(w2.sink.deliveries.isEmpty && w3.sink.deliveries.isEmpty)
        #expect(try firstKickData(w1.sink) == kickData(reason: "multiDevice", byPlatform: .web))
        let w5 = try h.login("alice", .web)
        #expect(w5.kicked == 1)
        #expect(w2.sink.kicks.map(\.sessionID) == [w2.sessionID])
        #expect(w3.sink.deliveries.isEmpty && w4.sink.deliveries.isEmpty)
        #expect(h.platforms(of: "alice") == [.web, .web, .web])
        #expect(h.table.lastSeq(sessionID: w3.sessionID) == 0)
        #expect(h.table.lastSeq(sessionID: w1.sessionID) == nil)
        #expect(h.table.lastSeq(sessionID: w2.sessionID) == nil)
        // A native login under dual leaves every Web instance alone.
        let phone = try h.login("alice", .iPhone)
        #expect(phone.kicked == 0)
        #expect(h.platforms(of: "alice") == [.web, .web, .web, .iPhone])
    }

    @Test func groupMembersAndEarliestSamePlatformTogether() throws {
        let policy = try LoginPolicy(kind: .dual, maxInstances: [.android: 2])
        #expect(policy.evictions(existing: [.iPhone, .android, .web, .android, .mac], newPlatform: .android) == [0, 1, 4])
        // Over the limit (after a reload lowered it): evicted until the new one fits.
        #expect(policy.evictions(existing: [.android, .android, .android], newPlatform: .android) == [0, 1])
        #expect(try LoginPolicy(kind: .dual).evictions(existing: [.web, .web, .iPhone], newPlatform: .web) == [0, 1])
        let triple = try LoginPolicy(kind: .triple, maxInstances: [.iPad: 2])
        #expect(triple.evictions(existing: [.iPad, .windows, .android, .web, .iPad, .iPhone], newPlatform: .iPad) == [0, 2, 5])

        // Through the table: instances made under `multi`, then a login under `dual` (a SIGHUP reload).
        let multi = AppConfiguration(sdkAppID: testAppID, secretKey: testSecret,
                                     policy: try LoginPolicy(kind: .multi, maxInstances: [.android: 2]))
        let dual = AppConfiguration(sdkAppID: testAppID, secretKey: testSecret, policy: policy)
        let h = Harness()
        let phone = try h.login("alice", .iPhone, app: multi)
        let android1 = try h.login("alice", .android, app: multi)
        let web = try h.login("alice", .web, app: multi)
        let android2 = try h.login("alice", .android, app: multi)
        let mac = try h.login("alice", .mac, app: multi)
        #expect(h.platforms(of: "alice") == [.iPhone, .android, .web, .android, .mac])
        let android3 = try h.login("alice", .android, app: dual)
        #expect(android3.kickedPlatforms == [.iPhone, .android, .mac])
        for victim in [phone, android1, mac] {
            #expect(victim.sink.kicks.map(\.sessionID) == [victim.sessionID])
            #expect(try firstKickData(victim.sink) == kickData(reason: "multiDevice", byPlatform: .android))
        }
        for kept in [web, android2, android3] {
            #expect(kept.sink.deliveries.isEmpty)
            #expect(h.table.lastSeq(sessionID: kept.sessionID) == 0)
        }
        #expect(h.platforms(of: "alice") == [.web, .android, .android])
    }

    // MARK: Configuration bounds

    struct Bound: Sendable, CustomTestStringConvertible {
        var platform: Platform
        var limit: Int
        var testDescription: String { "\(platform.rawValue): \(limit)" }
    }

    @Test(arguments: [
        Bound(platform: .web, limit: 0), Bound(platform: .iPhone, limit: 4), Bound(platform: .web, limit: 11),
        Bound(platform: .android, limit: 0), Bound(platform: .android, limit: -1), Bound(platform: .mac, limit: 4),
        Bound(platform: .linux, limit: 10), Bound(platform: .iPad, limit: Int.max),
    ])
    func refusedLimits(bound: Bound) throws {
        for kind in LoginPolicy.Kind.allCases {
            let error = #expect(throws: LoginPolicyError.self) {
                try LoginPolicy(kind: kind, maxInstances: [bound.platform: bound.limit])
            }
            #expect(error?.platform == bound.platform)
            #expect(error?.limit == bound.limit)
            #expect(error?.description.contains(bound.platform.rawValue) == true)
        }
    }

    @Test(arguments: [
        Bound(platform: .web, limit: 10), Bound(platform: .android, limit: 3), Bound(platform: .web, limit: 1),
        Bound(platform: .iPhone, limit: 3), Bound(platform: .iPad, limit: 3), Bound(platform: .windows, limit: 3),
        Bound(platform: .mac, limit: 3), Bound(platform: .linux, limit: 3), Bound(platform: .linux, limit: 2),
    ])
    func acceptedLimits(bound: Bound) throws {
        let policy = try LoginPolicy(kind: .triple, maxInstances: [bound.platform: bound.limit])
        for p in allPlatforms {
            #expect(policy.maxInstances(on: p) == (p == bound.platform ? bound.limit : 1))
        }
    }

    @Test func ceilings() throws {
        for p in allPlatforms {
            #expect(LoginPolicy.ceiling(for: p) == (p.rawValue == "Web" ? 10 : 3))
        }
        let everything = Dictionary(uniqueKeysWithValues: allPlatforms.map { ($0, $0 == .web ? 10 : 3) })
        let policy = try LoginPolicy(kind: .multi, maxInstances: everything)
        #expect(allPlatforms.map { policy.maxInstances(on: $0) } == [3, 3, 3, 3, 3, 3, 10])
        // One refused limit refuses the whole configuration.
        var oneTooMany = everything
        oneTooMany[.windows] = 4
        #expect(throws: LoginPolicyError.self) { try LoginPolicy(kind: .multi, maxInstances: oneTooMany) }
    }

    @Test func tenWebInstancesThenTheEleventhKicksTheFirst() throws {
        let h = Harness(policy: try LoginPolicy(kind: .single, maxInstances: [.web: 10]))
        var webs: [Client] = []
        for _ in 0..<10 { webs.append(try h.login("alice", .web)) }
        #expect(webs.allSatisfy { $0.kicked == 0 })
        let eleventh = try h.login("alice", .web)
        #expect(eleventh.kicked == 1)
        #expect(webs[0].sink.kicks.count == 1)
        #expect(webs[1...].allSatisfy { $0.sink.deliveries.isEmpty })
        // Under single, any native login then kicks all ten Web instances at once.
        let phone = try h.login("alice", .iPhone)
        #expect(phone.kicked == 10)
        #expect(h.platforms(of: "alice") == [.iPhone])
        #expect(([eleventh] + webs[1...]).allSatisfy { $0.sink.kicks.count == 1 })
    }
}
