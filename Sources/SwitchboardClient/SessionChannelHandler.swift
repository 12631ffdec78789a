import NIOCore
import NIOWebSocket
import SwitchboardProtocol

/// What a connection reports to the one who owns it (on the connection's event loop).
protocol SessionChannelDelegate: AnyObject {
    func connection(_ id: ConnectionID, received frame: InboundFrame)
    /// The connection ended; `closeCode` is the server's close frame's, when one came.
    func connection(_ id: ConnectionID, lost error: SwitchboardError, closeCode: UInt16?)
    /// Whether frames from `id` still count: a connection that is no longer the owner's must not
    /// acknowledge (by a pong) events that were never delivered.
    func isCurrent(_ id: ConnectionID) -> Bool
}

/// One SDK connection after the WebSocket upgrade: decodes the server's JSON frames for its
/// delegate, answers pings with the ping's own payload (RFC 6455 §5.5.3; the server reads an
/// acknowledged seq from it), echoes the server's close, and notices a connection that went
/// silent. One timer per connection serves both the establishment deadline and the silence limit.
final class SessionChannelHandler: ChannelInboundHandler, NIOScheduledCallbackHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let id: ConnectionID
    private var delegate: (any SessionChannelDelegate)?
    private var context: ChannelHandlerContext?
    private var lastInbound: NIODeadline = .uptimeNanoseconds(0)
    private var silenceLimit: TimeAmount
    /// Until the session is attached: the login or resume reply must come by then.
    private var deadline: NIODeadline?
    private let establishTimeout: TimeAmount
    private var timer: NIOScheduledCallback?
    private var timerDue: NIODeadline?
    private var closeCode: UInt16?
    private var silent = false
    private var deadlineMissed = false
    private var socketError: (any Error)?

    init(id: ConnectionID, delegate: any SessionChannelDelegate, establishTimeout: TimeAmount) {
        self.id = id
        self.delegate = delegate
        self.establishTimeout = establishTimeout
        self.silenceLimit = establishTimeout
    }

    // MARK: Used by the owner

    /// The session is attached: from now on only silence ends the connection.
    func becameOnline(silenceLimit: TimeAmount) {
        self.silenceLimit = silenceLimit
        deadline = nil
        rearm()
    }

    func write(_ bytes: [UInt8]) {
        guard let context else { return }
        let frame = WebSocketFrame.clientText(bytes, allocator: context.channel.allocator)
        context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
    }

    /// Closes without reporting: the owner has already moved on.
    func abandon() {
        delegate = nil
        context?.close(promise: nil)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let now = context.eventLoop.now
        lastInbound = now
        deadline = now + establishTimeout
        rearm()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastInbound = context.eventLoop.now
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let decoded = frame.unmaskedData.withUnsafeReadableBytes { FrameDecoder.decode($0) }
            if case .request(let inbound) = decoded {
                delegate?.connection(id, received: inbound)
            }
        case .ping:
            guard delegate?.isCurrent(id) == true else { return }
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            var payload = frame.unmaskedData
            let code = payload.readInteger(as: UInt16.self)
            closeCode = code ?? 1005
            // Echo it (RFC 6455 §5.5.1), then let go.
            var echo = context.channel.allocator.buffer(capacity: 2)
            echo.writeInteger(code ?? 1000)
            let reply = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: echo)
            context.writeAndFlush(Self.wrapOutboundOut(reply)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if let delegate {
            self.delegate = nil
            delegate.connection(id, lost: lossDescription(), closeCode: closeCode)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        socketError = error
        context.close(promise: nil)
    }

    // MARK: Timer

    func handleScheduledCallback(eventLoop: some EventLoop) {
        timer = nil
        timerDue = nil
        guard let context else { return }
        let now = eventLoop.now
        if let deadline, now >= deadline {
            deadlineMissed = true
            context.close(promise: nil)
            return
        }
        if now - lastInbound >= silenceLimit {
            silent = true
            context.close(promise: nil)
            return
        }
        rearm()
    }

    private func rearm() {
        guard let context else { return }
        var due = lastInbound + silenceLimit
        if let deadline { due = min(due, deadline) }
        if let timerDue, timer != nil, timerDue <= due { return }
        timer?.cancel()
        timer = try? context.eventLoop.assumeIsolated().scheduleCallback(at: due, handler: self)
        timerDue = due
    }

    private func lossDescription() -> SwitchboardError {
        if deadlineMissed {
            return .connectTimeout.with(desc: "no login or resume reply within \(establishTimeout)")
        }
        if silent {
            return .networkDisconnected.with(desc: "nothing heard from the server for \(silenceLimit)")
        }
        if let closeCode {
            return .networkDisconnected.with(desc: "the server closed the connection (\(closeCode))")
        }
        if let socketError {
            return .networkDisconnected.with(desc: "the connection failed: \(socketError)")
        }
        return .networkDisconnected
    }
}

@available(*, unavailable)
extension SessionChannelHandler: Sendable {}
