import ArgumentParser
import Foundation
import Histogram
import NIOCore
import NIOPosix
import NIOWebSocket
import SwitchboardClient
import Synchronization

/// `echo`: any WebSocket echo server on any path, so Switchboard's `--conformance-echo` endpoint
/// and its peers (loadtest/peers/) are measured by the same client: bare handshakes/s, the
/// server's resident memory per idle connection, and echo messages/s with round-trip latency.
struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Any WebSocket echo server (--path): handshakes/s, idle memory per connection, echo messages/s and latency.")

    @Option(help: "Server host.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port = 18080
    @Option(help: "Path of the echo endpoint.") var path = "/echo"
    @Option(help: "A name for the server in the output.") var label = "server"
    @Option(help: "Phases, comma-separated, run in this order: memory, handshake, echo.")
    var phases = "memory,handshake,echo"
    @Option(help: "memory and handshake: connections (at most 19000).") var connections = 10_000
    @Option(help: "memory and handshake: connections being opened at once.") var concurrency = 256
    @Option(help: "Comma-separated source addresses to spread over (127.0.0.2,127.0.0.3).")
    var sourceAddresses: String = ""
    @Option(help: "The server's pid, to read its resident memory from /proc (memory phase).") var serverPid: Int32?
    @Option(help: "memory: seconds the idle connections are held before the server's memory is read.")
    var hold: Double = 2
    @Option(help: "echo: connections.") var echoConnections = 64
    @Option(help: "echo: message size in bytes (at least 8: a send timestamp rides in the payload).")
    var messageSize = 64
    @Option(help: "echo: messages in flight per connection.") var window = 8
    @Option(help: "echo: seconds measured.") var duration: Double = 10
    @Option(help: "echo: seconds of warm-up before measuring (not counted).") var warmup: Double = 1
    @Option(help: "Give up on a phase's connecting after this many seconds.") var timeout: Double = 120
    @Option(help: "Write the results as JSON to this file.") var json: String?

    func validate() throws {
        guard (1...19_000).contains(connections) else { throw ValidationError("--connections must be 1 to 19000") }
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 4096") }
        guard (1...10_000).contains(echoConnections) else { throw ValidationError("--echo-connections must be 1 to 10000") }
        guard (8...(1 << 20)).contains(messageSize) else { throw ValidationError("--message-size must be 8 to 1048576") }
        guard (1...1024).contains(window) else { throw ValidationError("--window must be 1 to 1024") }
        guard duration > 0, duration <= 600 else { throw ValidationError("--duration must be above 0 and at most 600") }
        guard warmup >= 0, warmup <= 60, hold >= 0, hold <= 600 else {
            throw ValidationError("--warmup must be 0 to 60 and --hold 0 to 600")
        }
        for phase in phaseList where !["memory", "handshake", "echo"].contains(phase) {
            throw ValidationError("unknown phase \(phase): memory, handshake, echo")
        }
    }

    private var phaseList: [String] { phases.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        var result: [String: Any] = ["label": label, "host": host, "port": port, "path": path]
        var rows: [(String, String)] = [("server", "\(label) ws://\(host):\(port)\(path)")]
        for phase in phaseList {
            switch phase {
            case "memory":
                let baseline = serverPid.flatMap(residentBytes)
                let recorder = Recorder()
                let (channels, seconds) = try await openBare(recorder: recorder, group: group)
                try await Task.sleep(for: .seconds(hold))
                let alive = channels.filter(\.isActive).count
                let loaded = serverPid.flatMap(residentBytes)
                var memory = summary(recorder, label: "memory: upgrades before the hold")
                memory["connections_open"] = alive
                memory["connect_seconds"] = seconds
                memory["hold_seconds"] = hold
                rows.append(("idle connections held", "\(alive) of \(connections) for \(hold) s"))
                if let baseline, let loaded, alive > 0 {
                    let perConnection = Double(loaded - baseline) / Double(alive)
                    memory["server_rss_idle_bytes"] = baseline
                    memory["server_rss_loaded_bytes"] = loaded
                    memory["bytes_per_connection"] = perConnection
                    rows.append(("server RSS", "\(baseline / 1024) KiB idle → \(loaded / 1024) KiB held"))
                    rows.append(("memory per connection", String(format: "%.0f bytes (%.2f KiB)", perConnection, perConnection / 1024)))
                } else {
                    rows.append(("memory per connection", "not read (--server-pid)"))
                }
                result["memory"] = memory
                await closeAll(channels)
            case "handshake":
                let recorder = Recorder()
                let (channels, seconds) = try await openBare(recorder: recorder, group: group)
                let ok = Int(recorder.histogram.totalCount)
                var handshake = summary(recorder, label: "handshake")
                handshake["seconds"] = seconds
                handshake["per_second"] = Double(ok) / seconds
                rows.append(("handshakes", "\(ok) of \(connections) in \(String(format: "%.2f", seconds)) s, "
                    + String(format: "%.0f/s", Double(ok) / seconds)))
                rows.append(("handshake ms", latencyRow(recorder)))
                rows.append(("handshake errors", errorsRow(recorder)))
                result["handshake"] = handshake
                await closeAll(channels)
            default:
                let (echo, echoRows) = try await runEcho(group: group)
                result["echo"] = echo
                rows += echoRows
            }
        }
        printTable(rows)
        try writeJSON(result, to: json)
        try await group.shutdownGracefully()
    }

    /// Bare upgrades flat out, `concurrency` at a time; the channels still open, and how long it took.
    private func openBare(recorder: Recorder, group: MultiThreadedEventLoopGroup) async throws
        -> (channels: [any Channel], seconds: Double) {
        try await dialAll(host: host, ports: [port], path: path, count: connections, concurrency: concurrency,
                          sourceAddresses: sourceAddresses, timeout: timeout,
                          logins: Array(repeating: nil, count: connections), recorder: recorder, group: group)
    }

    private func closeAll(_ channels: [any Channel]) async {
        for channel in channels { channel.close(promise: nil) }
        // Let the server take the closes in before the next phase.
        try? await Task.sleep(for: .seconds(1))
    }

    /// K connections, each keeping `window` messages of `messageSize` bytes in flight; after the
    /// warm-up, `duration` seconds are counted. Each message carries its send time.
    private func runEcho(group: MultiThreadedEventLoopGroup) async throws -> ([String: Any], [(String, String)]) {
        let setup = Recorder()
        var channels: [any Channel] = []
        var results: [EventLoopFuture<EchoResult>] = []
        let window = EchoWindow()
        for i in 0..<echoConnections {
            let loop = group.next()
            let done = loop.makePromise(of: EchoResult.self)
            let (size, inFlight) = (messageSize, self.window)
            do {
                let channel = try await WebSocketConnector.connect(
                    host: host, port: port, path: path, group: loop,
                    maxFrameSize: max(1 << 20, messageSize + 64)
                ) { _ in
                    [EchoClientHandler(size: size, window: inFlight, clock: window, done: done)]
                }.get()
                channels.append(channel)
                results.append(done.futureResult)
            } catch {
                setup.error(code: -3)
                done.succeed(EchoResult())
                _ = i
            }
        }
        let now = NIODeadline.now()
        let start = now + .nanoseconds(Int64(warmup * 1e9))
        let end = start + .nanoseconds(Int64(duration * 1e9))
        window.start.store(start.uptimeNanoseconds, ordering: .releasing)
        window.end.store(end.uptimeNanoseconds, ordering: .releasing)
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(EchoBegin()) }
        let open = channels
        let progress = progressLine("echo") { _ in String(format: "%d connections", open.count) }
        // Bounded: whatever has not drained 5 s after the end is closed and reported as it is.
        let (warmup, duration) = (warmup, duration)
        let drained = Task {
            try? await Task.sleep(for: .seconds(warmup + duration + 5))
            for channel in open { channel.close(promise: nil) }
        }
        let recorder = Recorder()
        var sent = 0, received = 0, counted = 0, unfinished = 0
        for future in results {
            let r = (try? await future.get()) ?? EchoResult()
            recorder.merge(r.histogram, errors: r.errors)
            sent += r.sent
            received += r.received
            counted += Int(r.histogram.totalCount)
            if !r.drained { unfinished += 1 }
        }
        drained.cancel()
        await endProgress(progress)
        for channel in channels { channel.close(promise: nil) }
        recorder.merge(Histogram(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three), errors: setup.errors)
        var echo = summary(recorder, label: "echo round trip")
        echo["connections"] = channels.count
        echo["message_bytes"] = messageSize
        echo["window"] = self.window
        echo["seconds"] = duration
        echo["warmup_seconds"] = warmup
        echo["messages_counted"] = counted
        echo["messages_sent"] = sent
        echo["messages_received"] = received
        echo["per_second"] = Double(counted) / duration
        echo["connections_not_drained"] = unfinished
        let rows: [(String, String)] = [
            ("echo", "\(channels.count) of \(echoConnections) connections × \(self.window) in flight × \(messageSize) B, "
                + "\(duration) s after \(warmup) s warm-up"),
            ("echo messages/s", String(format: "%.0f (%d counted; %d sent, %d received in all)",
                                       Double(counted) / duration, counted, sent, received)),
            ("echo round trip ms", latencyRow(recorder)),
            ("echo errors", errorsRow(recorder) + (unfinished > 0 ? ", \(unfinished) connections not drained" : "")),
        ]
        return (echo, rows)
    }
}

