import NIOCore
import SwitchboardProtocol

/// Server-side RFC 6455 frame parsing straight from the socket's read buffers, with fragments
/// reassembled and sizes capped.
///
/// It replaces NIO's `ByteToMessageHandler(WebSocketFrameDecoder)` + frame aggregator + protocol
/// error handler on the hot path for one reason: memory. Those three hold two handler contexts
/// each and the decoder keeps a reference to the last read buffer, which makes the channel's
/// pooled read buffer copy itself on the next read; an idle connection then pins two buffers.
/// This parser keeps nothing between reads unless a frame is incomplete, and then only a copy of
/// the remainder.
struct WebSocketFrameParser {
    enum Event: Equatable {
        /// A complete (reassembled) text message, unmasked.
        case text([UInt8])
        /// A complete binary message. The gateway only needs to know one came; the payload is
        /// kept for the conformance echo endpoint.
        case binary([UInt8])
        case ping([UInt8])
        case pong([UInt8])
        /// A close frame: its status code (nil when the payload is empty) and whether its reason
        /// is valid UTF-8.
        case close(UInt16?, reasonIsValid: Bool)
        /// The peer broke the protocol: close with this code.
        case violation(CloseCode, String)
    }

    let maxMessageBytes: Int
    private var pending: ByteBuffer?
    /// Whether `pending` is our own storage rather than the channel's read buffer.
    private var ownsPending = false
    private var fragments: [UInt8]?
    private var fragmentsAreText = false

    init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// Takes the bytes of one read.
    mutating func append(_ bytes: ByteBuffer) {
        if var pending {
            self.pending = nil  // drop our reference before writing, so the write does not copy
            var incoming = bytes
            pending.writeBuffer(&incoming)  // into our own storage (copied first if it was not)
            self.pending = pending
            ownsPending = true
        } else {
            pending = bytes
            ownsPending = false
        }
    }

    /// Called once the events of a read are handled: keeps only a private copy of an incomplete
    /// frame, so the channel's pooled read buffer is free to be reused.
    mutating func finishRead(allocator: ByteBufferAllocator) {
        guard var buffer = pending else { return }
        if buffer.readableBytes == 0 {
            pending = nil
        } else if !ownsPending {
            pending = allocator.buffer(buffer: buffer)
            ownsPending = true
        } else if buffer.readerIndex > 65536 {
            pending = nil
            buffer.discardReadBytes()  // a long message arriving in many reads: keep it compact
            pending = buffer
        }
    }

    /// The next event, or nil when more bytes are needed.
    mutating func next() -> Event? {
        guard var buffer = pending else { return nil }
        defer { pending = buffer }
        while true {
            let start = buffer.readerIndex
            guard let b0 = buffer.getInteger(at: start, as: UInt8.self),
                  let b1 = buffer.getInteger(at: start + 1, as: UInt8.self)
            else { return nil }
            let fin = b0 & 0x80 != 0
            let opcode = b0 & 0x0F
            let masked = b1 & 0x80 != 0
            var headerLength = 2
            var length = UInt64(b1 & 0x7F)
            if length == 126 {
                guard let n = buffer.getInteger(at: start + 2, as: UInt16.self) else { return nil }
                length = UInt64(n)
                headerLength += 2
            } else if length == 127 {
                guard let n = buffer.getInteger(at: start + 2, as: UInt64.self) else { return nil }
                length = n
                headerLength += 8
            }
            if b0 & 0x70 != 0 {
                return violation(&buffer, .protocolError, "reserved bits set without a negotiated extension")
            }
            let isControl = opcode & 0x08 != 0
            if isControl {
                guard opcode <= 0xA, opcode >= 0x8 else { return violation(&buffer, .protocolError, "unknown opcode") }
                guard fin, length <= 125 else {
                    return violation(&buffer, .protocolError, "control frames must be whole and at most 125 bytes")
                }
            } else if opcode > 2 {
                return violation(&buffer, .protocolError, "unknown opcode")
            }
            guard masked else { return violation(&buffer, .protocolError, "client frames must be masked") }
            // Check the size from the header, before waiting for (or buffering) the payload.
            let already = fragments?.count ?? 0
            if !isControl, length > UInt64(maxMessageBytes - already) {
                return violation(&buffer, .frameTooBig, "message larger than \(maxMessageBytes) bytes")
            }
            let payloadLength = Int(length)
            guard buffer.readableBytes >= headerLength + 4 + payloadLength else { return nil }
            let maskStart = start + headerLength
            let payload: [UInt8] = buffer.withUnsafeReadableBytes { raw in
                let base = maskStart - start
                var out = [UInt8](repeating: 0, count: payloadLength)
                for i in 0..<payloadLength {
                    out[i] = raw[base + 4 + i] ^ raw[base + (i & 3)]
                }
                return out
            }
            buffer.moveReaderIndex(forwardBy: headerLength + 4 + payloadLength)

            switch opcode {
            case 0x0:  // continuation
                guard fragments != nil else {
                    return violation(&buffer, .protocolError, "continuation frame without a message to continue")
                }
                fragments!.append(contentsOf: payload)
                guard fin else { continue }
                let message = fragments!
                fragments = nil
                return fragmentsAreText ? .text(message) : .binary(message)
            case 0x1, 0x2:
                guard fragments == nil else {
                    return violation(&buffer, .protocolError, "new message before the previous one ended")
                }
                if fin { return opcode == 0x1 ? .text(payload) : .binary(payload) }
                fragments = payload
                fragmentsAreText = opcode == 0x1
                continue
            case 0x8:
                if payload.isEmpty { return .close(nil, reasonIsValid: true) }
                guard payload.count >= 2 else { return violation(&buffer, .protocolError, "close payload of one byte") }
                let reasonIsValid = payload.withUnsafeBytes { UTF8Validator.isValid(UnsafeRawBufferPointer(rebasing: $0[2...])) }
                return .close(UInt16(payload[0]) << 8 | UInt16(payload[1]), reasonIsValid: reasonIsValid)
            case 0x9:
                return .ping(payload)
            default:
                return .pong(payload)
            }
        }
    }

    /// The status to answer a peer's close with: its own code when that is one a peer may send
    /// (RFC 6455 §7.4), 1002 otherwise, 1007 for a reason that is not UTF-8, 1000 for none.
    static func closeReply(to code: UInt16?, reasonIsValid: Bool) -> UInt16 {
        guard let code else { return 1000 }
        guard reasonIsValid else { return 1007 }
        if (1000...1003).contains(code) || (1007...1011).contains(code) || (3000...4999).contains(code) { return code }
        return 1002
    }

    private mutating func violation(_ buffer: inout ByteBuffer, _ code: CloseCode, _ reason: String) -> Event {
        buffer.moveReaderIndex(to: buffer.writerIndex)  // nothing after a violation is read
        fragments = nil
        return .violation(code, reason)
    }
}
