// Compact JSON serializer appending UTF-8 to a byte buffer.

/// Appends compact JSON (no whitespace) to `bytes`.
///
/// Strings: `"` and `\` are escaped, control characters U+0000...U+001F are
/// written as `\b \t \n \f \r` or `\u00xx` (lowercase hex); everything else,
/// including `/`, DEL and non-ASCII, is written as raw UTF-8. Numbers are
/// written as their text; object members keep their order.
public struct JSONWriter: Sendable {
    public var bytes: [UInt8]

    public init(reservingCapacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(reservingCapacity)
    }

    /// Empties the buffer for reuse (keeps its capacity).
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
    }

    /// Serializes `value`. Recursion depth equals the value's nesting depth.
    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null:
            appendStatic("null")
        case .bool(let flag):
            appendStatic(flag ? "true" : "false")
        case .number(let number):
            writeRaw(number.text)
        case .string(let string):
            writeString(string)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if first { first = false } else { bytes.append(UInt8(ascii: ",")) }
                write(element)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            bytes.append(UInt8(ascii: "{"))
            var first = true
            for (key, member) in object {
                if first { first = false } else { bytes.append(UInt8(ascii: ",")) }
                writeString(key)
                bytes.append(UInt8(ascii: ":"))
                write(member)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// Writes `s` as a quoted, escaped JSON string.
    public mutating func writeString(_ s: String) {
        var s = s
        s.withUTF8 { appendEscaped($0) }
    }

    /// Appends bytes verbatim (caller guarantees valid JSON in context).
    /// Note: a plain string literal argument resolves to the `String` overload
    /// (Swift prefers `String` for literals); pass a `StaticString`-typed value
    /// to use this one. Both append the same bytes.
    public mutating func writeRaw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// Appends the UTF-8 of `s` verbatim (caller guarantees valid JSON in context).
    public mutating func writeRaw(_ s: String) {
        var s = s
        s.withUTF8 { bytes.append(contentsOf: $0) }
    }

    public mutating func writeInt(_ v: Int64) {
        if v < 0 {
            bytes.append(UInt8(ascii: "-"))
        }
        appendDecimal(v.magnitude)
    }

    public mutating func writeInt(_ v: UInt64) {
        appendDecimal(v)
    }

    /// Also makes `writeInt(42)` with a literal unambiguous.
    public mutating func writeInt(_ v: Int) {
        writeInt(Int64(v))
    }

    public mutating func writeNumber(_ n: JSONNumber) {
        writeRaw(n.text)
    }

    public mutating func writeBool(_ b: Bool) {
        appendStatic(b ? "true" : "false")
    }

    public mutating func writeNull() {
        appendStatic("null")
    }

    // MARK: Internals

    @inline(__always)
    private mutating func appendStatic(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private mutating func appendDecimal(_ value: UInt64) {
        if value < 10 {
            bytes.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var n = value
            var k = 20
            while n > 0 {
                let (quotient, remainder) = n.quotientAndRemainder(dividingBy: 10)
                k -= 1
                digits[k] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: remainder)
                n = quotient
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[k..<20]))
        }
    }

    private mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        var runStart = 0
        for k in 0..<utf8.count {
            let c = utf8[k]
            if c >= 0x20 && c != UInt8(ascii: "\"") && c != UInt8(ascii: "\\") { continue }
            if runStart < k {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<k]))
            }
            runStart = k + 1
            bytes.append(UInt8(ascii: "\\"))
            switch c {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
            case 0x08: bytes.append(UInt8(ascii: "b"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0C: bytes.append(UInt8(ascii: "f"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            default:
                bytes.append(UInt8(ascii: "u"))
                bytes.append(UInt8(ascii: "0"))
                bytes.append(UInt8(ascii: "0"))
                bytes.append(c < 0x10 ? UInt8(ascii: "0") : UInt8(ascii: "1"))
                let low = c & 0x0F
                bytes.append(low < 10 ? UInt8(ascii: "0") &+ low : UInt8(ascii: "a") &+ (low &- 10))
            }
        }
        if runStart < utf8.count {
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension JSONValue {
    /// Compact UTF-8 JSON text.
    public func serialized() -> [UInt8] {
        var writer = JSONWriter(reservingCapacity: 64)
        writer.write(self)
        return writer.bytes
    }

    /// Compact JSON text.
    public var jsonString: String {
        String(decoding: serialized(), as: UTF8.self)
    }
}
