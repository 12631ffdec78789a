import ArgumentParser
import Foundation
import Histogram
import NIOCore
import NIOPosix
import SwitchboardProtocol
import Synchronization
import UserSig

/// `kick`: pairs of logins of one user on one platform; the time from the new login's reply
/// arriving to the old instance's `kickedOffline` arriving (PROTOCOL §5).
struct Kick: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "N pairs of logins of one user on one platform; new login's reply → old instance's kickedOffline.")

    @OptionGroup var target: TargetOptions
    @Option(help: "Pairs to measure (each: login on A, login on B, A kicked).") var pairs = 1000
    @Option(help: "Pairs in flight at once (1: latency without queueing).") var inFlight = 1
    @Option(help: "Platform of both logins (one whose instance limit is 1 under the app's policy).")
    var kickPlatform = "Android"
    @Option(help: "Port of the second login (another node of a cluster: cross-node kicks); default --port.")
    var kickerPort: Int?
    @Option(help: "The gateway's pid (accepted for loadtest/run.sh; unused).") var gatewayPid: Int32?

    func validate() throws {
        guard (1...100_000).contains(pairs) else { throw ValidationError("--pairs must be 1 to 100000") }
        guard (1...1000).contains(inFlight) else { throw ValidationError("--in-flight must be 1 to 1000") }
    }

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let recorder = Recorder()
        let key = UserSigKey(secret: target.key)
        let now = Int64(Date().timeIntervalSince1970)
        let prefix = "\(target.userPrefix)k\(UInt32.random(in: 0...UInt32.max))-"
        // UserSigs before the clock starts; A and B of a pair may share one.
        let sigs = (0..<pairs).map { i in
            TLSSigAPIv2.issue(sdkAppID: target.sdkappid, key: key, identifier: "\(prefix)\(i)", expire: 86_400, time: now)
        }
        let stats = KickStats()
        let fromRequest = Recorder()  // B's login sent → A's kickedOffline read
        let replyLatency = Recorder()  // B's login sent → B's reply read
        let next = SharedCounter()
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .seconds(target.timeout)
        let progress = progressLine("kick") { elapsed in
            let done = Int(recorder.histogram.totalCount)
            return String(format: "%7d pairs  %6.0f/s  errors %d", done, Double(done) / max(elapsed, 0.001),
                          recorder.errors.values.reduce(0, +))
        }
        await withTaskGroup(of: Void.self) { workers in
            for _ in 0..<min(inFlight, pairs) {
                workers.addTask {
                    while clock.now < deadline {
                        let i = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                        guard i < pairs else { return }
                        await runPair(user: "\(prefix)\(i)", sig: sigs[i], loop: group.next(),
                                      recorder: recorder, stats: stats,
                                      fromRequest: fromRequest, replyLatency: replyLatency)
                    }
                }
            }
        }
        let seconds = (clock.now - start).seconds
        await endProgress(progress)

        let s = stats.snapshot
        var result = summary(recorder, label: "kick")
        result["pairs"] = pairs
        result["in_flight"] = inFlight
        result["platform"] = kickPlatform
        result["kicker_port"] = kickerPort ?? target.port
        result["seconds"] = seconds
        result["close_4002"] = s.close4002
        result["login_sent_to_kicked"] = summary(fromRequest, label: "login(B) sent → kickedOffline(A)")
        result["login_sent_to_reply"] = summary(replyLatency, label: "login(B) sent → reply(B)")
        result["kicked_before_reply"] = s.kickedFirst
        printTable([
            ("scenario", "kick (\(pairs) pairs of \(kickPlatform) logins, \(inFlight) in flight"
                + (kickerPort.map { ", B on port \($0)" } ?? "") + ")"),
            ("completed", "\(recorder.histogram.totalCount) of \(pairs) in \(String(format: "%.2f", seconds)) s"),
            ("reply(B) → kickedOffline(A) ms", latencyRow(recorder)),
            ("login(B) sent → kickedOffline(A) ms", latencyRow(fromRequest)),
            ("login(B) sent → reply(B) ms", latencyRow(replyLatency)),
            ("A closed with 4002", "\(s.close4002)"),
            ("kickedOffline before B's reply", "\(s.kickedFirst) (recorded as 0)"),
            ("errors", errorsRow(recorder)),
        ])
        try writeJSON(result, to: target.json)
        try await group.shutdownGracefully()
    }

    /// One pair, both connections on `loop` so that their read times compare on one thread.
    private func runPair(user: String, sig: String, loop: any EventLoop, recorder: Recorder, stats: KickStats,
                         fromRequest: Recorder, replyLatency: Recorder) async {
        let login = loginFrame(sdkAppID: target.sdkappid, user: user, sig: sig, platform: kickPlatform)
        var a: ScriptedConnection?
        var b: ScriptedConnection?
        defer {
            let (a, b) = (a, b)
            Task { await a?.close(); await b?.close() }
        }
        do {
            let first = try await ScriptedConnection.open(host: target.host, port: target.port, loop: loop)
            a = first
            let codeA = try await first.request(login).code
            guard codeA == 0 else { return recorder.error(code: codeA) }
            let second = try await ScriptedConnection.open(host: target.host, port: kickerPort ?? target.port, loop: loop)
            b = second
            let (requested, replied, codeB) = try await second.request(login)
            guard codeB == 0 else { return recorder.error(code: codeB) }
            var kicked: NIODeadline?
            var closeCode: UInt16?
            reading: while true {
                switch try await first.next(timeout: .seconds(10)) {
                case .text(let at, let value):
                    if value["op"]?.stringValue == "event", value["event"]?.stringValue == "kickedOffline" {
                        kicked = at
                    }
                case .closed(_, let code):
                    closeCode = code
                    break reading
                }
            }
            guard let kicked else { return recorder.error(code: -4) }  // closed without kickedOffline
            let nanos = kicked.uptimeNanoseconds >= replied.uptimeNanoseconds
                ? kicked.uptimeNanoseconds - replied.uptimeNanoseconds : 0
            if nanos == 0 { stats.add(kickedFirst: 1) }
            recorder.record(micros: nanos / 1000)
            fromRequest.record(micros: UInt64(max(0, (kicked - requested).nanoseconds)) / 1000)
            replyLatency.record(micros: UInt64(max(0, (replied - requested).nanoseconds)) / 1000)
            if closeCode == 4002 {
                stats.add(close4002: 1)
            } else {
                recorder.error(code: Int(closeCode ?? 0))  // close code other than 4002 (0: none)
            }
        } catch {
            recorder.error(code: -3)  // connect failed, closed early, or nothing within 10 s
        }
    }
}

final class KickStats: Sendable {
    private let counts = Mutex((close4002: 0, kickedFirst: 0))

    func add(close4002: Int = 0, kickedFirst: Int = 0) {
        counts.withLock {
            $0.close4002 += close4002
            $0.kickedFirst += kickedFirst
        }
    }

    var snapshot: (close4002: Int, kickedFirst: Int) { counts.withLock { $0 } }
}
