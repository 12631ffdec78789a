import NIOCore
import NIOWebSocket
import SwitchboardProtocol

/// `/echo` (only with `--conformance-echo`): echoes every text and binary message, answers pings
/// and closes as RFC 6455 says, through the same frame parser as `/ws`. It exists so a protocol
/// suite (Autobahn, via kosoku) can check the WebSocket layer the gateway runs on.
final class ConformanceEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    /// Autobahn's largest messages are 16 MiB.
    static let maxMessageBytes = 16 << 20 + 1024

    private var parser = WebSocketFrameParser(maxMessageBytes: ConformanceEchoHandler.maxMessageBytes)
    private var closing = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        parser.append(Self.unwrapInboundIn(data))
        while !closing, let event = parser.next() {
            switch event {
            case .text(let payload):
                guard payload.withUnsafeBytes(UTF8Validator.isValid) else {
                    close(context: context, code: 1007)
                    return
                }
                send(context: context, opcode: .text, payload: payload)
            case .binary(let payload):
                send(context: context, opcode: .binary, payload: payload)
            case .ping(let payload):
                send(context: context, opcode: .pong, payload: payload)
            case .pong:
                break
            case .close(let code, let reasonIsValid):
                close(context: context, code: WebSocketFrameParser.closeReply(to: code, reasonIsValid: reasonIsValid))
            case .violation(let code, _):
                close(context: context, code: code.rawValue)
            }
        }
        parser.finishRead(allocator: context.channel.allocator)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func send(context: ChannelHandlerContext, opcode: WebSocketOpcode, payload: [UInt8]) {
        let frame = WebSocketFrame(fin: true, opcode: opcode, data: context.channel.allocator.buffer(bytes: payload))
        context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
    }

    private func close(context: ChannelHandlerContext, code: UInt16) {
        closing = true
        var data = context.channel.allocator.buffer(capacity: 2)
        data.writeInteger(code)
        let channel = context.channel
        context.writeAndFlush(Self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)))
            .assumeIsolated().whenComplete { _ in
                channel.close(mode: .output, promise: nil)
                _ = try? channel.eventLoop.scheduleCallback(in: .seconds(2), handler: CloseChannel(channel: channel))
            }
    }
}

@available(*, unavailable)
extension ConformanceEchoHandler: Sendable {}
