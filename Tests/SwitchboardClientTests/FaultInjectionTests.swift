import Foundation
import NIOCore
@_spi(Testing) import SwitchboardClient
import SwitchboardProtocol
import SwitchboardServer
import Synchronization
import Testing

/// The property the SDK exists for: whatever the network does between it and the server — cuts,
/// resets, stalls, black holes, at random — the app receives every message exactly once and in
/// order, and the login status it sees matches the server's.
@Suite("Fault injection")
struct FaultInjectionTests {
    /// Receivers, each behind its own fault proxy, faults injected on all of them at once.
    static let receivers = 5
    static let faultsPerReceiver = 42

    final class Tally: Sendable {
        let faults = Mutex<[FaultProxy.Fault: Int]>([:])
        let statusMismatches = Mutex<[String]>([])
        let samples = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        /// Messages sent (and answered) to each receiver.
        let sent = Mutex<[Int]>([])
        let sendFailure = Mutex<SwitchboardError?>(nil)
    }

    @Test(.timeLimit(.minutes(2)))
    func everyMessageArrivesOnceAndInOrderThroughRandomFaults() async throws {
        let seed = ProcessInfo.processInfo.environment["SWITCHBOARD_FAULT_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("fault injection seed \(seed) (rerun with SWITCHBOARD_FAULT_SEED=\(seed))")
        let started = ContinuousClock.now
        // The server pings every 0.2 s and drops a client silent for 0.4 s; the SDK, told the
        // heartbeat at login, gives up on a silent server after 0.5 s (its default, 2.5 heartbeats).
        var config = serverConfiguration(heartbeat: 0.2, resumeBuffer: 5000)
        config.maxRequestsPerSecond = 100_000  // one sender feeds every receiver
        let server = try await startServer(config)
        let port = server.webSocketAddress!.port!
        let tally = Tally()
        tally.sent.withLock { $0 = Array(repeating: 0, count: Self.receivers) }
        let users = (0..<Self.receivers).map { "r\($0)" }
        var proxies: [FaultProxy] = []
        var managers: [SwitchboardManager] = []
        var listeners: [RecordingListener] = []
        var inboxes: [Inbox] = []
        for (i, user) in users.enumerated() {
            let proxy = try await FaultProxy.start(target: port)
            // Half the receivers give up on a silent server before the server gives up on them
            // (0.25 s against 0.4 s): their resumes find the session still attached to the
            // black-holed connection and take it over (close 4005 there).
            let manager = try makeManager(port: proxy.port, seed: seed &+ UInt64(i),
                                          deadAfter: i % 2 == 1 ? .milliseconds(250) : nil) {
                $0.reconnect.maxDelay = .milliseconds(100)
            }
            let listener = RecordingListener()
            manager.addListener(listener)
            inboxes.append(Inbox(manager))
            try await manager.login(userID: user, userSig: makeSig(user))
            proxies.append(proxy)
            managers.append(manager)
            listeners.append(listener)
        }
        let sender = try makeManager(port: port, platform: .linux)
        try await sender.login(userID: "sender", userSig: makeSig("sender"))

        let frozenManagers = managers
        let frozenProxies = proxies
        try await withThrowingTaskGroup(of: Void.self) { group in
            // A steady numbered stream to every receiver, about 100 messages a second each.
            group.addTask {
                var n = 0
                while !tally.stop.load(ordering: .relaxed), n < 20_000 {
                    n += 1
                    for (i, user) in users.enumerated() {
                        do {
                            try await sender.send(to: user, payload: ["n": .number(JSONNumber(n))])
                            tally.sent.withLock { $0[i] = n }
                        } catch {
                            tally.sendFailure.withLock { $0 = error as? SwitchboardError }
                            return
                        }
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
            // The SDK says LOGINED throughout; the server holds exactly one instance throughout
            // (attached, or detached while the SDK reconnects).
            group.addTask {
                while !tally.stop.load(ordering: .relaxed) {
                    for (user, manager) in zip(users, frozenManagers) {
                        let sdk = manager.getLoginStatus()
                        let held = server.instances(of: user).count
                        if sdk != .logined || held != 1 {
                            tally.statusMismatches.withLock { $0.append("\(user): SDK \(sdk), server \(held)") }
                        }
                    }
                    tally.samples.add(1, ordering: .relaxed)
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            // The faults: one random fault at a time per receiver's path.
            try await withThrowingTaskGroup(of: Void.self) { injectors in
            for (i, proxy) in frozenProxies.enumerated() {
                injectors.addTask {
                    var random = SplitMix64(seed: seed ^ (UInt64(i + 1) &* 0x9E37_79B9))
                    let deadline = ContinuousClock.now + .seconds(75)
                    var injected = 0
                    while injected < Self.faultsPerReceiver, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(10 + Int64(random.next() % 70)))
                        let fault: FaultProxy.Fault = switch random.next() % 100 {
                        case 0..<30: .cut
                        case 30..<50: .reset
                        case 50..<75: .stall
                        default: .blackHole
                        }
                        // Some stalls outlast the heartbeats (either side then gives up), most do not.
                        let stall = TimeAmount.milliseconds(20 + Int64(random.next() % 680))
                        // Wait (bounded) for a connection that is up to break.
                        var done = false
                        for _ in 0..<300 where !done {
                            done = await proxy.inject(fault, stall: stall)
                            if !done { try await Task.sleep(for: .milliseconds(10)) }
                        }
                        if done {
                            injected += 1
                            tally.faults.withLock { $0[fault, default: 0] += 1 }
                        }
                    }
                }
            }
            try await injectors.waitForAll()
            }
            tally.stop.store(true, ordering: .relaxed)
            try await group.waitForAll()
        }

        if let failure = tally.sendFailure.withLock({ $0 }) {
            Issue.record("the sender failed: \(failure) (seed \(seed))")
        }
        let sentTo = tally.sent.withLock { $0 }
        let faults = tally.faults.withLock { $0 }
        let faultCount = faults.values.reduce(0, +)
        #expect(faultCount >= 200, "seed \(seed): only \(faultCount) faults injected")

        // Everything sent arrives: exactly once, in order.
        for (i, (user, inbox)) in zip(users, inboxes).enumerated() {
            let total = sentTo[i]
            #expect(total > 100, "seed \(seed): only \(total) messages sent to \(user)")
            do {
                try await eventually("\(user) receives all \(total)", timeout: .seconds(20)) { inbox.count >= total }
            } catch {
                Issue.record("seed \(seed): \(user) received \(inbox.count) of \(total)")
            }
            let numbers = inbox.messages.compactMap { $0.payload["n"]?.int64Value }
            let exactlyOnceInOrder = numbers == (0..<Int64(total)).map { $0 + 1 }
            #expect(exactlyOnceInOrder, "seed \(seed): \(user) saw \(Self.describeGaps(numbers, total))")
            let seqs = inbox.messages.map(\.seq)
            let rising = zip(seqs, seqs.dropFirst()).allSatisfy { $0 < $1 }
            #expect(rising, "seed \(seed): \(user)'s seqs rise")
        }
        // Status: in step with the server throughout, and at the end.
        let mismatches = tally.statusMismatches.withLock { $0 }
        #expect(mismatches.isEmpty, "seed \(seed): \(mismatches.prefix(5))")
        #expect(tally.samples.load(ordering: .relaxed) > 50)
        for (i, user) in users.enumerated() {
            let listener = listeners[i]
            try await eventually("\(user) settles", timeout: .seconds(5)) {
                listener.last == .connectSuccess && server.summary(of: user) == ["iPhone attached"]
            }
            #expect(managers[i].getLoginStatus() == .logined)
            #expect(listener.count(.kickedOffline) == 0 && listener.count(.userSigExpired) == 0)
            #expect(listener.attemptsAreWellFormed, "seed \(seed): \(user): \(listener.events.suffix(12))")
        }
        var attempts = 0
        for manager in managers {
            attempts += await manager.connectionAttempts()
        }
        for (i, user) in users.enumerated() {
            try await managers[i].logout()
            #expect(managers[i].getLoginStatus() == .logout)
            #expect(server.instances(of: user).isEmpty)
        }
        let elapsed = ContinuousClock.now - started
        print("fault injection seed \(seed): \(faultCount) faults \(faults.map { "\($0.key.rawValue) \($0.value)" }.sorted()), "
              + "\(sentTo) messages to the \(users.count) receivers, \(attempts) connections, \(elapsed)")

        for manager in managers { await manager.shutdown() }
        await sender.shutdown()
        for proxy in proxies { await proxy.shutdown() }
        try await server.shutdown()
    }

    static func describeGaps(_ numbers: [Int64], _ total: Int) -> String {
        var problems: [String] = []
        var expected: Int64 = 1
        for n in numbers {
            if n != expected { problems.append("\(n) where \(expected) was due") }
            expected = n + 1
            if problems.count > 5 { break }
        }
        return "\(numbers.count) messages of \(total); " + (problems.isEmpty ? "in order" : problems.joined(separator: ", "))
    }
}
