// Strict RFC 8259 JSON parser working directly on UTF-8 bytes.

/// A parse failure: byte offset into the input and a human-readable reason.
public struct JSONParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Byte offset into the input where the problem was detected.
    public let offset: Int
    public let reason: String

    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }

    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// Strict RFC 8259 parser.
///
/// Rejects: trailing commas, leading zeros, "+1", ".5", "1.", NaN/Infinity,
/// unescaped control characters in strings, invalid escapes, unpaired
/// surrogate `\u` escapes, invalid UTF-8 (anywhere), bare words, comments,
/// duplicate object keys, a byte order mark, nesting deeper than `maxDepth`
/// and anything but whitespace after the value.
///
/// The parser is iterative (explicit container stack), so deep input can never
/// overflow the call stack, whatever `maxDepth` is. `maxDepth` counts nested
/// arrays/objects: with `maxDepth: 0` only scalars are accepted, with the
/// default 64 the 65th nested `[` or `{` is an error.
public enum JSONParser {
    /// Parses exactly one JSON value with optional surrounding whitespace.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64) throws(JSONParseError) -> JSONValue {
        guard let base = bytes.baseAddress, bytes.count > 0 else {
            throw JSONParseError(offset: 0, reason: "unexpected end of input, expected a JSON value")
        }
        var parser = _JSONParserCore(
            base: base.assumingMemoryBound(to: UInt8.self), end: bytes.count, maxDepth: maxDepth)
        return try parser.parseDocument()
    }

    /// Convenience for any byte collection; contiguous storage is parsed in place.
    public static func parse<C: Collection>(_ bytes: C, maxDepth: Int = 64) throws(JSONParseError) -> JSONValue
    where C.Element == UInt8 {
        let contiguous: Result<JSONValue, JSONParseError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(JSONParseError) -> JSONValue in
                try parse(UnsafeRawBufferPointer(buffer), maxDepth: maxDepth)
            }
        }
        if let contiguous { return try contiguous.get() }
        let copy = Array(bytes)
        let result = copy.withUnsafeBytes { buffer in
            Result { () throws(JSONParseError) -> JSONValue in
                try parse(buffer, maxDepth: maxDepth)
            }
        }
        return try result.get()
    }

    /// Parses the UTF-8 form of `string`.
    public static func parse(_ string: String, maxDepth: Int = 64) throws(JSONParseError) -> JSONValue {
        var string = string
        let result = string.withUTF8 { buffer in
            Result { () throws(JSONParseError) -> JSONValue in
                try parse(UnsafeRawBufferPointer(buffer), maxDepth: maxDepth)
            }
        }
        return try result.get()
    }
}

// MARK: - Implementation

private let quote = UInt8(ascii: "\"")
private let backslash = UInt8(ascii: "\\")

struct _JSONParserCore {
    let base: UnsafePointer<UInt8>
    let end: Int
    let maxDepth: Int
    var i = 0
    /// Reused buffer for strings containing escapes.
    var scratch: [UInt8] = []

    init(base: UnsafePointer<UInt8>, end: Int, maxDepth: Int) {
        self.base = base
        self.end = end
        self.maxDepth = maxDepth
    }

    /// Byte at `j`, or 0 past the end (0 is never valid where a byte is peeked).
    @inline(__always)
    func byte(_ j: Int) -> UInt8 {
        j < end ? base[j] : 0
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while i < end {
            let c = base[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 {
                i += 1
            } else {
                return
            }
        }
    }

    @inline(__always)
    func slice(_ from: Int, _ to: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: base + from, count: to - from)
    }

    func describeByte(at j: Int) -> String {
        guard j < end else { return "end of input" }
        let c = base[j]
        if c >= 0x21 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x" + String(c, radix: 16, uppercase: true)
    }

    func error(_ reason: String, at offset: Int) -> JSONParseError {
        JSONParseError(offset: offset, reason: reason)
    }

    // MARK: Document / containers

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        // Open containers, innermost last. `isObject[k]` tells which stack the
        // k-th open container lives on.
        var isObject: [Bool] = []
        var arrays: [[JSONValue]] = []
        var objects: [JSONObject] = []
        var pendingKeys: [String] = []