/// The measured interval, as `NIODeadline.uptimeNanoseconds`; zero until the run begins.
final class EchoWindow: Sendable {
    let start = Atomic<UInt64>(0)
    let end = Atomic<UInt64>(0)
}

struct EchoBegin: Sendable {}

struct EchoResult: Sendable {
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var errors: [Int: Int] = [:]
    var sent = 0
    var received = 0
    var drained = false
}

/// One echo connection: on `EchoBegin` sends `window` binary messages stamped with their send
/// time, and sends another for each echo that comes back until the end; counts the echoes that
/// arrive inside the measured interval and their round trips (µs, its own histogram: no lock).
final class EchoClientHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let size: Int
    private let window: Int
    private let clock: EchoWindow
    private let done: EventLoopPromise<EchoResult>
    private var result = EchoResult()
    private var outstanding = 0
    private var stopped = false
    private var finished = false
    private var start: UInt64 = 0
    private var end: UInt64 = 0

    init(size: Int, window: Int, clock: EchoWindow, done: EventLoopPromise<EchoResult>) {
        self.size = size
        self.window = window
        self.clock = clock
        self.done = done
    }

    private func send(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: size)
        buffer.writeInteger(NIODeadline.now().uptimeNanoseconds)
        buffer.writeRepeatingByte(UInt8(ascii: "x"), count: size - 8)
        let frame = WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: buffer)
        context.write(Self.wrapOutboundOut(frame), promise: nil)
        outstanding += 1
        result.sent += 1
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is EchoBegin else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        start = clock.start.load(ordering: .acquiring)
        end = clock.end.load(ordering: .acquiring)
        for _ in 0..<window { send(context: context) }
        context.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            let now = NIODeadline.now().uptimeNanoseconds
            result.received += 1
            outstanding -= 1
            var payload = frame.unmaskedData
            if payload.readableBytes == size, let sentAt = payload.readInteger(as: UInt64.self) {
                if now >= start, now < end {
                    _ = result.histogram.record(max(1, (now &- sentAt) / 1000))
                }
            } else {
                result.errors[-6, default: 0] += 1  // -6: an echo that is not what was sent
            }
            if now < end {
                send(context: context)
            } else {
                stopped = true
                if outstanding <= 0 { finish(drained: true) }
            }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    private func finish(drained: Bool) {
        guard !finished else { return }
        finished = true
        result.drained = drained
        done.succeed(result)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !stopped { result.errors[-2, default: 0] += 1 }  // -2: closed before the end
        finish(drained: stopped && outstanding <= 0)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
