import NIOCore

/// An incremental RESP2 reply parser.
///
/// Feed it whatever bytes have arrived; `next(from:)` returns a complete value when one is
/// there and `nil` when more bytes are needed. Bytes of finished parts (array headers, complete
/// elements of an array still being received) are consumed as they are parsed, so a large reply
/// arriving in many reads is parsed once, not from its start again on every read. Input that is
/// not RESP2 throws `RedisError.protocolError`; after that the parser must not be used again.
public struct RESPParser: Sendable {
    /// Redis's own limit (`proto-max-bulk-len`) by default.
    public var maxBulkLength: Int
    public var maxArrayCount: Int
    public var maxDepth: Int
    /// The longest simple string, error or header line accepted.
    public var maxLineLength: Int

    private struct PartialArray: Sendable {
        var remaining: Int
        var elements: [RESPValue]
    }

    private var stack: [PartialArray] = []

    public init(maxBulkLength: Int = 512 * 1024 * 1024, maxArrayCount: Int = 16 * 1024 * 1024,
                maxDepth: Int = 128, maxLineLength: Int = 1024 * 1024) {
        self.maxBulkLength = maxBulkLength
        self.maxArrayCount = maxArrayCount
        self.maxDepth = maxDepth
        self.maxLineLength = maxLineLength
    }

    /// True while part of a value has been consumed but the value is not complete.
    public var isMidValue: Bool { !stack.isEmpty }

    private enum Token {
        case value(RESPValue)
        case arrayHeader(Int)
    }

    public mutating func next(from buffer: inout ByteBuffer) throws(RedisError) -> RESPValue? {
        while true {
            guard let token = try parseToken(&buffer) else { return nil }
            var completed: RESPValue
            switch token {
            case .value(let value):
                completed = value
            case .arrayHeader(let count):
                if stack.count >= maxDepth {
                    throw .protocolError("arrays nested deeper than \(maxDepth)")
                }
                var elements: [RESPValue] = []
                elements.reserveCapacity(Swift.min(count, 1024))
                stack.append(PartialArray(remaining: count, elements: elements))
                continue
            }
            // Fold the finished value into the arrays it completes.
            while !stack.isEmpty {
                let top = stack.count - 1
                stack[top].elements.append(completed)
                stack[top].remaining -= 1
                guard stack[top].remaining == 0 else { break }
                completed = .array(stack.removeLast().elements)
            }
            if stack.isEmpty { return completed }
        }
    }