        nextValue: while true {
            skipWhitespace()
            guard i < end else {
                throw error("unexpected end of input, expected a JSON value", at: i)
            }
            var value: JSONValue
            switch base[i] {
            case UInt8(ascii: "{"):
                guard isObject.count < maxDepth else {
                    throw error("nesting deeper than maxDepth (\(maxDepth))", at: i)
                }
                i += 1
                skipWhitespace()
                if byte(i) == UInt8(ascii: "}") {
                    i += 1
                    value = .object(JSONObject())
                } else {
                    let key = try parseKey()
                    isObject.append(true)
                    objects.append(JSONObject(reservingCapacity: 8))
                    pendingKeys.append(key)
                    continue nextValue
                }
            case UInt8(ascii: "["):
                guard isObject.count < maxDepth else {
                    throw error("nesting deeper than maxDepth (\(maxDepth))", at: i)
                }
                i += 1
                skipWhitespace()
                if byte(i) == UInt8(ascii: "]") {
                    i += 1
                    value = .array([])
                } else {
                    isObject.append(false)
                    var elements: [JSONValue] = []
                    elements.reserveCapacity(4)
                    arrays.append(elements)
                    continue nextValue
                }
            case quote:
                value = .string(try parseString())
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                value = .number(try parseNumber())
            case UInt8(ascii: "t"):
                try expectLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try expectLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try expectLiteral("null")
                value = .null
            default:
                throw invalidValueStart()
            }

            // A value is complete: attach it to the enclosing containers,
            // closing as many as the input closes.
            while true {
                guard let inObject = isObject.last else {
                    skipWhitespace()
                    if i < end {
                        throw error("unexpected \(describeByte(at: i)) after the JSON value", at: i)
                    }
                    return value
                }
                skipWhitespace()
                let c = byte(i)
                if inObject {
                    let top = objects.count - 1
                    objects[top].appendNew(key: pendingKeys.removeLast(), value: value)
                    if c == UInt8(ascii: ",") {
                        i += 1
                        skipWhitespace()
                        if byte(i) == UInt8(ascii: "}") {
                            throw error("trailing comma in object", at: i)
                        }
                        let keyStart = i
                        let key = try parseKey()
                        if objects[top].contains(key: key) {
                            throw error("duplicate object key \"\(key)\"", at: keyStart)
                        }
                        pendingKeys.append(key)
                        continue nextValue
                    } else if c == UInt8(ascii: "}") {
                        i += 1
                        isObject.removeLast()
                        value = .object(objects.removeLast())
                    } else {
                        throw error("expected ',' or '}' after object member, found \(describeByte(at: i))", at: i)
                    }
                } else {
                    arrays[arrays.count - 1].append(value)
                    if c == UInt8(ascii: ",") {
                        i += 1
                        skipWhitespace()
                        if byte(i) == UInt8(ascii: "]") {
                            throw error("trailing comma in array", at: i)
                        }
                        continue nextValue
                    } else if c == UInt8(ascii: "]") {
                        i += 1
                        isObject.removeLast()
                        value = .array(arrays.removeLast())
                    } else {
                        throw error("expected ',' or ']' after array element, found \(describeByte(at: i))", at: i)
                    }
                }
            }
        }
    }

    /// Parses `"key"` `:` (with whitespace), leaving `i` at the value.
    mutating func parseKey() throws(JSONParseError) -> String {
        guard byte(i) == quote else {
            throw error("expected a string object key, found \(describeByte(at: i))", at: i)
        }
        let key = try parseString()
        skipWhitespace()
        guard byte(i) == UInt8(ascii: ":") else {
            throw error("expected ':' after object key, found \(describeByte(at: i))", at: i)
        }
        i += 1
        return key
    }

    func invalidValueStart() -> JSONParseError {
        let c = base[i]
        switch c {
        case UInt8(ascii: "+"):
            return error("numbers must not start with '+'", at: i)
        case UInt8(ascii: "."):
            return error("numbers must have a digit before the decimal point", at: i)
        case UInt8(ascii: "/"):
            return error("comments are not allowed", at: i)
        case UInt8(ascii: "]"), UInt8(ascii: "}"), UInt8(ascii: ","), UInt8(ascii: ":"):
            return error("unexpected \(describeByte(at: i)), expected a JSON value", at: i)
        case UInt8(ascii: "N"), UInt8(ascii: "I"):
            return error("NaN and Infinity are not valid JSON", at: i)
        case UInt8(ascii: "'"):
            return error("strings must use double quotes", at: i)
        case 0xEF where byte(i + 1) == 0xBB && byte(i + 2) == 0xBF:
            return error("byte order mark is not allowed", at: i)
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"):
            return error("invalid literal, expected a JSON value (bare words are not allowed)", at: i)
        default:
            return error("unexpected \(describeByte(at: i)), expected a JSON value", at: i)
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let start = i
        let matched = literal.withUTF8Buffer { word -> Bool in
            guard end - start >= word.count else { return false }
            for k in 0..<word.count where base[start + k] != word[k] {
                return false
            }
            return true
        }
        let next = byte(start + literal.utf8CodeUnitCount)
        let isWordByte = (next >= UInt8(ascii: "a") && next <= UInt8(ascii: "z"))
            || (next >= UInt8(ascii: "A") && next <= UInt8(ascii: "Z"))
            || (next >= UInt8(ascii: "0") && next <= UInt8(ascii: "9")) || next == UInt8(ascii: "_")
        guard matched, !isWordByte else {
            throw error("invalid literal, expected \(literal) (bare words are not allowed)", at: start)
        }
        i = start + literal.utf8CodeUnitCount
    }

    // MARK: Numbers

    @inline(__always)
    func isDigit(_ c: UInt8) -> Bool {
        c &- UInt8(ascii: "0") < 10
    }

    /// -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?
    mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
        let start = i
        var j = i
        if base[j] == UInt8(ascii: "-") { j += 1 }
        let first = byte(j)
        if first == UInt8(ascii: "0") {
            j += 1
            if isDigit(byte(j)) { throw error("leading zeros are not allowed in numbers", at: start) }
        } else if isDigit(first) {
            j += 1
            while isDigit(byte(j)) { j += 1 }
        } else {
            throw error("expected a digit after '-', found \(describeByte(at: j))", at: j)
        }
        if byte(j) == UInt8(ascii: ".") {
            j += 1
            guard isDigit(byte(j)) else {
                throw error("expected a digit after the decimal point, found \(describeByte(at: j))", at: j)
            }
            j += 1
            while isDigit(byte(j)) { j += 1 }
        }
        let e = byte(j)
        if e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            j += 1
            let sign = byte(j)
            if sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { j += 1 }
            guard isDigit(byte(j)) else {
                throw error("expected a digit in the exponent, found \(describeByte(at: j))", at: j)
            }
            j += 1
            while isDigit(byte(j)) { j += 1 }
        }
        i = j
        return JSONNumber(uncheckedText: String(decoding: slice(start, j), as: UTF8.self))
    }

    // MARK: Strings

    /// Parses a string starting at the opening quote at `i`.
    mutating func parseString() throws(JSONParseError) -> String {
        let start = i + 1
        var j = start
        while j < end {
            let c = base[j]
            if c >= 0x20 && c < 0x80 && c != quote && c != backslash {
                j += 1
            } else if c == quote {
                i = j + 1
                return String(decoding: slice(start, j), as: UTF8.self)
            } else if c == backslash {
                return try parseEscapedString(start: start, firstEscape: j)
            } else if c < 0x20 {
                throw controlCharacterError(at: j)
            } else {
                j = try validateUTF8Sequence(at: j)
            }
        }
        throw error("unterminated string", at: i)
    }

    func controlCharacterError(at j: Int) -> JSONParseError {
        let hex = String(base[j], radix: 16, uppercase: true)
        return error("unescaped control character U+\(hex.count == 1 ? "000" : "00")\(hex) in string", at: j)
    }

    /// Slow path: copies into `scratch`, decoding escapes.
    mutating func parseEscapedString(start: Int, firstEscape: Int) throws(JSONParseError) -> String {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: slice(start, firstEscape))
        var j = firstEscape
        while j < end {
            // Copy a run of plain bytes.
            let runStart = j
            while j < end {
                let c = base[j]
                if c >= 0x20 && c < 0x80 && c != quote && c != backslash {
                    j += 1
                } else if c >= 0x80 {
                    j = try validateUTF8Sequence(at: j)
                } else {
                    break
                }
            }
            if j > runStart { scratch.append(contentsOf: slice(runStart, j)) }
            guard j < end else { break }
            let c = base[j]
            if c == quote {
                i = j + 1
                return String(decoding: scratch, as: UTF8.self)
            }
            if c < 0x20 { throw controlCharacterError(at: j) }
            // Backslash.
            let escaped = byte(j + 1)
            switch escaped {
            case quote: scratch.append(quote)
            case backslash: scratch.append(backslash)
            case UInt8(ascii: "/"): scratch.append(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                j = try parseUnicodeEscape(at: j)
                continue
            default:
                if j + 1 >= end { break }
                throw error("invalid escape sequence '\\\(describeByte(at: j + 1))'", at: j)
            }
            j += 2
        }
        throw error("unterminated string", at: start - 1)
    }

    /// `\uXXXX` (with a following `\uXXXX` low surrogate when needed) at `j`;
    /// appends the scalar's UTF-8 to `scratch` and returns the index after it.
    mutating func parseUnicodeEscape(at j: Int) throws(JSONParseError) -> Int {
        let unit = try hex4(at: j)
        var scalar = unit
        var next = j + 6
        if unit >= 0xD800 && unit <= 0xDBFF {
            guard byte(j + 6) == backslash && byte(j + 7) == UInt8(ascii: "u") else {
                throw error("lone surrogate \\u\(hexString(unit)) (high surrogate not followed by a low surrogate escape)", at: j)
            }
            let low = try hex4(at: j + 6)
            guard low >= 0xDC00 && low <= 0xDFFF else {
                throw error("lone surrogate \\u\(hexString(unit)) (followed by \\u\(hexString(low)), not a low surrogate)", at: j)
            }
            scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            next = j + 12
        } else if unit >= 0xDC00 && unit <= 0xDFFF {
            throw error("lone surrogate \\u\(hexString(unit)) (low surrogate without a preceding high surrogate)", at: j)
        }
        appendUTF8(scalar)
        return next
    }

    func hexString(_ unit: UInt32) -> String {
        let s = String(unit, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    /// The 4 hex digits of a `\u` escape whose backslash is at `j`.
    func hex4(at j: Int) throws(JSONParseError) -> UInt32 {
        var value: UInt32 = 0
        for k in (j + 2)..<(j + 6) {
            let c = byte(k)
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
            default:
                throw error("invalid \\u escape, expected 4 hex digits", at: j)
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    mutating func appendUTF8(_ scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            scratch.append(UInt8(scalar))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | (scalar >> 6)))
            scratch.append(UInt8(0x80 | (scalar & 0x3F)))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | (scalar >> 12)))
            scratch.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (scalar & 0x3F)))
        default:
            scratch.append(UInt8(0xF0 | (scalar >> 18)))
            scratch.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
            scratch.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (scalar & 0x3F)))
        }
    }

    /// Validates the multi-byte UTF-8 sequence whose lead byte (>= 0x80) is at
    /// `j`; returns the index after it. Rejects overlong forms, surrogates,
    /// values above U+10FFFF and truncated sequences (Unicode Table 3-7).
    @inline(__always)
    func validateUTF8Sequence(at j: Int) throws(JSONParseError) -> Int {
        let c0 = base[j]
        @inline(__always) func inRange(_ k: Int, _ low: UInt8, _ high: UInt8) -> Bool {
            let c = byte(k)
            return c >= low && c <= high
        }
        switch c0 {
        case 0xC2...0xDF:
            if inRange(j + 1, 0x80, 0xBF) { return j + 2 }
        case 0xE0:
            if inRange(j + 1, 0xA0, 0xBF) && inRange(j + 2, 0x80, 0xBF) { return j + 3 }
        case 0xE1...0xEC, 0xEE...0xEF:
            if inRange(j + 1, 0x80, 0xBF) && inRange(j + 2, 0x80, 0xBF) { return j + 3 }
        case 0xED:
            if inRange(j + 1, 0x80, 0x9F) && inRange(j + 2, 0x80, 0xBF) { return j + 3 }
        case 0xF0:
            if inRange(j + 1, 0x90, 0xBF) && inRange(j + 2, 0x80, 0xBF) && inRange(j + 3, 0x80, 0xBF) { return j + 4 }
        case 0xF1...0xF3:
            if inRange(j + 1, 0x80, 0xBF) && inRange(j + 2, 0x80, 0xBF) && inRange(j + 3, 0x80, 0xBF) { return j + 4 }
        case 0xF4:
            if inRange(j + 1, 0x80, 0x8F) && inRange(j + 2, 0x80, 0xBF) && inRange(j + 3, 0x80, 0xBF) { return j + 4 }
        default:
            break
        }
        throw error("invalid UTF-8 in string", at: j)
    }
}
