import ArgumentParser
import Foundation
import Histogram
import NIOCore
import NIOPosix
import SwitchboardClient
import Synchronization
import UserSig

@main
struct LoadTest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard-loadtest",
        abstract: "Load generator for Switchboard: real UserSigs, real logins, bounded in count and time.",
        subcommands: [Connect.self, Hold.self, Resume.self, Kick.self, Fanout.self, Churn.self, Echo.self])
}

struct TargetOptions: ParsableArguments {
    @Option(help: "Gateway WebSocket host.") var host = "127.0.0.1"
    @Option(help: "Gateway WebSocket port.") var port = 8080
    @Option(help: "More gateway ports, comma-separated (a cluster's other nodes): connections go round robin over --port and these.")
    var alsoPorts: String = ""
    @Option(help: "The app's sdkAppID.") var sdkappid: UInt64 = 1_400_000_000
    @Option(help: "The app's secret key (UserSigs are issued with it).") var key: String
    @Option(help: "Number of connections (bounded: at most 19000 per process).") var connections = 1000
    @Option(help: "Connections being opened at once.") var concurrency = 256
    @Option(help: "Comma-separated source addresses to spread over (127.0.0.2,127.0.0.3).")
    var sourceAddresses: String = ""
    @Option(help: "Platform to log in on.") var platform = "Web"
    @Option(help: "Prefix of the generated userIDs.") var userPrefix = "lt"
    @Flag(help: "Only the WebSocket handshake, no login: the baseline for logins/s.") var noLogin = false
    @Option(help: "Give up after this many seconds.") var timeout: Double = 120
    @Option(help: "Write the results as JSON to this file.") var json: String?
    @Option(help: "Worker processes (connect, hold): worker k binds 127.0.0.(k+2) and opens its share; histograms merged.")
    var workers = 1
    @Option(help: .hidden) var workerOutput: String?

    /// `--port`, then `--also-ports`.
    var ports: [Int] { [port] + alsoPorts.split(separator: ",").compactMap { Int($0) } }

    func validate() throws {
        guard alsoPorts.split(separator: ",").allSatisfy({ Int($0).map { (1...65535).contains($0) } ?? false }) else {
            throw ValidationError("--also-ports must be comma-separated ports")
        }
        guard (1...16).contains(workers) else { throw ValidationError("--workers must be 1 to 16") }
        guard (1...(19_000 * workers)).contains(connections) else {
            throw ValidationError("--connections must be 1 to 19000 per worker (one process holds at most about 19,000 sockets)")
        }
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 4096") }
    }
}

/// Opens the connections (and logs them in), returning the channels still open.
func openConnections(_ options: TargetOptions, recorder: Recorder, group: MultiThreadedEventLoopGroup,
                     progress: Bool = true) async throws -> (channels: [any Channel], seconds: Double) {
    // UserSigs are made before the clock starts: the figure is the gateway's, not ours.
    let key = UserSigKey(secret: options.key)
    let now = Int64(Date().timeIntervalSince1970)
    let logins: [[UInt8]?] = (0..<options.connections).map { i in
        guard !options.noLogin else { return nil }
        let user = "\(options.userPrefix)\(i)"
        let sig = TLSSigAPIv2.issue(sdkAppID: options.sdkappid, key: key, identifier: user, expire: 86_400, time: now)
        return Array(#"{"op":"login","id":1,"sdkAppID":\#(options.sdkappid),"userID":"\#(user)","userSig":"\#(sig)","platform":"\#(options.platform)"}"#.utf8)
    }
    return try await dialAll(host: options.host, ports: options.ports, path: "/ws", count: options.connections,
                             concurrency: options.concurrency, sourceAddresses: options.sourceAddresses,
                             timeout: options.timeout, logins: logins, recorder: recorder, group: group,
                             progress: progress)
}

/// Opens `count` WebSocket connections, `concurrency` at a time, spread over the source
/// addresses; each sends `logins[i]` (nil: a bare upgrade) and waits for its answer. Returns the
/// channels still open and how long it took.
func dialAll(host: String, ports: [Int], path: String, count: Int, concurrency: Int, sourceAddresses: String,
             timeout: Double, logins: [[UInt8]?], recorder: Recorder, group: MultiThreadedEventLoopGroup,
             progress: Bool = true) async throws -> (channels: [any Channel], seconds: Double) {
    let sources = try sourceAddresses.split(separator: ",").map {
        try SocketAddress(ipAddress: String($0), port: 0)
    }
    let next = SharedCounter()
    let opened = ChannelBag()
    let clock = ContinuousClock()
    let start = clock.now
    let deadline = start + .seconds(timeout)
    let reporter: Task<Void, Never>? = progress ? progressLine("connecting") { elapsed in
        let done = Int(recorder.histogram.totalCount)
        return String(format: "%7d done  %8.0f/s  errors %d", done, Double(done) / max(elapsed, 0.001),
                      recorder.errors.values.reduce(0, +))
    } : nil
    await withTaskGroup(of: Void.self) { workers in
        for _ in 0..<min(concurrency, count) {
            workers.addTask {
                while clock.now < deadline {
                    let i = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard i < count else { return }
                    let loop = group.next()
                    let done = loop.makePromise(of: Int.self)
                    let started = NIODeadline.now()
                    let login = logins[i]
                    do {
                        let channel = try await WebSocketConnector.connect(
                            host: host, port: ports[i % ports.count], path: path, group: loop,
                            localAddress: sources.isEmpty ? nil : sources[i % sources.count]
                        ) { _ in
                            [LoadConnectionHandler(recorder: recorder, login: login, started: started, done: done)]
                        }.get()
                        if try await done.futureResult.get() == 0 {
                            opened.list.withLock { $0.append(channel) }
                        } else {
                            try? await channel.close()
                        }
                    } catch {
                        recorder.error(code: -3)
                        done.succeed(-3)
                    }
                }
            }
        }
    }
    let seconds = (clock.now - start).seconds
    if let reporter { await endProgress(reporter) }
    return (opened.list.withLock { $0 }, seconds)
}

func summary(_ recorder: Recorder, label: String) -> [String: Any] {
    let h = recorder.histogram
    func ms(_ p: Double) -> Double { Double(h.valueAtPercentile(p)) / 1000 }
    return [
        "label": label,
        "count": Int(h.totalCount),
        "p50_ms": ms(50), "p90_ms": ms(90), "p99_ms": ms(99), "p999_ms": ms(99.9),
        "max_ms": Double(h.maxRecorded) / 1000,
        "errors": Dictionary(uniqueKeysWithValues: recorder.errors.map { (String($0.key), $0.value) }),
    ]
}

func printTable(_ rows: [(String, String)]) {
    let width = rows.map(\.0.count).max() ?? 0
    for (k, v) in rows {
        print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v)
    }
}

