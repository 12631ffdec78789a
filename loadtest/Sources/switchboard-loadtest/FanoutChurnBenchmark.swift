import ArgumentParser
import Foundation
import Histogram
import NIOCore
import NIOPosix
import NIOWebSocket
import SwitchboardClient
import SwitchboardProtocol
import Synchronization
import UserSig

/// Opens `count` connections and logs each in as `user(i)` on `platform`, `concurrency` at a time.
/// Returns the ones logged in (in index order, nil where the login failed).
func openLoggedIn(_ target: TargetOptions, count: Int, concurrency: Int, group: MultiThreadedEventLoopGroup,
                  platform: String, recorder: Recorder, user: @escaping @Sendable (Int) -> String,
                  hook: ScriptedConnection.Hook? = nil) async -> [ScriptedConnection?] {
    let key = UserSigKey(secret: target.key)
    let now = Int64(Date().timeIntervalSince1970)
    let frames = (0..<count).map { i in
        loginFrame(sdkAppID: target.sdkappid, user: user(i),
                   sig: TLSSigAPIv2.issue(sdkAppID: target.sdkappid, key: key, identifier: user(i), expire: 86_400, time: now),
                   platform: platform)
    }
    let opened = OpenedConnections(count: count)
    let next = SharedCounter()
    await withTaskGroup(of: Void.self) { workers in
        for _ in 0..<min(concurrency, count) {
            workers.addTask {
                while true {
                    let i = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard i < count else { return }
                    do {
                        let connection = try await ScriptedConnection.open(host: target.host, port: target.port,
                                                                           loop: group.next(), hook: hook)
                        let code = try await connection.request(frames[i]).code
                        if code == 0 {
                            opened.list.withLock { $0[i] = connection }
                        } else {
                            recorder.error(code: code)
                            await connection.close()
                        }
                    } catch {
                        recorder.error(code: -3)
                    }
                }
            }
        }
    }
    return opened.list.withLock { $0 }
}

final class OpenedConnections: Sendable {
    let list: Mutex<[ScriptedConnection?]>
    init(count: Int) { list = Mutex(Array(repeating: nil, count: count)) }
}

