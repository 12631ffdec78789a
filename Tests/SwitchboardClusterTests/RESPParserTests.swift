import NIOCore
import SwitchboardCluster
import Testing

@Suite("RESP parser")
struct RESPParserTests {
    /// Feeds `bytes` in pieces of `chunk` bytes (the last may be shorter), like reads arriving,
    /// and returns every value parsed, checking nothing is left over.
    private func parse(_ bytes: [UInt8], chunk: Int, parser: RESPParser = RESPParser()) throws -> [RESPValue] {
        var parser = parser
        var buffer = ByteBuffer()
        var values: [RESPValue] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            while let value = try parser.next(from: &buffer) {
                values.append(value)
            }
        }
        #expect(buffer.readableBytes == 0)
        #expect(!parser.isMidValue)
        return values
    }

    private func encode(_ values: [RESPValue]) -> [UInt8] {
        var buffer = ByteBuffer()
        for value in values {
            value.write(to: &buffer)
        }
        return Array(buffer.readableBytesView)
    }

    static let samples: [RESPValue] = [
        .simpleString("OK"),
        .simpleString(""),
        .error("ERR unknown command 'FOO'"),
        .integer(0),
        .integer(-1),
        .integer(-42),
        .integer(Int64.max),
        .integer(Int64.min),
        .bulkString(Array("hello".utf8)),
        .bulkString([]),
        .bulkString([0x0D, 0x0A, 0x00, 0xFF, 0x0D]),  // CRLF and binary inside a bulk string
        .bulkString(nil),
        .array(nil),
        .array([]),
        .array([.integer(1), .bulkString(Array("two".utf8)), .simpleString("three")]),
        .array([.array([.integer(1), .array([])]), .array(nil), .bulkString(nil),
                .array([.array([.array([.error("deep")])])])]),
    ]

    @Test("parses every type, fed whole, in random pieces and byte at a time")
    func everyTypeAnySplit() throws {
        let bytes = encode(Self.samples)
        for chunk in [bytes.count, 1, 2, 3, 7, 64] {
            #expect(try parse(bytes, chunk: chunk) == Self.samples, "chunk \(chunk)")
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            var parser = RESPParser()
            var buffer = ByteBuffer()
            var values: [RESPValue] = []
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + Int.random(in: 1...40, using: &generator))
                buffer.writeBytes(bytes[offset..<end])
                offset = end
                while let value = try parser.next(from: &buffer) { values.append(value) }
            }
            #expect(values == Self.samples)
        }
    }

    @Test("exact wire format of replies")
    func wireFormat() throws {
        let text = "+OK\r\n-ERR bad\r\n:-7\r\n$3\r\nfoo\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n*1\r\n:1\r\n$0\r\n\r\n"
        let values = try parse(Array(text.utf8), chunk: 1)
        #expect(values == [
            .simpleString("OK"), .error("ERR bad"), .integer(-7), .bulkString(Array("foo".utf8)),
            .bulkString(nil), .array(nil), .array([]), .array([.array([.integer(1)]), .bulkString([])]),
        ])
        #expect(encode(values) == Array(text.utf8))
    }

    @Test("a large bulk string in many reads")
    func largeBulkString() throws {
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let bytes = encode([.bulkString(payload), .simpleString("after")])
        for chunk in [65_536, 4_099, 1_000] {
            let values = try parse(bytes, chunk: chunk)
            #expect(values == [.bulkString(payload), .simpleString("after")])
        }
    }

    @Test("a large array of bulk strings, split everywhere")
    func largeArray() throws {
        let elements = (0..<2_000).map { RESPValue.bulkString(Array("element-\($0)".utf8)) }
        let bytes = encode([.array(elements)])
        #expect(try parse(bytes, chunk: 1_000) == [.array(elements)])
        #expect(try parse(bytes, chunk: 13) == [.array(elements)])
    }

    @Test("nothing is returned or consumed wrongly before a value is complete")
    func incomplete() throws {
        var parser = RESPParser()
        var buffer = ByteBuffer(string: "$5\r\nhel")
        #expect(try parser.next(from: &buffer) == nil)
        buffer.writeString("lo\r")
        #expect(try parser.next(from: &buffer) == nil)
        buffer.writeString("\n:1")
        #expect(try parser.next(from: &buffer) == .bulkString(Array("hello".utf8)))
        #expect(try parser.next(from: &buffer) == nil)
        buffer.writeString("\r\n")
        #expect(try parser.next(from: &buffer) == .integer(1))
    }

    @Test("the channel decoder works through NIO's byte-to-message processor")
    func decoderThroughProcessor() throws {
        let processor = NIOSingleStepByteToMessageProcessor(RESPDecoder())
        var values: [RESPValue] = []
        for byte in encode(Self.samples) {
            try processor.process(buffer: ByteBuffer(bytes: [byte])) { values.append($0) }
        }
        #expect(values == Self.samples)
    }

    @Test("malformed input is a protocol error", arguments: [
        "?what\r\n",                 // unknown type byte
        "_\r\n",                     // RESP3 null: not RESP2
        ":12a\r\n",                  // not an integer
        ":\r\n",                     // empty integer
        ":-\r\n",
        ":99999999999999999999\r\n", // overflows Int64
        ":9223372036854775808\r\n",  // Int64.max + 1
        "$-2\r\n",                   // negative length other than -1
        "$abc\r\n",
        "$3\r\nabcd\r\n",            // payload longer than announced
        "$3\r\nabc\n\r",             // payload not followed by CRLF
        "*-5\r\n",
        "*x\r\n",
        "+OK\rX",                    // CR not followed by LF
        "+OK\n",                     // LF without CR
        "*1\r\n$1\r\na\r\n!",        // garbage after a complete value
    ])
    func malformed(_ text: String) throws {
        var parser = RESPParser()
        var buffer = ByteBuffer(string: text)
        let error = #expect(throws: RedisError.self) {
            while try parser.next(from: &buffer) != nil {}
        }
        #expect(error?.isProtocolError == true, "\(String(describing: error))")
        // Byte at a time it is rejected too, at the same point.
        var bytewise = RESPParser()
        var accumulated = ByteBuffer()
        var threw = false
        for byte in Array(text.utf8) where !threw {
            accumulated.writeInteger(byte)
            do {
                while try bytewise.next(from: &accumulated) != nil {}
            } catch {
                threw = true
                #expect(error.isProtocolError)
            }
        }
        #expect(threw, "byte-at-a-time feeding of \(text.debugDescription) must fail too")
    }

    @Test("limits: bulk length, array length, nesting, line length")
    func limits() throws {
        func fails(_ text: String, _ parser: RESPParser) -> Bool {
            var parser = parser
            var buffer = ByteBuffer(string: text)
            do {
                while try parser.next(from: &buffer) != nil {}
                return false
            } catch {
                return error.isProtocolError
            }
        }
        #expect(fails("$1000\r\n", RESPParser(maxBulkLength: 999)))
        #expect(!fails("$999\r\n", RESPParser(maxBulkLength: 999)))
        #expect(fails("*11\r\n", RESPParser(maxArrayCount: 10)))
        #expect(fails(String(repeating: "*1\r\n", count: 5), RESPParser(maxDepth: 4)))
        #expect(!fails(String(repeating: "*1\r\n", count: 4) + ":1\r\n", RESPParser(maxDepth: 4)))
        #expect(fails("+" + String(repeating: "x", count: 200), RESPParser(maxLineLength: 100)))
        #expect(fails("+" + String(repeating: "x", count: 200) + "\r\n", RESPParser(maxLineLength: 100)))
    }

    @Test("commands are encoded as arrays of bulk strings")
    func commandEncoding() {
        var buffer = ByteBuffer()
        buffer.writeRESPCommand(["SET", .bytes([0, 0x0D, 0x0A]), .int(-12), .string("é")])
        #expect(String(buffer: buffer) == "*4\r\n$3\r\nSET\r\n$3\r\n\0\r\n\r\n$3\r\n-12\r\n$2\r\né\r\n")
    }

    @Test("conveniences")
    func conveniences() {
        #expect(RESPValue.simpleString("OK").string == "OK")
        #expect(RESPValue.bulkString(Array("hé".utf8)).string == "hé")
        #expect(RESPValue.bulkString([0xFF]).string == nil)
        #expect(RESPValue.bulkString(nil).string == nil)
        #expect(RESPValue.integer(5).string == nil)
        #expect(RESPValue.integer(-5).int == -5)
        #expect(RESPValue.bulkString(Array("42".utf8)).int == 42)
        #expect(RESPValue.bulkString(Array("4x".utf8)).int == nil)
        #expect(RESPValue.array([.integer(1)]).array == [.integer(1)])
        #expect(RESPValue.array(nil).array == nil)
        #expect(RESPValue.array(nil).isNull)
        #expect(RESPValue.bulkString(nil).isNull)
        #expect(!RESPValue.bulkString([]).isNull)
        #expect(!RESPValue.array([]).isNull)
        #expect(RESPValue.error("ERR x").errorMessage == "ERR x")
    }
}

extension Error {
    var isProtocolError: Bool {
        if case .protocolError? = self as? RedisError { return true }
        return false
    }
}