func writeJSON(_ object: [String: Any], to path: String?) throws {
    guard let path else { return }
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    try data.write(to: URL(fileURLWithPath: path))
}

/// CPU time (user + system) a local process has used so far, from /proc (seconds).
func cpuSeconds(pid: Int32) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")")
    else { return nil }
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Resident memory of a local process, from /proc (bytes).
func residentBytes(pid: Int32) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        if parts.count >= 2, let kib = Int(parts[1]) { return kib * 1024 }
    }
    return nil
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

struct Connect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open N connections flat out (each: upgrade, login, reply); logins/s and login latency.")

    @OptionGroup var target: TargetOptions
    @Option(help: "The gateway's pid, to read the CPU time it spent from /proc.") var gatewayPid: Int32?

    func run() async throws {
        if target.workers > 1 {
            let recorder = Recorder()
            let cpuBefore = gatewayPid.flatMap(cpuSeconds)
            let clock = ContinuousClock()
            let start = clock.now
            let pool = try WorkerPool.start(scenario: "connect", target: target, extra: [])
            _ = await pool.collect(timeout: target.timeout, recorder: recorder)
            // Wall time from the first worker's start to the last report (includes process start-up).
            let seconds = (clock.now - start).seconds
            let cpuAfter = gatewayPid.flatMap(cpuSeconds)
            try report(recorder, seconds: seconds, cpuBefore: cpuBefore, cpuAfter: cpuAfter)
            await pool.finish(timeout: 30)
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let recorder = Recorder()
        let cpuBefore = gatewayPid.flatMap(cpuSeconds)
        let (channels, seconds) = try await openConnections(target, recorder: recorder, group: group,
                                                            progress: target.workerOutput == nil)
        let cpuAfter = gatewayPid.flatMap(cpuSeconds)
        if let output = target.workerOutput {
            try writeWorkerReport(recorder, opened: channels.count, seconds: seconds, to: output)
        } else {
            try report(recorder, seconds: seconds, cpuBefore: cpuBefore, cpuAfter: cpuAfter)
        }
        for channel in channels { channel.close(promise: nil) }
        try await Task.sleep(for: .milliseconds(500))
        try await group.shutdownGracefully()
    }

    private func report(_ recorder: Recorder, seconds: Double, cpuBefore: Double?, cpuAfter: Double?) throws {
        let ok = Int(recorder.histogram.totalCount)
        var result = summary(recorder, label: target.noLogin ? "handshake" : "login")
        result["seconds"] = seconds
        result["per_second"] = Double(ok) / seconds
        var cpuRow: [(String, String)] = []
        if let cpuBefore, let cpuAfter, ok > 0 {
            // Gateway CPU per connection: steadier than a rate when client and gateway share cores.
            let micros = (cpuAfter - cpuBefore) * 1e6 / Double(ok)
            result["gateway_cpu_us_per_connection"] = micros
            cpuRow = [("gateway CPU", String(format: "%.0f µs per connection (%.2f s in all)", micros, cpuAfter - cpuBefore))]
        }
        let h = recorder.histogram
        printTable(cpuRow + [
            ("scenario", (target.noLogin ? "connect --no-login (bare WebSocket handshakes)" : "connect (upgrade + login + reply)")
                + (target.workers > 1 ? ", \(target.workers) worker processes" : "")),
            ("completed", "\(ok) of \(target.connections) in \(String(format: "%.2f", seconds)) s"),
            ("rate", String(format: "%.0f/s", Double(ok) / seconds)),
            ("latency ms", String(format: "p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f",
                                  Double(h.valueAtPercentile(50)) / 1000, Double(h.valueAtPercentile(90)) / 1000,
                                  Double(h.valueAtPercentile(99)) / 1000, Double(h.valueAtPercentile(99.9)) / 1000,
                                  Double(h.maxRecorded) / 1000)),
            ("errors", recorder.errors.isEmpty ? "none" : recorder.errors.map { "\($0.key): \($0.value)" }.joined(separator: ", ")),
        ])
        result["workers"] = target.workers
        try writeJSON(result, to: target.json)
    }
}