    /// Parses one value that has no children (or an array header) from the start of `buffer`,
    /// consuming it; returns nil and consumes nothing if it is not all there yet.
    private func parseToken(_ buffer: inout ByteBuffer) throws(RedisError) -> Token? {
        let start = buffer.readerIndex
        guard let type = buffer.getInteger(at: start, as: UInt8.self) else { return nil }
        switch type {
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "$"), UInt8(ascii: "*"):
            break
        default:
            throw .protocolError("unexpected RESP type byte 0x\(String(type, radix: 16)) (\(Self.quote([type])))")
        }
        guard let lineEnd = try findCRLF(buffer, from: start + 1) else { return nil }
        let line = buffer.getBytes(at: start + 1, length: lineEnd - start - 1) ?? []
        let afterLine = lineEnd + 2
        switch type {
        case UInt8(ascii: "+"):
            buffer.moveReaderIndex(to: afterLine)
            return .value(.simpleString(String(decoding: line, as: UTF8.self)))
        case UInt8(ascii: "-"):
            buffer.moveReaderIndex(to: afterLine)
            return .value(.error(String(decoding: line, as: UTF8.self)))
        case UInt8(ascii: ":"):
            guard let value = Self.parseInteger(line[...]) else {
                throw .protocolError("malformed integer \(Self.quote(line))")
            }
            buffer.moveReaderIndex(to: afterLine)
            return .value(.integer(value))
        case UInt8(ascii: "$"):
            let length = try parseLength(line, what: "bulk string length", limit: maxBulkLength)
            if length < 0 {
                buffer.moveReaderIndex(to: afterLine)
                return .value(.bulkString(nil))
            }
            // Wait for the whole payload and its CRLF; the header is parsed again next time (cheap).
            guard buffer.writerIndex - afterLine >= length + 2 else { return nil }
            let payload = buffer.getBytes(at: afterLine, length: length) ?? []
            guard buffer.getInteger(at: afterLine + length, as: UInt16.self) == 0x0D0A else {
                throw .protocolError("bulk string of \(length) bytes not followed by CRLF")
            }
            buffer.moveReaderIndex(to: afterLine + length + 2)
            return .value(.bulkString(payload))
        case UInt8(ascii: "*"):
            let count = try parseLength(line, what: "array length", limit: maxArrayCount)
            buffer.moveReaderIndex(to: afterLine)
            if count < 0 { return .value(.array(nil)) }
            if count == 0 { return .value(.array([])) }
            return .arrayHeader(count)
        default:
            preconditionFailure("type byte checked above")
        }
    }

    /// The index of the CR of the first CRLF at or after `from`, nil if none has arrived yet.
    private func findCRLF(_ buffer: ByteBuffer, from: Int) throws(RedisError) -> Int? {
        let end = buffer.writerIndex
        guard from <= end else { return nil }
        let view = buffer.viewBytes(at: from, length: end - from) ?? ByteBufferView()
        guard let cr = view.firstIndex(of: UInt8(ascii: "\r")) else {
            if view.count > maxLineLength {
                throw .protocolError("line longer than \(maxLineLength) bytes")
            }
            if view.contains(UInt8(ascii: "\n")) {
                throw .protocolError("line ended by LF without CR")
            }
            return nil
        }
        if cr - from > maxLineLength {
            throw .protocolError("line longer than \(maxLineLength) bytes")
        }
        if view[view.startIndex ..< cr].contains(UInt8(ascii: "\n")) {
            throw .protocolError("line ended by LF without CR")
        }
        guard let next = buffer.getInteger(at: cr + 1, as: UInt8.self) else { return nil }
        guard next == UInt8(ascii: "\n") else {
            throw .protocolError("CR not followed by LF")
        }
        return cr
    }

    private func parseLength(_ line: [UInt8], what: String, limit: Int) throws(RedisError) -> Int {
        guard let value = Self.parseInteger(line[...]) else {
            throw .protocolError("malformed \(what) \(Self.quote(line))")
        }
        if value == -1 { return -1 }
        guard value >= 0 else { throw .protocolError("negative \(what) \(value)") }
        guard value <= limit else { throw .protocolError("\(what) \(value) exceeds the limit \(limit)") }
        return Int(value)
    }

    /// A strict decimal Int64: optional `-`, then one or more digits, nothing else.
    static func parseInteger(_ bytes: ArraySlice<UInt8>) -> Int64? {
        var digits = bytes
        var negative = false
        if digits.first == UInt8(ascii: "-") {
            negative = true
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.count <= 19 else { return nil }
        var value: Int64 = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let digit = Int64(byte - UInt8(ascii: "0"))
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            // Accumulate negatively so Int64.min parses.
            let (next, overflow2) = negative ? times10.subtractingReportingOverflow(digit)
                                             : times10.addingReportingOverflow(digit)
            if overflow1 || overflow2 { return nil }
            value = next
        }
        return value
    }

    private static func quote(_ bytes: [UInt8]) -> String {
        let shown = bytes.prefix(32).map { byte -> String in
            if byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\"") { return String(UnicodeScalar(byte)) }
            return "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined()
        return "\"" + shown + (bytes.count > 32 ? "…" : "") + "\""
    }
}

/// The channel decoder: bytes in, one `RESPValue` per complete reply out.
public struct RESPDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = RESPValue

    private var parser: RESPParser

    public init(parser: RESPParser = RESPParser()) {
        self.parser = parser
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        try parser.next(from: &buffer)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        // A reply cut off by the end of the connection is dropped; the requests waiting for it
        // fail when the channel goes inactive.
        try parser.next(from: &buffer)
    }
}
