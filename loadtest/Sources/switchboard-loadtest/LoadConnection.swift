import Histogram
import NIOCore
import NIOWebSocket
import SwitchboardClient
import SwitchboardProtocol
import Synchronization

/// What all connections of a run report to: counters and a latency histogram (microseconds).
final class Recorder: Sendable {
    private struct State {
        var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var errorsByCode: [Int: Int] = [:]
    }

    private let state = Mutex(State())
    let pings = Atomic<Int>(0)
    let events = Atomic<Int>(0)
    let closedByServer = Atomic<Int>(0)

    func record(micros: UInt64) {
        state.withLock { _ = $0.latency.record(max(1, micros)) }
    }

    func error(code: Int) {
        state.withLock { $0.errorsByCode[code, default: 0] += 1 }
    }

    /// Adds a worker process's figures to these (`--workers`).
    func merge(_ histogram: Histogram<UInt64>, errors: [Int: Int]) {
        state.withLock {
            $0.latency.add(histogram)
            for (code, count) in errors { $0.errorsByCode[code, default: 0] += count }
        }
    }

    var histogram: Histogram<UInt64> { state.withLock { $0.latency } }
    var errors: [Int: Int] { state.withLock { $0.errorsByCode } }
}

/// One lean client connection: sends the login (if any) once upgraded, reports the reply's
/// latency, answers server pings, and otherwise holds still.
final class LoadConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let recorder: Recorder
    private let login: [UInt8]?
    private let started: NIODeadline
    private let done: EventLoopPromise<Int>
    private var answered = false

    init(recorder: Recorder, login: [UInt8]?, started: NIODeadline, done: EventLoopPromise<Int>) {
        self.recorder = recorder
        self.login = login
        self.started = started
        self.done = done
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let login else {
            // A bare handshake: done as soon as the upgrade is.
            answered = true
            recorder.record(micros: UInt64((NIODeadline.now() - started).nanoseconds / 1000))
            done.succeed(0)
            return
        }
        context.writeAndFlush(Self.wrapOutboundOut(.clientText(login, allocator: context.channel.allocator)),
                              promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            guard !answered else {
                recorder.events.add(1, ordering: .relaxed)
                return
            }
            answered = true
            let elapsed = UInt64((NIODeadline.now() - started).nanoseconds / 1000)
            let code = frame.unmaskedData.withUnsafeReadableBytes { bytes -> Int in
                guard case .request(let reply) = FrameDecoder.decode(bytes) else { return -1 }
                return reply.fields["code"]?.numberValue?.int64.map(Int.init) ?? -1
            }
            if code == 0 {
                recorder.record(micros: elapsed)
            } else {
                recorder.error(code: code)
            }
            done.succeed(code)
        case .ping:
            recorder.pings.add(1, ordering: .relaxed)
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            recorder.closedByServer.add(1, ordering: .relaxed)
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !answered {
            answered = true
            recorder.error(code: -2)
            done.succeed(-2)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
