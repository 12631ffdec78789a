import NIOCore

/// The PROXY protocol header (HAProxy's, versions 1 and 2) a load balancer puts before a
/// connection's first byte, naming the client's address. With `proxyProtocol: true` every
/// connection on the WebSocket port must start with one; the per-address limits then count the
/// client's address, not the balancer's.
///
/// This handler is first in the pipeline. It reads the header, hands the client's address to
/// `ready` (which builds the rest of the pipeline), removes itself and passes on what followed
/// the header. A connection without a valid header within `timeout` is closed.
final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// Called once with the client's address as text (nil: a `LOCAL` or `UNKNOWN` header, a
    /// health check from the balancer itself: the socket's peer counts).
    private let ready: (ChannelHandlerContext, String?) throws -> Void
    private let timeout: TimeAmount
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var done = false

    static let maxV1 = 107
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// v2 with TLVs: bounded so that a stranger cannot make us buffer much.
    static let maxV2 = 16 + 512

    init(timeout: TimeAmount, ready: @escaping (ChannelHandlerContext, String?) throws -> Void) {
        self.timeout = timeout
        self.ready = ready
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else {
            context.fireChannelRead(data)
            return
        }
        var incoming = Self.unwrapInboundIn(data)
        if buffered == nil {
            buffered = incoming
        } else {
            buffered!.writeBuffer(&incoming)
        }
        guard var bytes = buffered else { return }
        switch Self.parse(&bytes) {
        case .needMore:
            return
        case .invalid:
            done = true
            context.close(promise: nil)
        case .header(let address):
            done = true
            timer?.cancel()
            do {
                try ready(context, address)
            } catch {
                context.close(promise: nil)
                return
            }
            // What followed the header goes on to the handlers just added; then this one leaves.
            buffered = nil
            if bytes.readableBytes > 0 {
                context.fireChannelRead(Self.wrapInboundOut(bytes))
            }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    enum Parsed: Equatable {
        case needMore
        case invalid
        /// The client's address (nil: the socket's peer counts); the header is consumed.
        case header(String?)
    }

    /// Reads one header from the front of `buffer`, consuming it on success.
    static func parse(_ buffer: inout ByteBuffer) -> Parsed {
        let view = buffer.readableBytesView
        if view.count >= 1, view.first == UInt8(ascii: "P") {
            return parseV1(&buffer)
        }
        let prefix = min(view.count, v2Signature.count)
        guard view.prefix(prefix).elementsEqual(v2Signature.prefix(prefix)) else { return .invalid }
        return parseV2(&buffer)
    }

    /// `PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n`, at most 107 bytes.
    private static func parseV1(_ buffer: inout ByteBuffer) -> Parsed {
        let view = buffer.readableBytesView
        let signature = Array("PROXY ".utf8)
        let prefix = min(view.count, signature.count)
        guard view.prefix(prefix).elementsEqual(signature.prefix(prefix)) else { return .invalid }
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            return view.count >= maxV1 ? .invalid : .needMore
        }
        let length = newline - view.startIndex + 1
        guard length <= maxV1, length >= 2, view[newline - 1] == UInt8(ascii: "\r") else { return .invalid }
        let line = String(decoding: view.prefix(length - 2), as: UTF8.self)
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        buffer.moveReaderIndex(forwardBy: length)
        if parts.count >= 2, parts[1] == "UNKNOWN" { return .header(nil) }
        guard parts.count == 6, parts[1] == "TCP4" || parts[1] == "TCP6",
              let source = try? SocketAddress(ipAddress: String(parts[2]), port: 0),
              (try? SocketAddress(ipAddress: String(parts[3]), port: 0)) != nil,
              UInt16(parts[4]) != nil, UInt16(parts[5]) != nil
        else { return .invalid }
        return .header(source.ipAddress)
    }

    /// The binary header: signature, version/command, family, length, addresses (and TLVs).
    private static func parseV2(_ buffer: inout ByteBuffer) -> Parsed {
        guard buffer.readableBytes >= 16 else { return .needMore }
        let start = buffer.readerIndex
        guard let versionCommand = buffer.getInteger(at: start + 12, as: UInt8.self),
              let family = buffer.getInteger(at: start + 13, as: UInt8.self),
              let length = buffer.getInteger(at: start + 14, as: UInt16.self)
        else { return .needMore }
        guard versionCommand >> 4 == 2, 16 + Int(length) <= maxV2 else { return .invalid }
        guard buffer.readableBytes >= 16 + Int(length) else { return .needMore }
        defer { buffer.moveReaderIndex(forwardBy: 16 + Int(length)) }
        switch versionCommand & 0x0F {
        case 0x0:  // LOCAL: the balancer's own connection (a health check)
            return .header(nil)
        case 0x1:  // PROXY
            break
        default:
            return .invalid
        }
        switch family {
        case 0x11 where length >= 12:  // TCP over IPv4
            guard let bytes = buffer.getBytes(at: start + 16, length: 4) else { return .invalid }
            return .header(bytes.map(String.init).joined(separator: "."))
        case 0x21 where length >= 36:  // TCP over IPv6
            guard let bytes = buffer.getBytes(at: start + 16, length: 16),
                  let address = try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: 0)
            else { return .invalid }
            return .header(address.ipAddress)
        case 0x00:  // UNSPEC
            return .header(nil)
        default:
            return .invalid
        }
    }
}

@available(*, unavailable)
extension ProxyProtocolHandler: Sendable {}
