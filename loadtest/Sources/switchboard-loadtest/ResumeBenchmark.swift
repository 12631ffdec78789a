import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import NIOWebSocket
@_spi(Testing) import SwitchboardClient
import SwitchboardProtocol
import Synchronization
import UserSig

/// `resume`: how long the Swift SDK takes from a dropped connection to the app receiving the
/// first event it missed, with two same-run baselines (a raw resume without the SDK, and a plain
/// reconnect + login).
struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop the SDK's connection N times; drop-to-first-replayed-event latency, beside raw resume and reconnect+login.")

    @OptionGroup var target: TargetOptions
    @Option(help: "Drops to measure (each scenario).") var drops = 500
    @Option(help: "Unmeasured rounds first.") var warmup = 20
    @Option(help: "Milliseconds per round at least: keeps each sender under the gateway's request rate limit (50/s).")
    var interval: Double = 25
    @Option(help: "The gateway's pid (accepted for loadtest/run.sh; unused).") var gatewayPid: Int32?

    func validate() throws {
        guard (1...100_000).contains(drops) else { throw ValidationError("--drops must be 1 to 100000") }
    }

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let key = UserSigKey(secret: target.key)
        let url = "ws://\(target.host):\(target.port)/ws"
        func sig(_ user: String) -> String {
            TLSSigAPIv2.issue(sdkAppID: target.sdkappid, key: key, identifier: user, expire: 86_400,
                              time: Int64(Date().timeIntervalSince1970))
        }
        func manager(_ platform: Platform) throws -> SwitchboardManager {
            var configuration = SwitchboardManager.Configuration(url: url, sdkAppID: target.sdkappid, platform: platform)
            configuration.eventLoopGroup = group
            // Every drop here comes after a healthy connection: the SDK's first retry, made at once.
            configuration.reconnect.resetAfter = .zero
            return try SwitchboardManager(configuration: configuration)
        }
        let prefix = "\(target.userPrefix)-resume-\(UInt32.random(in: 0...UInt32.max))"
        let receiver = try manager(.web)
        let sender = try manager(.web)
        let rawSender = try manager(.web)
        let arrivals = Arrivals(receiver)
        let resumed = ResumeTimes()
        receiver.addListener(resumed)
        try await receiver.login(userID: "\(prefix)-r", userSig: sig("\(prefix)-r"))
        try await sender.login(userID: "\(prefix)-s", userSig: sig("\(prefix)-s"))
        try await rawSender.login(userID: "\(prefix)-t", userSig: sig("\(prefix)-t"))
        let raw = try await RawSession.login(host: target.host, port: target.port, group: group,
                                             frame: loginFrame("\(prefix)-x", sig("\(prefix)-x")))
        let baselineSigs = (0..<(drops + warmup)).map { _ in sig("\(prefix)-b") }

        var sdk: [Double] = []
        var sdkReply: [Double] = []
        var rawResume: [Double] = []
        var login: [Double] = []
        var errors: [String: Int] = [:]
        let deadline = ContinuousClock.now + .seconds(target.timeout)
        // The three interleaved round by round, so they share the machine's conditions.
        for round in 0..<(drops + warmup) where ContinuousClock.now < deadline {
            let measured = round >= warmup
            let roundStarted = ContinuousClock.now
            do {
                // SDK: hold an event unread, drop the connection, time until the app has it.
                await receiver.suspendReading()
                try await sender.send(to: "\(prefix)-r", payload: ["round": .number(JSONNumber(round))])
                let seen = arrivals.count
                let dropped = NIODeadline.now()
                await receiver.dropConnection()
                let (arrived, message) = try await arrivals.next(after: seen)
                guard message.payload["round"]?.int64Value == Int64(round) else {
                    throw BenchmarkError("the SDK delivered \(message.payload) in round \(round)")
                }
                if measured {
                    sdk.append(Double((arrived - dropped).nanoseconds) / 1e6)
                    if let reply = resumed.last, reply > dropped {
                        sdkReply.append(Double((reply - dropped).nanoseconds) / 1e6)
                    }
                }

                // Raw resume: the same without the SDK.
                try await raw.disconnect()
                try await rawSender.send(to: "\(prefix)-x", payload: ["round": .number(JSONNumber(round))])
                let resumeStarted = NIODeadline.now()
                let replayed = try await raw.resume(host: target.host, port: target.port, group: group)
                if measured { rawResume.append(Double((replayed - resumeStarted).nanoseconds) / 1e6) }

                // Baseline: a fresh connection and login (what a client without resume pays).
                let loginStarted = NIODeadline.now()
                let fresh = try await RawSession.login(host: target.host, port: target.port, group: group,
                                                       frame: loginFrame("\(prefix)-b", baselineSigs[round]))
                if measured { login.append(Double((fresh.loginReplyArrived - loginStarted).nanoseconds) / 1e6) }
                try await fresh.logoutAndClose()
            } catch {
                errors["\(error)", default: 0] += 1
                if errors.values.reduce(0, +) > 10 { break }
            }
            let rest = roundStarted + .milliseconds(Int64(interval)) - ContinuousClock.now
            if rest > .zero { try await Task.sleep(for: rest) }
        }

        let rows = [("SDK: drop → first replayed event at the app", sdk),
                    ("SDK: drop → resume reply handled (onConnectSuccess)", sdkReply),
                    ("raw resume: connect + upgrade + resume → replayed event", rawResume),
                    ("baseline: connect + upgrade + login → reply", login)]
        var result: [String: Any] = ["drops": drops, "errors": errors]
        printTable([("scenario", "resume (\(sdk.count) drops, warmup \(warmup))")] + rows.map { label, values in
            (label, String(format: "p50 %.3f ms  p90 %.3f  p99 %.3f  max %.3f", percentile(values, 50),
                           percentile(values, 90), percentile(values, 99), values.max() ?? 0))
        } + [("errors", errors.isEmpty ? "none" : errors.map { "\($0.key): \($0.value)" }.joined(separator: ", "))])
        for (name, values) in zip(["sdk_resume", "sdk_resume_reply", "raw_resume", "reconnect_login"], rows.map(\.1)) {
            result[name] = ["count": values.count, "p50_ms": percentile(values, 50), "p90_ms": percentile(values, 90),
                            "p99_ms": percentile(values, 99), "max_ms": values.max() ?? 0]
        }
        try writeJSON(result, to: target.json)
        await receiver.shutdown()
        await sender.shutdown()
        await rawSender.shutdown()
        try? await raw.close()
        try await group.shutdownGracefully()
    }

    private func loginFrame(_ user: String, _ sig: String) -> [UInt8] {
        Array(#"{"op":"login","id":1,"sdkAppID":\#(target.sdkappid),"userID":"\#(user)","userSig":"\#(sig)","platform":"Web"}"#.utf8)
    }
}

struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Nearest-rank percentile of milliseconds.
func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

/// When the SDK last said it was attached again (on its event loop, as the resume reply is handled).
final class ResumeTimes: SwitchboardSDKListener {
    private let time = Mutex<NIODeadline?>(nil)

    var last: NIODeadline? { time.withLock { $0 } }

    func onConnectSuccess() {
        let now = NIODeadline.now()
        time.withLock { $0 = now }
    }
}

/// When each of a manager's messages reached the app (the consumer of `messages`).
final class Arrivals: Sendable {
    private let received = Mutex<[(NIODeadline, IncomingMessage)]>([])

    init(_ manager: SwitchboardManager) {
        let stream = manager.messages
        Task { [self] in
            for await message in stream {
                let now = NIODeadline.now()
                received.withLock { $0.append((now, message)) }
            }
        }
    }

    var count: Int { received.withLock { $0.count } }

    func next(after count: Int, timeout: Duration = .seconds(10)) async throws -> (NIODeadline, IncomingMessage) {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let item = received.withLock({ $0.count > count ? $0[count] : nil }) { return item }
            try await Task.sleep(for: .microseconds(200))
        }
        throw BenchmarkError("no message within \(timeout)")
    }
}

/// A session driven by hand over raw WebSocket frames (no SDK): login, drop, resume.
final class RawSession: Sendable {
    private struct State {
        var channel: (any Channel)?
        var sessionID = ""
        var token = ""
        var lastSeq: UInt64 = 0
        var replyArrived = NIODeadline.uptimeNanoseconds(0)
    }