struct Hold: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Log N sessions in and hold them idle for T seconds; the gateway's resident memory per connection.")

    @OptionGroup var target: TargetOptions
    @Option(help: "Seconds to hold the idle sessions.") var duration: Double = 10
    @Option(help: "The gateway's pid, to read its resident memory from /proc.") var gatewayPid: Int32?

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let recorder = Recorder()
        let baseline = gatewayPid.flatMap(residentBytes)
        var pool: WorkerPool?
        let alive: Int
        let seconds: Double
        var channels: [any Channel] = []
        if target.workers > 1 {
            // Workers hold until the parent has read the gateway's memory (a stop file), bounded.
            let workers = try WorkerPool.start(scenario: "hold", target: target, extra: ["--duration", String(duration)])
            pool = workers
            (alive, seconds, _) = await workers.collect(timeout: target.timeout, recorder: recorder)
            try await Task.sleep(for: .seconds(min(duration, 3600)))
        } else {
            (channels, seconds) = try await openConnections(target, recorder: recorder, group: group,
                                                            progress: target.workerOutput == nil)
            if let output = target.workerOutput {
                try writeWorkerReport(recorder, opened: channels.filter(\.isActive).count, seconds: seconds, to: output)
                let stop = URL(fileURLWithPath: output).deletingLastPathComponent().appendingPathComponent("stop").path
                let deadline = ContinuousClock.now + .seconds(min(duration, 3600) + target.timeout + 60)
                while !FileManager.default.fileExists(atPath: stop), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                }
                for channel in channels { channel.close(promise: nil) }
                try await Task.sleep(for: .milliseconds(500))
                try await group.shutdownGracefully()
                return
            }
            try await Task.sleep(for: .seconds(min(duration, 3600)))
            alive = channels.filter(\.isActive).count
        }
        let loaded = gatewayPid.flatMap(residentBytes)
        if let pool {
            _ = FileManager.default.createFile(atPath: pool.directory.appendingPathComponent("stop").path, contents: nil)
        }
        var result = summary(recorder, label: "hold")
        result["connections_open"] = alive
        result["login_seconds"] = seconds
        result["hold_seconds"] = duration
        result["pings_answered"] = recorder.pings.load(ordering: .relaxed)
        result["closed_by_server"] = recorder.closedByServer.load(ordering: .relaxed)
        var rows: [(String, String)] = [
            ("scenario", target.workers > 1 ? "hold, \(target.workers) worker processes" : "hold"),
            ("sessions held", "\(alive) of \(target.connections) for \(duration) s"),
            ("pings answered", "\(recorder.pings.load(ordering: .relaxed))"),
            ("closed by server", "\(recorder.closedByServer.load(ordering: .relaxed))"),
        ]
        if let baseline, let loaded, alive > 0 {
            let perConnection = Double(loaded - baseline) / Double(alive)
            result["gateway_rss_baseline_bytes"] = baseline
            result["gateway_rss_loaded_bytes"] = loaded
            result["bytes_per_connection"] = perConnection
            rows.append(("gateway RSS", "\(baseline / 1024) KiB idle → \(loaded / 1024) KiB held"))
            rows.append(("per connection", String(format: "%.0f bytes (%.2f KiB)", perConnection, perConnection / 1024)))
        }
        printTable(rows)
        result["workers"] = target.workers
        try writeJSON(result, to: target.json)
        for channel in channels { channel.close(promise: nil) }
        await pool?.finish(timeout: 30)
        try await Task.sleep(for: .milliseconds(500))
        try await group.shutdownGracefully()
    }
}

final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
}

final class ChannelBag: Sendable {
    let list = Mutex<[any Channel]>([])
}