/// `fanout`: receivers logged in on Web, senders `send` to them round-robin at a bounded total
/// rate; delivered messages/s and end-to-end latency (send-time stamp in the payload).
struct Fanout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "S senders send to M online receivers round-robin at a bounded rate; delivered/s and end-to-end latency.")

    @OptionGroup var target: TargetOptions
    @Option(help: "Receivers logged in (Web).") var receivers = 1000
    @Option(help: "Senders logged in (Web); each sends at rate/senders per second.") var senders = 100
    @Option(help: "Total sends per second (all senders).") var rate = 2000
    @Option(help: "Sends in all (bound by count).") var messages = 20_000
    @Option(help: "Seconds of sending at most (bound by time).") var duration: Double = 30
    @Option(help: "Highest sends/s allowed per sender (the gateway's maxRequestsPerSecond is 50 by default).")
    var maxPerSender = 45
    @Option(help: "The gateway's pid, to read the CPU time it spent from /proc.") var gatewayPid: Int32?
    @Option(help: "The gateway's admin API port (for --pushes).") var adminPort: Int?
    @Option(help: "Admin push calls (POST /v4/switchboard/push) after the sends; 0: none.") var pushes = 0
    @Option(help: "Receivers per push call (at most 500).") var pushAccounts = 100
    @Option(help: "Push calls per second.") var pushRate: Double = 50

    func validate() throws {
        guard (0...100_000).contains(pushes), (1...500).contains(pushAccounts), pushRate > 0, pushRate <= 10_000,
              pushes == 0 || adminPort != nil else {
            throw ValidationError("--pushes 0 to 100000 (needs --admin-port), --push-accounts 1 to 500, --push-rate up to 10000")
        }
        guard (1...18_000).contains(receivers), (1...1000).contains(senders), receivers + senders <= 19_000 else {
            throw ValidationError("--receivers 1 to 18000, --senders 1 to 1000, together at most 19000")
        }
        guard (1...1_000_000).contains(messages), (1...200_000).contains(rate), duration > 0, duration <= 600 else {
            throw ValidationError("--messages 1 to 1000000, --rate 1 to 200000, --duration up to 600 s")
        }
        guard Double(rate) / Double(senders) <= Double(maxPerSender) else {
            throw ValidationError("--rate / --senders must stay at most \(maxPerSender)/s per sender (the gateway's request limit): use more senders")
        }
    }

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let latency = Recorder()
        let setup = Recorder()
        let counters = FanoutCounters()
        let run = "\(target.userPrefix)f\(UInt32.random(in: 0...UInt32.max))-"
        let pushLatency = Recorder()
        let receiving: ScriptedConnection.Hook = { now, value in
            guard value["op"]?.stringValue == "event", value["event"]?.stringValue == "message" else { return false }
            if let sent = value["data"]?["payload"]?["t"]?.numberValue?.uint64 {
                let at = now.uptimeNanoseconds
                if value["data"]?["from"]?.stringValue == "administrator" {
                    pushLatency.record(micros: at >= sent ? (at - sent) / 1000 : 0)
                    counters.pushDelivered.add(1, ordering: .relaxed)
                    return true
                }
                latency.record(micros: at >= sent ? (at - sent) / 1000 : 0)
                counters.delivered.add(1, ordering: .relaxed)
                counters.lastDelivery.max(at, ordering: .relaxed)
            }
            return true
        }
        let sending: ScriptedConnection.Hook = { _, value in
            guard value["op"]?.stringValue == "reply", value["id"]?.int64Value == 2 else { return false }
            let code = value["code"]?.int64Value.map(Int.init) ?? -1
            if code == 0 { counters.acked.add(1, ordering: .relaxed) } else { latency.error(code: code) }
            return true
        }
        let rx = await openLoggedIn(target, count: receivers, concurrency: 64, group: group, platform: "Web",
                                    recorder: setup, user: { "\(run)r\($0)" }, hook: receiving).compactMap { $0 }
        let tx = await openLoggedIn(target, count: senders, concurrency: 64, group: group, platform: "Web",
                                    recorder: setup, user: { "\(run)s\($0)" }, hook: sending).compactMap { $0 }
        guard !rx.isEmpty, !tx.isEmpty else {
            throw BenchmarkError("setup failed: \(rx.count) receivers, \(tx.count) senders logged in; errors \(errorsRow(setup))")
        }
        let names = rx.indices.map { i in "\(run)r\(i)" }
        let cpuBefore = gatewayPid.flatMap(cpuSeconds)

        // Each sender on its own loop, paced by a repeated task there; the stamp is taken as the
        // frame is written.
        let firstSend = NIODeadline.now()
        let stopAt = firstSend + .nanoseconds(Int64(duration * 1e9))
        let period = TimeAmount.nanoseconds(Int64(1e9 * Double(tx.count) / Double(rate)))
        let total = messages
        let finished = Mutex<[EventLoopFuture<Void>]>([])
        for (k, sender) in tx.enumerated() {
            guard let channel = sender.channel else { continue }
            let loop = channel.eventLoop
            let stopped = loop.makePromise(of: Void.self)
            finished.withLock { $0.append(stopped.futureResult) }
            let offset = TimeAmount.nanoseconds(period.nanoseconds * Int64(k) / Int64(tx.count))
            loop.scheduleRepeatedTask(initialDelay: offset, delay: period) { task in
                let n = counters.sent.wrappingAdd(1, ordering: .relaxed).oldValue
                guard n < total, NIODeadline.now() < stopAt else {
                    task.cancel()
                    stopped.succeed()
                    return
                }
                let to = names[n % names.count]
                let frame = Array(#"{"op":"send","id":2,"to":"\#(to)","payload":{"t":\#(NIODeadline.now().uptimeNanoseconds)}}"#.utf8)
                channel.writeAndFlush(WebSocketFrame.clientText(frame, allocator: channel.allocator), promise: nil)
                counters.written.add(1, ordering: .relaxed)
            }
        }
        let progress = progressLine("fanout") { elapsed in
            let d = counters.delivered.load(ordering: .relaxed)
            return String(format: "%7d sent  %7d delivered  %6.0f/s  errors %d", counters.written.load(ordering: .relaxed), d,
                          Double(d) / max(elapsed, 0.001), latency.errors.values.reduce(0, +))
        }
        for future in finished.withLock({ $0 }) { try? await future.get() }
        let sendSeconds = Double((NIODeadline.now() - firstSend).nanoseconds) / 1e9
        // Let what is in flight arrive (bounded).
        let grace = ContinuousClock.now + .seconds(5)
        while counters.acked.load(ordering: .relaxed) + latency.errors.values.reduce(0, +) < counters.written.load(ordering: .relaxed)
            || counters.delivered.load(ordering: .relaxed) < counters.acked.load(ordering: .relaxed) {
            guard ContinuousClock.now < grace else { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        await endProgress(progress)
        let cpuAfter = gatewayPid.flatMap(cpuSeconds)
        let pushSeconds = pushes > 0 ? await pushPhase(names: names, latency: pushLatency, counters: counters) : 0

        let sentCount = counters.written.load(ordering: .relaxed)
        let deliveredCount = counters.delivered.load(ordering: .relaxed)
        let last = counters.lastDelivery.load(ordering: .relaxed)
        let span = last > firstSend.uptimeNanoseconds ? Double(last - firstSend.uptimeNanoseconds) / 1e9 : sendSeconds
        let perSecond = Double(deliveredCount) / max(span, 0.001)
        var result = summary(latency, label: "fanout")
        result["receivers"] = rx.count
        result["senders"] = tx.count
        result["target_rate"] = rate
        result["sent"] = sentCount
        result["acked"] = counters.acked.load(ordering: .relaxed)
        result["delivered"] = deliveredCount
        result["delivered_per_second"] = perSecond
        result["seconds"] = span
        result["setup_errors"] = Dictionary(uniqueKeysWithValues: setup.errors.map { (String($0.key), $0.value) })
        var rows: [(String, String)] = [
            ("scenario", "fanout (\(tx.count) senders → \(rx.count) receivers, target \(rate)/s)"),
            ("sent / acked / delivered", "\(sentCount) / \(counters.acked.load(ordering: .relaxed)) / \(deliveredCount)"),
            ("delivered", String(format: "%.0f messages/s over %.2f s", perSecond, span)),
            ("send → message event ms", latencyRow(latency)),
            ("errors (send replies)", errorsRow(latency)),
            ("errors (setup logins)", errorsRow(setup)),
        ]
        if let cpuBefore, let cpuAfter, deliveredCount > 0 {
            let micros = (cpuAfter - cpuBefore) * 1e6 / Double(deliveredCount)
            result["gateway_cpu_us_per_message"] = micros
            rows.append(("gateway CPU", String(format: "%.1f µs per delivered message", micros)))
        }
        if pushes > 0 {
            let pushed = counters.pushDelivered.load(ordering: .relaxed)
            var push = summary(pushLatency, label: "admin push")
            push["calls"] = pushes
            push["accounts_per_call"] = pushAccounts
            push["delivered"] = pushed
            push["delivered_per_second"] = Double(pushed) / max(pushSeconds, 0.001)
            result["push"] = push
            rows += [
                ("admin pushes", String(format: "%d calls × %d accounts at %.0f calls/s: %d delivered, %.0f/s",
                                        pushes, pushAccounts, pushRate, pushed, Double(pushed) / max(pushSeconds, 0.001))),
                ("push request → message event ms", latencyRow(pushLatency)),
                ("errors (push calls)", errorsRow(pushLatency)),
            ]
        }
        printTable(rows)
        try writeJSON(result, to: target.json)
        for connection in rx + tx { await connection.close() }
        try await group.shutdownGracefully()
    }
}

extension Fanout {
    /// Admin pushes, paced at `pushRate` calls/s (8 in flight at most), each to `pushAccounts`
    /// receivers in turn. - Returns: seconds from the first call to the last delivery (bounded wait).
    func pushPhase(names: [String], latency: Recorder, counters: FanoutCounters) async -> Double {
        let pusher = AdminPusher(host: target.host, adminPort: adminPort ?? 0, sdkAppID: target.sdkappid, key: target.key)
        let next = SharedCounter()
        let clock = ContinuousClock()
        let start = clock.now
        let end = start + .seconds(duration)
        let (calls, accounts, rate) = (pushes, pushAccounts, pushRate)
        let progress = progressLine("push") { elapsed in
            let d = counters.pushDelivered.load(ordering: .relaxed)
            return String(format: "%7d delivered  %6.0f/s  errors %d", d, Double(d) / max(elapsed, 0.001),
                          latency.errors.values.reduce(0, +))
        }
        await withTaskGroup(of: Void.self) { workers in
            for _ in 0..<8 {
                workers.addTask {
                    while true {
                        let p = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                        guard p < calls else { return }
                        let slot = start + .seconds(Double(p) / rate)
                        guard slot < end else { return }
                        if slot > clock.now { try? await Task.sleep(until: slot, clock: clock) }
                        let to = (0..<accounts).map { names[(p * accounts + $0) % names.count] }
                        let code = await pusher.push(to: to[...])
                        if code == 0 {
                            counters.pushRequested.add(accounts, ordering: .relaxed)
                        } else {
                            latency.error(code: code)
                        }
                    }
                }
            }
        }
        let grace = clock.now + .seconds(5)
        while counters.pushDelivered.load(ordering: .relaxed) < counters.pushRequested.load(ordering: .relaxed), clock.now < grace {
            try? await Task.sleep(for: .milliseconds(10))
        }
        await endProgress(progress)
        return (clock.now - start).seconds
    }
}

/// `churn`: C connections each cycling login → logout → login … at a total target rate for T s.
struct Churn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "C connections cycle login → logout at a target total rate for T seconds; logins/s and latency.")

    @OptionGroup var target: TargetOptions
    @Option(help: "Connections cycling.") var clients = 100
    @Option(help: "Target logins per second, all connections together.") var rate = 1000
    @Option(help: "Seconds to run (bound by time; the count is rate × duration).") var duration: Double = 10
    @Option(help: "Highest requests/s per connection (each cycle is two: login and logout; gateway default limit 50).")
    var maxPerConnection = 45
    @Option(help: "The gateway's pid, to read the CPU time it spent from /proc.") var gatewayPid: Int32?

    func validate() throws {
        guard (1...18_000).contains(clients), (1...100_000).contains(rate), duration > 0, duration <= 600 else {
            throw ValidationError("--clients 1 to 18000, --rate 1 to 100000, --duration up to 600 s")
        }
        guard 2 * Double(rate) / Double(clients) <= Double(maxPerConnection) else {
            throw ValidationError("2 × --rate / --clients must stay at most \(maxPerConnection) requests/s per connection: use more clients")
        }
    }

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let logins = Recorder()
        let logouts = Recorder()
        let run = "\(target.userPrefix)c\(UInt32.random(in: 0...UInt32.max))-"
        let key = UserSigKey(secret: target.key)
        let now = Int64(Date().timeIntervalSince1970)
        let frames = (0..<clients).map { i in
            loginFrame(sdkAppID: target.sdkappid, user: "\(run)\(i)",
                       sig: TLSSigAPIv2.issue(sdkAppID: target.sdkappid, key: key, identifier: "\(run)\(i)", expire: 86_400, time: now),
                       platform: target.platform)
        }
        let logout = Array(#"{"op":"logout","id":3}"#.utf8)
        // Connections first (not timed), then the cycles.
        var connections: [ScriptedConnection] = []
        for _ in 0..<clients {
            connections.append(try await ScriptedConnection.open(host: target.host, port: target.port, loop: group.next()))
        }
        let cpuBefore = gatewayPid.flatMap(cpuSeconds)
        let clock = ContinuousClock()
        let start = clock.now
        let end = start + .seconds(duration)
        let period = Duration.seconds(Double(clients) / Double(rate))
        let progress = progressLine("churn") { elapsed in
            let done = Int(logins.histogram.totalCount)
            return String(format: "%7d logins  %6.0f/s  errors %d", done, Double(done) / max(elapsed, 0.001),
                          logins.errors.values.reduce(0, +) + logouts.errors.values.reduce(0, +))
        }
        await withTaskGroup(of: Void.self) { cycles in
            for (i, connection) in connections.enumerated() {
                cycles.addTask {
                    var slot = start + .seconds(Double(i) / Double(rate))
                    while slot < end {
                        if slot > clock.now { try? await Task.sleep(until: slot, clock: clock) }
                        do {
                            let login = try await connection.request(frames[i])
                            if login.code == 0 {
                                logins.record(micros: UInt64((login.replied - login.sent).nanoseconds / 1000))
                            } else {
                                logins.error(code: login.code)
                            }
                            let out = try await connection.request(logout)
                            if out.code == 0 {
                                logouts.record(micros: UInt64((out.replied - out.sent).nanoseconds / 1000))
                            } else {
                                logouts.error(code: out.code)
                            }
                        } catch {
                            logins.error(code: -3)
                            return
                        }
                        slot += period
                    }
                }
            }
        }
        let seconds = (clock.now - start).seconds
        await endProgress(progress)
        let cpuAfter = gatewayPid.flatMap(cpuSeconds)
        let done = Int(logins.histogram.totalCount)
        var result = summary(logins, label: "churn login")
        result["logout"] = summary(logouts, label: "churn logout")
        result["clients"] = clients
        result["target_rate"] = rate
        result["seconds"] = seconds
        result["logins_per_second"] = Double(done) / seconds
        var rows: [(String, String)] = [
            ("scenario", "churn (\(clients) connections, target \(rate) logins/s, \(duration) s)"),
            ("logins", String(format: "%d in %.2f s: %.0f/s", done, seconds, Double(done) / seconds)),
            ("login → reply ms", latencyRow(logins)),
            ("logout → reply ms", latencyRow(logouts)),
            ("errors (login)", errorsRow(logins)),
            ("errors (logout)", errorsRow(logouts)),
        ]
        if let cpuBefore, let cpuAfter, done > 0 {
            let micros = (cpuAfter - cpuBefore) * 1e6 / Double(done)
            result["gateway_cpu_us_per_cycle"] = micros
            rows.append(("gateway CPU", String(format: "%.0f µs per login + logout", micros)))
        }
        printTable(rows)
        try writeJSON(result, to: target.json)
        for connection in connections { await connection.close() }
        try await group.shutdownGracefully()
    }
}

final class FanoutCounters: Sendable {
    let delivered = Atomic<Int>(0)
    let lastDelivery = Atomic<UInt64>(0)
    let acked = Atomic<Int>(0)
    let sent = Atomic<Int>(0)  // slots taken (one more per sender as it stops)
    let written = Atomic<Int>(0)
    let pushDelivered = Atomic<Int>(0)
    let pushRequested = Atomic<Int>(0)  // recipients of the push calls that succeeded
}
