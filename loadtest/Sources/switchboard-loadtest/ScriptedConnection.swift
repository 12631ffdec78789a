import Foundation
import Histogram
import NIOCore
import NIOWebSocket
import SwitchboardClient
import SwitchboardProtocol
import Synchronization

/// What a scripted connection reads: a parsed text frame, or the end of the connection (with the
/// close code the server sent, if it sent one), each stamped when it was read on the event loop.
enum Inbound: Sendable {
    case text(NIODeadline, JSONValue)
    case closed(NIODeadline, UInt16?)
}

/// One client connection driven step by step from async code (kick, churn, fanout): frames are
/// stamped where they are read, queued, and awaited without polling. A `hook`, called on the event
/// loop, may take frames before they are queued (fanout's receivers count messages there).
final class ScriptedConnection: Sendable {
    typealias Hook = @Sendable (NIODeadline, JSONValue) -> Bool

    private struct State {
        var items: [Inbound] = []
        var head = 0
        var waiter: EventLoopPromise<Void>?
        var channel: (any Channel)?
        var closed = false
    }

    let loop: any EventLoop
    let hook: Hook?
    private let state = Mutex(State())

    private init(loop: any EventLoop, hook: Hook?) {
        self.loop = loop
        self.hook = hook
    }

    /// Connects and upgrades on `loop` (all of a connection's frames are read there).
    static func open(host: String, port: Int, loop: any EventLoop, source: SocketAddress? = nil,
                     hook: Hook? = nil) async throws -> ScriptedConnection {
        let connection = ScriptedConnection(loop: loop, hook: hook)
        let channel = try await WebSocketConnector.connect(host: host, port: port, group: loop, localAddress: source) { _ in
            [ScriptedFrameHandler(connection: connection)]
        }.get()
        connection.state.withLock { $0.channel = channel }
        return connection
    }

    var channel: (any Channel)? { state.withLock { $0.channel } }

    /// Called on the loop by the handler.
    fileprivate func push(_ item: Inbound) {
        let waiter = state.withLock { state -> EventLoopPromise<Void>? in
            if case .closed = item {
                guard !state.closed else { return nil }
                state.closed = true
            }
            state.items.append(item)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.succeed()
    }

    /// The next frame (or the close), waiting at most `timeout`. One consumer at a time.
    func next(timeout: TimeAmount = .seconds(10)) async throws -> Inbound {
        let deadline = NIODeadline.now() + timeout
        while true {
            let (item, waiter) = state.withLock { state -> (Inbound?, EventLoopPromise<Void>?) in
                if state.head < state.items.count {
                    let item = state.items[state.head]
                    state.head += 1
                    if state.head > 64, state.head * 2 > state.items.count {
                        state.items.removeFirst(state.head)
                        state.head = 0
                    }
                    return (item, nil)
                }
                let promise = loop.makePromise(of: Void.self)
                state.waiter = promise
                return (nil, promise)
            }
            if let item { return item }
            guard let waiter else { continue }
            if NIODeadline.now() >= deadline {
                // Complete it on the loop, where pushes complete theirs: never twice.
                loop.execute { [self] in wake() }
                try await waiter.futureResult.get()
                throw BenchmarkError("no frame within \(timeout.nanoseconds / 1_000_000) ms")
            }
            let timer = loop.scheduleTask(deadline: deadline) { [self] in wake() }
            try await waiter.futureResult.get()
            timer.cancel()
        }
    }

    /// Completes the current waiter, if any (on the loop).
    private func wake() {
        let waiter = state.withLock { state -> EventLoopPromise<Void>? in
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.succeed()
    }

    /// The next text frame whose `op` is `reply`, skipping others; fails on close.
    func nextReply(timeout: TimeAmount = .seconds(10)) async throws -> (NIODeadline, JSONValue) {
        while true {
            switch try await next(timeout: timeout) {
            case .text(let at, let value) where value["op"]?.stringValue == "reply":
                return (at, value)
            case .text:
                continue
            case .closed(_, let code):
                throw BenchmarkError("closed (code \(code.map(String.init) ?? "none")) before a reply")
            }
        }
    }

    /// Writes one text frame; returns when it was handed to the socket's write path (on the loop).
    @discardableResult
    func send(_ bytes: [UInt8]) async throws -> NIODeadline {
        guard let channel else { throw BenchmarkError("not connected") }
        let sent = NIODeadline.now()
        try await channel.writeAndFlush(WebSocketFrame.clientText(bytes, allocator: channel.allocator))
        return sent
    }

    /// Sends a request and waits for its reply.
    /// - Returns: when the request was sent, when its reply was read, and the reply's code.
    func request(_ bytes: [UInt8], timeout: TimeAmount = .seconds(10)) async throws -> (sent: NIODeadline, replied: NIODeadline, code: Int) {
        let sent = try await send(bytes)
        let (replied, reply) = try await nextReply(timeout: timeout)
        return (sent, replied, reply["code"]?.int64Value.map(Int.init) ?? -1)
    }

    func close() async {
        guard let channel else { return }
        try? await channel.close()
    }
}

/// Feeds a `ScriptedConnection`: stamps and parses text frames, answers pings, notes the close code.
final class ScriptedFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let connection: ScriptedConnection

    init(connection: ScriptedConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let now = NIODeadline.now()
            let data = frame.unmaskedData
            guard let value = data.withUnsafeReadableBytes({ try? JSONParser.parse($0) }) else {
                context.close(promise: nil)
                return
            }
            if let hook = connection.hook, hook(now, value) { return }
            connection.push(.text(now, value))
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            let data = frame.unmaskedData
            connection.push(.closed(.now(), data.getInteger(at: data.readerIndex, as: UInt16.self)))
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.push(.closed(.now(), nil))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Per-second progress on stderr while a scenario runs, until cancelled.
func progressLine(_ label: String, _ line: @escaping @Sendable (Double) -> String) -> Task<Void, Never> {
    let clock = ContinuousClock()
    let start = clock.now
    return Task {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            guard !Task.isCancelled else { break }
            let elapsed = (clock.now - start).seconds
            FileHandle.standardError.write(Data((String(format: "\r%6.1fs  ", elapsed) + label + " " + line(elapsed) + "   ").utf8))
        }
    }
}

func endProgress(_ task: Task<Void, Never>) async {
    task.cancel()
    await task.value
    FileHandle.standardError.write(Data("\n".utf8))
}

/// One histogram's row: p50/p90/p99/p99.9/max in ms.
func latencyRow(_ recorder: Recorder) -> String {
    let h = recorder.histogram
    guard h.totalCount > 0 else { return "no samples" }
    return String(format: "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (n=%d)",
                  Double(h.valueAtPercentile(50)) / 1000, Double(h.valueAtPercentile(90)) / 1000,
                  Double(h.valueAtPercentile(99)) / 1000, Double(h.valueAtPercentile(99.9)) / 1000,
                  Double(h.maxRecorded) / 1000, Int(h.totalCount))
}

func errorsRow(_ recorder: Recorder) -> String {
    let errors = recorder.errors
    return errors.isEmpty ? "none" : errors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
}

func loginFrame(sdkAppID: UInt64, user: String, sig: String, platform: String, id: Int = 1) -> [UInt8] {
    Array(#"{"op":"login","id":\#(id),"sdkAppID":\#(sdkAppID),"userID":"\#(user)","userSig":"\#(sig)","platform":"\#(platform)"}"#.utf8)
}
