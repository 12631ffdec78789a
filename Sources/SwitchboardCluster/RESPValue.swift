import NIOCore

/// One RESP2 value, as Redis sends it.
public enum RESPValue: Sendable, Hashable {
    case simpleString(String)
    /// A `-` reply; the text includes the error code (`"ERR unknown command"`, `"NOSCRIPT ..."`).
    case error(String)
    case integer(Int64)
    /// `nil` is the RESP null bulk string (`$-1`), e.g. GET of a missing key.
    case bulkString([UInt8]?)
    /// `nil` is the RESP null array (`*-1`), e.g. a timed-out BLPOP.
    case array([RESPValue]?)

    /// A simple string, or a bulk string decoded as UTF-8; `nil` for anything else,
    /// for a null bulk string and for bytes that are not valid UTF-8.
    public var string: String? {
        switch self {
        case .simpleString(let text):
            return text
        case .bulkString(let bytes?):
            return String(validating: bytes, as: UTF8.self)
        default:
            return nil
        }
    }

    /// The raw bytes of a simple or bulk string.
    public var bytes: [UInt8]? {
        switch self {
        case .simpleString(let text): return Array(text.utf8)
        case .bulkString(let bytes?): return bytes
        default: return nil
        }
    }

    /// An integer reply, or a simple/bulk string that is a decimal integer (as GET returns a counter).
    public var int: Int64? {
        switch self {
        case .integer(let value):
            return value
        case .simpleString(let text):
            return RESPParser.parseInteger(Array(text.utf8)[...])
        case .bulkString(let bytes?):
            return RESPParser.parseInteger(bytes[...])
        default:
            return nil
        }
    }

    /// The elements of a non-null array.
    public var array: [RESPValue]? {
        if case .array(let elements?) = self { return elements }
        return nil
    }

    /// The text of an error reply.
    public var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }

    /// True for the null bulk string and the null array.
    public var isNull: Bool {
        switch self {
        case .bulkString(nil), .array(nil): return true
        default: return false
        }
    }

    /// Appends the RESP2 encoding of this value (what a server would send).
    /// Simple strings and errors must not contain CR or LF.
    public func write(to buffer: inout ByteBuffer) {
        switch self {
        case .simpleString(let text):
            buffer.writeInteger(UInt8(ascii: "+"))
            buffer.writeString(text)
            buffer.writeCRLF()
        case .error(let text):
            buffer.writeInteger(UInt8(ascii: "-"))
            buffer.writeString(text)
            buffer.writeCRLF()
        case .integer(let value):
            buffer.writeInteger(UInt8(ascii: ":"))
            buffer.writeString(String(value))
            buffer.writeCRLF()
        case .bulkString(nil):
            buffer.writeString("$-1\r\n")
        case .bulkString(let bytes?):
            buffer.writeInteger(UInt8(ascii: "$"))
            buffer.writeString(String(bytes.count))
            buffer.writeCRLF()
            buffer.writeBytes(bytes)
            buffer.writeCRLF()
        case .array(nil):
            buffer.writeString("*-1\r\n")
        case .array(let elements?):
            buffer.writeInteger(UInt8(ascii: "*"))
            buffer.writeString(String(elements.count))
            buffer.writeCRLF()
            for element in elements {
                element.write(to: &buffer)
            }
        }
    }
}

extension RESPValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .simpleString(let text): return "+\(text)"
        case .error(let text): return "-\(text)"
        case .integer(let value): return ":\(value)"
        case .bulkString(nil), .array(nil): return "(nil)"
        case .bulkString(let bytes?):
            if let text = String(validating: bytes, as: UTF8.self) { return "\"\(text)\"" }
            return "<\(bytes.count) bytes>"
        case .array(let elements?):
            return "[" + elements.map(\.description).joined(separator: ", ") + "]"
        }
    }
}

/// One argument of a command; every argument travels as a RESP bulk string.
public enum RESPArgument: Sendable, Hashable {
    case string(String)
    case bytes([UInt8])
    /// Sent as its decimal text, as Redis expects.
    case int(Int64)
}

extension RESPArgument: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) {
        self = .string(value)
    }
}

extension RESPArgument: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) {
        self = .int(value)
    }
}

extension ByteBuffer {
    mutating func writeCRLF() {
        writeInteger(UInt16(0x0D0A))  // "\r\n", big-endian
    }

    /// Appends one command as a RESP array of bulk strings.
    public mutating func writeRESPCommand(_ arguments: [RESPArgument]) {
        writeInteger(UInt8(ascii: "*"))
        writeString(String(arguments.count))
        writeCRLF()
        for argument in arguments {
            switch argument {
            case .string(let text):
                writeInteger(UInt8(ascii: "$"))
                writeString(String(text.utf8.count))
                writeCRLF()
                writeString(text)
            case .bytes(let bytes):
                writeInteger(UInt8(ascii: "$"))
                writeString(String(bytes.count))
                writeCRLF()
                writeBytes(bytes)
            case .int(let value):
                let text = String(value)
                writeInteger(UInt8(ascii: "$"))
                writeString(String(text.utf8.count))
                writeCRLF()
                writeString(text)
            }
            writeCRLF()
        }
    }
}
