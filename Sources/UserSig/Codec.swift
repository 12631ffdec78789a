import CZlib
import Foundation

// Internal building blocks: base64 (standard and Tencent's URL variant), zlib, Python-style JSON.

enum Base64 {
    private static let standardAlphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let tencentAlphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-".utf8)

    /// Encodes `bytes`; the Tencent variant uses `*`, `-` and `_` instead of `+`, `/` and `=`.
    static func encode(_ bytes: UnsafeRawBufferPointer, tencent: Bool = false) -> [UInt8] {
        let alphabet = tencent ? tencentAlphabet : standardAlphabet
        let pad: UInt8 = tencent ? UInt8(ascii: "_") : UInt8(ascii: "=")
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(v >> 18 & 0x3F)])
            out.append(alphabet[Int(v >> 12 & 0x3F)])
            out.append(alphabet[Int(v >> 6 & 0x3F)])
            out.append(alphabet[Int(v & 0x3F)])
            i += 3
        }
        switch bytes.count - i {
        case 1:
            let v = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(v >> 18 & 0x3F)])
            out.append(alphabet[Int(v >> 12 & 0x3F)])
            out.append(pad)
            out.append(pad)
        case 2:
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(v >> 18 & 0x3F)])
            out.append(alphabet[Int(v >> 12 & 0x3F)])
            out.append(alphabet[Int(v >> 6 & 0x3F)])
            out.append(pad)
        default:
            break
        }
        return out
    }

    static func encode(_ bytes: [UInt8], tencent: Bool = false) -> [UInt8] {
        bytes.withUnsafeBytes { encode($0, tencent: tencent) }
    }

    /// Decodes base64, leniently about missing (or partly missing) padding. With `tencent`, `*`, `-`
    /// and `_` are also accepted as `+`, `/` and `=`. Returns nil on any other character, on data
    /// after padding, on excess padding, or on an impossible length.
    static func decode(_ text: String, tencent: Bool) -> [UInt8]? {
        var text = text
        return text.withUTF8 { decode($0, tencent: tencent) }
    }

    static func decode(_ input: UnsafeBufferPointer<UInt8>, tencent: Bool) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(input.count / 4 * 3 + 2)
        var accumulator: UInt32 = 0
        var bits = 0
        var symbols = 0
        var padding = 0
        for byte in input {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte &- UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte &- UInt8(ascii: "a") &+ 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte &- UInt8(ascii: "0") &+ 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "*") where tencent: value = 62
            case UInt8(ascii: "-") where tencent: value = 63
            case UInt8(ascii: "="):
                padding += 1
                continue
            case UInt8(ascii: "_") where tencent:
                padding += 1
                continue
            default:
                return nil
            }
            if padding != 0 { return nil }  // data after padding
            symbols += 1
            accumulator = (accumulator << 6 | UInt32(value)) & 0xFFFFFF
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        let remainder = symbols % 4
        if remainder == 1 || padding > 2 { return nil }
        if padding != 0 && (remainder == 0 || remainder + padding > 4) { return nil }
        return out
    }
}

enum Zlib {
    /// RFC 1950 compression at `level` (0–9; -1 is zlib's default, 6), as Python's `zlib.compress`.
    static func compress(_ input: [UInt8], level: Int32) -> [UInt8] {
        let level = min(max(level, -1), 9)
        var capacity = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(capacity))
        let status = input.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { dest in
                compress2(dest.baseAddress, &capacity, source.baseAddress, uLong(source.count), level)
            }
        }
        // compress2 only fails on bad parameters or out-of-memory; the bound is always sufficient.
        precondition(status == Z_OK, "zlib compress2 failed: \(status)")
        output.removeSubrange(Int(capacity)...)
        return output
    }

    /// Inflates one complete zlib stream (nothing may follow it), through a small fixed chunk buffer.
    /// Returns nil if the data is not a valid complete stream or inflates to more than `limit` bytes.
    static func inflate(_ input: [UInt8], limit: Int) -> Data? {
        guard !input.isEmpty, input.count <= Int(UInt32.max) else { return nil }
        let chunkSize = 1024
        // z_stream must not move between calls (zlib keeps a back pointer), hence the explicit allocation.
        return withUnsafeTemporaryAllocation(of: z_stream.self, capacity: 1) { streamBuffer -> Data? in
            let stream = streamBuffer.baseAddress!
            stream.initialize(to: z_stream())
            guard inflateInit_(stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                return nil
            }
            defer { inflateEnd(stream) }
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: chunkSize) { chunk -> Data? in
                input.withUnsafeBufferPointer { source -> Data? in
                    stream.pointee.next_in = UnsafeMutablePointer(mutating: source.baseAddress!)
                    stream.pointee.avail_in = uInt(source.count)
                    var output = Data()
                    while true {
                        stream.pointee.next_out = chunk.baseAddress!
                        stream.pointee.avail_out = uInt(chunkSize)
                        let status = CZlib.inflate(stream, Z_NO_FLUSH)
                        let produced = chunkSize - Int(stream.pointee.avail_out)
                        if produced > 0 {
                            guard output.count + produced <= limit else { return nil }
                            output.append(chunk.baseAddress!, count: produced)
                        }
                        switch status {
                        case Z_STREAM_END:
                            return stream.pointee.avail_in == 0 ? output : nil
                        case Z_OK:
                            // No progress possible without more input: truncated stream.
                            if produced == 0 && stream.pointee.avail_in == 0 { return nil }
                        default:
                            // Z_BUF_ERROR (truncated), Z_DATA_ERROR, Z_NEED_DICT, Z_MEM_ERROR, ...
                            return nil
                        }
                    }
                }
            }
        }
    }
}

/// Writes JSON exactly like Python's `json.dumps` with default arguments:
/// `", "` and `": "` separators, `ensure_ascii=True` (lowercase `\uXXXX`, surrogate pairs).
struct PythonJSONWriter {
    private(set) var bytes: [UInt8] = [UInt8(ascii: "{")]
    private var first = true

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    mutating func add(_ key: String, string value: String) {
        addKey(key)
        appendString(value)
    }

    mutating func add(_ key: String, number value: some BinaryInteger) {
        addKey(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    private mutating func addKey(_ key: String) {
        if !first {
            bytes.append(UInt8(ascii: ","))
            bytes.append(UInt8(ascii: " "))
        }
        first = false
        appendString(key)
        bytes.append(UInt8(ascii: ":"))
        bytes.append(UInt8(ascii: " "))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func appendEscapedUnit(_ unit: UInt16) {
        bytes.append(UInt8(ascii: "\\"))
        bytes.append(UInt8(ascii: "u"))
        bytes.append(Self.hexDigits[Int(unit >> 12 & 0xF)])
        bytes.append(Self.hexDigits[Int(unit >> 8 & 0xF)])
        bytes.append(Self.hexDigits[Int(unit >> 4 & 0xF)])
        bytes.append(Self.hexDigits[Int(unit & 0xF)])
    }

    private mutating func appendString(_ string: String) {
        bytes.append(UInt8(ascii: "\""))
        for unit in string.utf16 {
            switch unit {
            case 0x22: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "\""))
            case 0x5C: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "\\"))
            case 0x0A: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
            case 0x08: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "b"))
            case 0x0C: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "f"))
            case 0x20...0x7E: bytes.append(UInt8(truncatingIfNeeded: unit))
            default: appendEscapedUnit(unit)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