    private let state = Mutex(State())
    private let frames = FrameQueue()

    private init() {}

    static func login(host: String, port: Int, group: any EventLoopGroup, frame: [UInt8]) async throws -> RawSession {
        let session = RawSession()
        try await session.connect(host: host, port: port, group: group)
        try await session.send(frame)
        let (arrived, reply) = try await session.frames.nextTimed()
        session.state.withLock { $0.replyArrived = arrived }
        guard reply["code"]?.int64Value == 0, let id = reply["data"]?["sessionID"]?.stringValue,
              let token = reply["data"]?["resumeToken"]?.stringValue
        else { throw BenchmarkError("login failed: \(reply)") }
        session.state.withLock {
            $0.sessionID = id
            $0.token = token
        }
        return session
    }

    /// When the login reply was read.
    var loginReplyArrived: NIODeadline { state.withLock { $0.replyArrived } }

    /// Drops the connection as the network would (no close frame, no logout).
    func disconnect() async throws {
        let channel = state.withLock { state in
            defer { state.channel = nil }
            return state.channel
        }
        try await channel?.close()
        frames.reset()
    }

    /// Resumes on a new connection and waits for the first replayed event.
    /// - Returns: when that event was read.
    func resume(host: String, port: Int, group: any EventLoopGroup) async throws -> NIODeadline {
        try await connect(host: host, port: port, group: group)
        let (id, token, last) = state.withLock { ($0.sessionID, $0.token, $0.lastSeq) }
        try await send(Array(#"{"op":"resume","id":2,"sessionID":"\#(id)","resumeToken":"\#(token)","lastSeq":\#(last)}"#.utf8))
        let reply = try await frames.next()
        guard reply["code"]?.int64Value == 0 else { throw BenchmarkError("resume failed: \(reply)") }
        let (arrived, event) = try await frames.nextTimed()
        guard let seq = event["seq"]?.numberValue?.uint64 else { throw BenchmarkError("expected an event: \(event)") }
        state.withLock { $0.lastSeq = seq }
        return arrived
    }

    func logoutAndClose() async throws {
        try await send(Array(#"{"op":"logout","id":3}"#.utf8))
        _ = try await frames.next()
        try await close()
    }

    func close() async throws {
        try await disconnect()
    }

    private func connect(host: String, port: Int, group: any EventLoopGroup) async throws {
        let frames = self.frames
        let channel = try await WebSocketConnector.connect(host: host, port: port, group: group) { _ in
            [RawFrameHandler(frames: frames)]
        }.get()
        state.withLock { $0.channel = channel }
    }

    private func send(_ bytes: [UInt8]) async throws {
        guard let channel = state.withLock({ $0.channel }) else { throw BenchmarkError("not connected") }
        try await channel.writeAndFlush(WebSocketFrame.clientText(bytes, allocator: channel.allocator))
    }
}

/// Text frames received, parsed, in order, each with when it was read (so polling adds nothing).
final class FrameQueue: Sendable {
    private let items = Mutex<[(NIODeadline, JSONValue)]>([])

    func push(_ value: JSONValue) {
        let now = NIODeadline.now()
        items.withLock { $0.append((now, value)) }
    }

    func reset() { items.withLock { $0.removeAll() } }

    func next(timeout: Duration = .seconds(10)) async throws -> JSONValue {
        try await nextTimed(timeout: timeout).1
    }

    func nextTimed(timeout: Duration = .seconds(10)) async throws -> (NIODeadline, JSONValue) {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let item = items.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return item }
            try await Task.sleep(for: .microseconds(100))
        }
        throw BenchmarkError("no frame within \(timeout)")
    }
}

final class RawFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let frames: FrameQueue

    init(frames: FrameQueue) {
        self.frames = frames
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            do {
                frames.push(try JSONParser.parse(Array(frame.unmaskedData.readableBytesView)))
            } catch {
                context.close(promise: nil)
            }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
        default:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
