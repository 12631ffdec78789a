import SwitchboardProtocol
import Testing

// MARK: - Helpers

private func parse(_ text: String, maxDepth: Int = 64) throws(JSONParseError) -> JSONValue {
    try JSONParser.parse(text, maxDepth: maxDepth)
}

private func parseError(_ bytes: [UInt8], maxDepth: Int = 64) -> JSONParseError? {
    do throws(JSONParseError) {
        let value = try JSONParser.parse(bytes, maxDepth: maxDepth)
        Issue.record("expected an error, parsed \(value)")
        return nil
    } catch {
        return error
    }
}

private func parseError(_ text: String, maxDepth: Int = 64) -> JSONParseError? {
    parseError(Array(text.utf8), maxDepth: maxDepth)
}

private func string(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

/// Deterministic SplitMix64.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: - Parsing valid input

@Suite struct JSONParsingTests {
    @Test func scalars() throws {
        #expect(try parse("null") == .null)
        #expect(try parse("true") == .bool(true))
        #expect(try parse("false") == .bool(false))
        #expect(try parse("0") == .number(JSONNumber(0)))
        #expect(try parse("-0").numberValue?.text == "-0")
        #expect(try parse("-12") == .number(JSONNumber(-12)))
        #expect(try parse("1.5e3").numberValue?.text == "1.5e3")
        #expect(try parse("2E-7").numberValue?.text == "2E-7")
        #expect(try parse("0.25e+2").numberValue?.text == "0.25e+2")
        #expect(try parse("\"\"") == .string(""))
        #expect(try parse("\"hello\"") == .string("hello"))
        #expect(try parse(" \t\r\n 42 \n\t\r ") == 42)
    }

    @Test func containers() throws {
        let value = try parse(#" { "op" : "join", "id" : 7, "args" : [ 1 , "two" , null , true , { } , [ ] ] } "#)
        #expect(value["op"] == "join")
        #expect(value["id"]?.int64Value == 7)
        #expect(value["missing"] == nil)
        #expect(value.objectValue?.keys == ["op", "id", "args"])
        let args = try #require(value["args"]?.arrayValue)
        #expect(args == [1, "two", nil, true, [:], []])
        #expect(value["args"]?[1] == "two")
        #expect(value["args"]?[6] == nil)
        #expect(value["args"]?[-1] == nil)
        #expect(try parse("[]") == .array([]))
        #expect(try parse("{}") == .object(JSONObject()))
        #expect(try parse("[[[]]]") == [[[]]])
    }

    @Test func keyOrderIsSourceOrder() throws {
        let value = try parse(#"{"z":1,"a":2,"m":3,"b":4}"#)
        #expect(value.objectValue?.keys == ["z", "a", "m", "b"])
        #expect(value.jsonString == #"{"z":1,"a":2,"m":3,"b":4}"#)
    }

    @Test func simpleEscapes() throws {
        #expect(try parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{08}\u{0C}\n\r\t"))
        #expect(try parse(#""a\nb""#) == .string("a\nb"))
        #expect(try parse(#""\\""#) == .string("\\"))
        #expect(try parse(#""x\"""#) == .string("x\""))
    }

    @Test func unicodeEscapes() throws {
        #expect(try parse(#""\u0041""#) == .string("A"))
        #expect(try parse(#""\u00e9\u00E9""#) == .string("éé"))
        #expect(try parse(#""\u20ac""#) == .string("€"))
        #expect(try parse(#""\uffff""#) == .string("\u{FFFF}"))
        #expect(try parse(#""\u0000""#) == .string("\u{0}"))
        #expect(try parse(#""\u001f""#) == .string("\u{1F}"))
        // Surrogate pairs decode to one scalar, any hex case.
        let emoji = try parse(#""\ud83d\ude00""#)
        #expect(emoji == .string("😀"))
        #expect(emoji.stringValue?.unicodeScalars.count == 1)
        #expect(try parse(#""\uD83D\uDE00""#) == .string("😀"))
        #expect(try parse(#""\udbff\udfff""#) == .string("\u{10FFFF}"))
        #expect(try parse(#""\ud800\udc00""#) == .string("\u{10000}"))
        #expect(try parse(#""a\u0062c\ud83d\ude00d""#) == .string("abc😀d"))
        // Raw UTF-8 passes through, also mixed with escapes.
        #expect(try parse("\"héllo wörld 日本語 😀\"") == .string("héllo wörld 日本語 😀"))
        #expect(try parse("\"日本\\n語\"") == .string("日本\n語"))
        // Escapes in keys.
        #expect(try parse(#"{"\u006bey":1}"#)["key"] == 1)
    }

    @Test func rawUTF8Boundaries() throws {
        // Smallest and largest scalars of each encoded length.
        for scalar in ["\u{80}", "\u{7FF}", "\u{800}", "\u{D7FF}", "\u{E000}", "\u{FFFD}", "\u{FFFF}", "\u{10000}", "\u{10FFFF}"] {
            #expect(try parse("\"\(scalar)\"") == .string(scalar))
        }
    }

    @Test func inputForms() throws {
        let text = #"{"a":[1,2,{"b":null}]}"#
        let expected = try parse(text)
        #expect(try JSONParser.parse(Array(text.utf8)) == expected)
        #expect(try JSONParser.parse(ArraySlice(Array(("xx" + text).utf8)).dropFirst(2)) == expected)
        #expect(try JSONParser.parse(text.utf8) == expected)
        #expect(try JSONParser.parse(Substring("  " + text).utf8) == expected)
        // Non-contiguous collection takes the copying path.
        #expect(try JSONParser.parse(Array(text.utf8).lazy.map { $0 }) == expected)
        let viaRaw = try Array(text.utf8).withUnsafeBytes { buffer throws(JSONParseError) in
            try JSONParser.parse(buffer)
        }
        #expect(viaRaw == expected)
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(empty) }
    }

    @Test func largeObjectsUseIndexAndStillRejectDuplicates() throws {
        let members = (0..<500).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        let value = try parse("{\(members)}")
        let object = try #require(value.objectValue)
        #expect(object.count == 500)
        #expect(object["k0"] == 0)
        #expect(object["k499"] == 499)
        #expect(object["k500"] == nil)
        #expect(object.keys == (0..<500).map { "k\($0)" })

        let error = parseError("{\(members),\"k250\":1}")
        #expect(error?.reason.contains("duplicate") == true)
        #expect(error?.offset == "{\(members),".utf8.count)
    }
}

// MARK: - Rejections

struct RejectCase: Sendable, CustomTestStringConvertible {
    let input: [UInt8]
    let reason: String  // expected substring of the error reason
    let offset: Int?

    init(_ input: String, _ reason: String, at offset: Int? = nil) {
        self.input = Array(input.utf8)
        self.reason = reason
        self.offset = offset
    }

    init(bytes: [UInt8], _ reason: String, at offset: Int? = nil) {
        self.input = bytes
        self.reason = reason
        self.offset = offset
    }

    var testDescription: String {
        String(decoding: input, as: UTF8.self).debugDescription
    }
}

private let rejectCases: [RejectCase] = [
    // Empty / whitespace only.
    RejectCase("", "unexpected end of input", at: 0),
    RejectCase("   ", "unexpected end of input", at: 3),
    // Trailing commas.
    RejectCase("[1,2,]", "trailing comma in array", at: 5),
    RejectCase("[1 , ]", "trailing comma in array", at: 5),
    RejectCase(#"{"a":1,}"#, "trailing comma in object", at: 7),
    RejectCase(#"{"a":1 , }"#, "trailing comma in object", at: 9),
    RejectCase("[,1]", "expected a JSON value", at: 1),
    RejectCase("[1,,2]", "expected a JSON value", at: 3),
    RejectCase("{,}", "expected a string object key", at: 1),
    RejectCase("[1 2]", "expected ',' or ']'", at: 3),
    RejectCase(#"{"a":1 "b":2}"#, "expected ',' or '}'", at: 7),
    // Numbers.
    RejectCase("01", "leading zeros", at: 0),
    RejectCase("-01", "leading zeros", at: 0),
    RejectCase("00", "leading zeros", at: 0),
    RejectCase("[007]", "leading zeros", at: 1),
    RejectCase("+1", "must not start with '+'", at: 0),
    RejectCase(".5", "digit before the decimal point", at: 0),
    RejectCase("-.5", "expected a digit after '-'", at: 1),
    RejectCase("1.", "expected a digit after the decimal point", at: 2),
    RejectCase("1.e5", "expected a digit after the decimal point", at: 2),
    RejectCase("[1.]", "expected a digit after the decimal point", at: 3),
    RejectCase("1e", "expected a digit in the exponent", at: 2),
    RejectCase("1e+", "expected a digit in the exponent", at: 3),
    RejectCase("1E-x", "expected a digit in the exponent", at: 3),
    RejectCase("-", "expected a digit after '-'", at: 1),
    RejectCase("-a", "expected a digit after '-'", at: 1),
    RejectCase("0x10", "after the JSON value", at: 1),
    RejectCase("1_000", "after the JSON value", at: 1),
    RejectCase("NaN", "NaN and Infinity", at: 0),
    RejectCase("Infinity", "NaN and Infinity", at: 0),
    RejectCase("-Infinity", "expected a digit after '-'", at: 1),
    RejectCase("[NaN]", "NaN and Infinity", at: 1),
    RejectCase("nan", "invalid literal", at: 0),
    // Invalid escapes.
    RejectCase(#""\x""#, "invalid escape", at: 1),
    RejectCase(#""\'""#, "invalid escape", at: 1),
    RejectCase(#""\0""#, "invalid escape", at: 1),
    RejectCase(#""\U0041""#, "invalid escape", at: 1),
    RejectCase(#""ab\ ""#, "invalid escape", at: 3),
    RejectCase(#""\u12""#, "expected 4 hex digits", at: 1),
    RejectCase(#""\u12G4""#, "expected 4 hex digits", at: 1),
    RejectCase(#""\u""#, "expected 4 hex digits", at: 1),
    RejectCase(#""\u+123""#, "expected 4 hex digits", at: 1),
    RejectCase(#""\"#, "unterminated string", at: 0),
    // Lone surrogates.
    RejectCase(#""\ud800""#, "lone surrogate \\uD800", at: 1),
    RejectCase(#""\udbff""#, "lone surrogate", at: 1),
    RejectCase(#""\udc00""#, "lone surrogate \\uDC00", at: 1),
    RejectCase(#""\udfff\ud800""#, "lone surrogate", at: 1),
    RejectCase(#""a\ud83dx""#, "lone surrogate", at: 2),
    RejectCase(#""\ud800\u0041""#, "lone surrogate", at: 1),
    RejectCase(#""\ud800\ud800""#, "lone surrogate", at: 1),
    RejectCase(#""\ud800\n""#, "lone surrogate", at: 1),
    RejectCase(#""\ud800\u12""#, "expected 4 hex digits", at: 7),
    RejectCase(#""\ude00\ud83d""#, "lone surrogate", at: 1),
    // Bare words, quotes, comments.
    RejectCase("abc", "bare words", at: 0),
    RejectCase("tru", "invalid literal, expected true", at: 0),
    RejectCase("truex", "invalid literal", at: 0),
    RejectCase("nul", "invalid literal", at: 0),
    RejectCase("nulls", "invalid literal", at: 0),
    RejectCase("True", "bare words", at: 0),
    RejectCase("undefined", "bare words", at: 0),
    RejectCase("[true false]", "expected ',' or ']'", at: 6),
    RejectCase(#"{a:1}"#, "expected a string object key", at: 1),
    RejectCase(#"{1:2}"#, "expected a string object key", at: 1),
    RejectCase("'a'", "double quotes", at: 0),
    RejectCase(#"{'a':1}"#, "expected a string object key", at: 1),
    RejectCase("// c\n1", "comments", at: 0),
    RejectCase("/* c */ 1", "comments", at: 0),
    RejectCase("[1 /* c */]", "expected ',' or ']'", at: 3),
    RejectCase("1 // c", "after the JSON value", at: 2),
    RejectCase("# c\n1", "expected a JSON value", at: 0),
    // Duplicate keys (also after escape decoding).
    RejectCase(#"{"a":1,"a":2}"#, "duplicate object key \"a\"", at: 7),
    RejectCase(#"{"a":1,"b":{"x":1,"x":2}}"#, "duplicate object key \"x\"", at: 18),
    RejectCase(#"{"a":1,"\u0061":2}"#, "duplicate object key", at: 7),
    RejectCase(#"{"a":1,"b":2,"c":3,"b":4}"#, "duplicate object key \"b\"", at: 19),
    // Anything after the value.
    RejectCase("1 2", "after the JSON value", at: 2),
    RejectCase("{} {}", "after the JSON value", at: 3),
    RejectCase("[]]", "after the JSON value", at: 2),
    RejectCase(#""a""b""#, "after the JSON value", at: 3),
    RejectCase("null,", "after the JSON value", at: 4),
    RejectCase("1\u{0}", "after the JSON value", at: 1),
    // Truncated input / structural errors.
    RejectCase(#""abc"#, "unterminated string", at: 0),
    RejectCase(#""abc\n"#, "unterminated string", at: 0),
    RejectCase("[1", "expected ',' or ']'", at: 2),
    RejectCase("[", "unexpected end of input", at: 1),
    RejectCase(#"{"a""#, "expected ':'", at: 4),
    RejectCase(#"{"a":"#, "unexpected end of input", at: 5),
    RejectCase(#"{"a" 1}"#, "expected ':'", at: 5),
    RejectCase(#"{"a":1"#, "expected ',' or '}'", at: 6),
    RejectCase("]", "expected a JSON value", at: 0),
    RejectCase("}", "expected a JSON value", at: 0),
    RejectCase(":", "expected a JSON value", at: 0),
    RejectCase("[1}", "expected ',' or ']'", at: 2),
    RejectCase(#"{"a":1]"#, "expected ',' or '}'", at: 6),
    // Whitespace other than space, tab, LF, CR.
    RejectCase("\u{0C}1", "expected a JSON value", at: 0),
    RejectCase("\u{A0}1", "expected a JSON value", at: 0),
    // Unescaped control characters in strings (all of them are covered separately too).
    RejectCase("\"a\tb\"", "unescaped control character U+0009", at: 2),
    RejectCase("\"a\nb\"", "unescaped control character U+000A", at: 2),
    RejectCase("\"\u{0}\"", "unescaped control character U+0000", at: 1),
    RejectCase("\"\u{1F}\"", "unescaped control character U+001F", at: 1),
    RejectCase("\"\\n\u{1}\"", "unescaped control character U+0001", at: 3),
    // Invalid UTF-8: in strings, in escaped strings, and outside strings.
    RejectCase(bytes: [0x22, 0xFF, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0x80, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0xC0, 0x80, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0xC1, 0xBF, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0xE0, 0x80, 0x80, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0xED, 0xA0, 0x80, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0xED, 0xBF, 0xBF, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0xF0, 0x80, 0x80, 0x80, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0xE2, 0x82, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0x61, 0xE2, 0x82], "invalid UTF-8", at: 2),
    RejectCase(bytes: [0x22, 0xF0, 0x9F, 0x98], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0xC3, 0x41, 0x22], "invalid UTF-8", at: 1),
    RejectCase(bytes: [0x22, 0x5C, 0x6E, 0xFE, 0x22], "invalid UTF-8", at: 3),
    RejectCase(bytes: [0x22, 0x5C, 0x6E, 0xC3, 0x22], "invalid UTF-8", at: 3),
    RejectCase(bytes: [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D], "invalid UTF-8", at: 2),
    RejectCase(bytes: [0xFF], "expected a JSON value", at: 0),
    RejectCase(bytes: [0x31, 0x20, 0xC3, 0xA9], "after the JSON value", at: 2),
    RejectCase(bytes: [0xEF, 0xBB, 0xBF, 0x31], "byte order mark", at: 0),
    // Depth.
    RejectCase(String(repeating: "[", count: 65), "nesting deeper than maxDepth (64)", at: 64),
    RejectCase(String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65),
               "nesting deeper than maxDepth", at: 64 * 5),
]

@Suite struct JSONRejectionTests {
    @Test(arguments: rejectCases)
    func rejects(_ testCase: RejectCase) throws {
        let error = try #require(parseError(testCase.input))
        #expect(error.reason.contains(testCase.reason), "reason was: \(error.reason)")
        if let offset = testCase.offset {
            #expect(error.offset == offset, "reason was: \(error.reason)")
        }
        #expect(!error.reason.isEmpty)
        #expect(error.description.contains("byte \(error.offset)"))
    }

    @Test func everyUnescapedControlCharacterIsRejected() throws {
        for c in UInt8(0)..<0x20 {
            let error = parseError([0x22, 0x61, c, 0x22])
            #expect(error?.offset == 2)
            #expect(error?.reason.contains("unescaped control character") == true)
            // Also after an escape (slow path) and in keys.
            #expect(parseError([0x22, 0x5C, 0x74, c, 0x22])?.reason.contains("control character") == true)
            #expect(parseError([0x7B, 0x22, c, 0x22, 0x3A, 0x31, 0x7D])?.offset == 2)
        }
        // DEL and above are fine.
        #expect(try parse("\"\u{7F}\"") == .string("\u{7F}"))
    }

    @Test func everyInvalidEscapeLetterIsRejected() {
        let valid = Set("\"\\/bfnrtu".utf8)
        for c in UInt8(0x20)..<0x7F where !valid.contains(c) {
            let error = parseError([0x22, 0x5C, c, 0x22])
            #expect(error?.offset == 1, "escape \(c)")
            #expect(error?.reason.contains("invalid escape") == true, "escape \(c): \(String(describing: error))")
        }
    }

    @Test func surrogateRangeIsRejectedUnpaired() {
        for unit in stride(from: 0xD800, through: 0xDFFF, by: 0x41) {
            let hex = String(unit, radix: 16)
            #expect(parseError("\"\\u\(hex)\"")?.reason.contains("lone surrogate") == true, "\(hex)")
            #expect(parseError("\"\\u\(hex)x\"")?.reason.contains("lone surrogate") == true, "\(hex)")
        }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let depth = 10_000
        let arrays = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        let arrayError = parseError(arrays)
        #expect(arrayError?.reason.contains("nesting deeper than maxDepth") == true)
        #expect(arrayError?.offset == 64)

        let objects = String(repeating: #"{"k":"#, count: depth) + "0" + String(repeating: "}", count: depth)
        #expect(parseError(objects)?.reason.contains("nesting deeper than maxDepth") == true)

        let mixed = String(repeating: #"[{"k":"#, count: depth / 2)
        #expect(parseError(mixed)?.reason.contains("nesting deeper than maxDepth") == true)

        // Unterminated deep input with a huge maxDepth: iterative parser, no stack overflow.
        let unterminated = String(repeating: "[", count: 200_000)
        #expect(parseError(unterminated, maxDepth: .max)?.reason.contains("unexpected end of input") == true)
    }

    @Test func maxDepthBoundary() throws {
        func nested(_ n: Int) -> String {
            String(repeating: "[", count: n) + String(repeating: "]", count: n)
        }
        #expect(throws: Never.self) { try parse(nested(64)) }
        #expect(parseError(nested(65)) != nil)
        #expect(throws: Never.self) { try parse(nested(3), maxDepth: 3) }
        #expect(parseError(nested(4), maxDepth: 3)?.offset == 3)
        #expect(throws: Never.self) { try parse(nested(500), maxDepth: 500) }
        // maxDepth 0: scalars only.
        #expect(try parse("1", maxDepth: 0) == 1)
        #expect(parseError("[]", maxDepth: 0)?.reason.contains("maxDepth") == true)
        #expect(parseError("{}", maxDepth: 0)?.reason.contains("maxDepth") == true)
        // Siblings do not add depth.
        let wide = "[" + Array(repeating: "[[]]", count: 1000).joined(separator: ",") + "]"
        #expect(try parse(wide, maxDepth: 3).arrayValue?.count == 1000)
    }
}

// MARK: - Numbers

@Suite struct JSONNumberTests {
    @Test func bigIntegersKeepTheirTextExactly() throws {
        let big = "123456789012345678901234567890123456789"
        let value = try parse(big)
        #expect(value.numberValue?.text == big)
        #expect(value.numberValue?.int64 == nil)
        #expect(value.numberValue?.uint64 == nil)
        #expect(value.numberValue?.double == 1.2345678901234568e38)
        #expect(value.jsonString == big)
        let inArray = try parse("[-\(big), 1e999, 0.1000000000000000000000001]")
        #expect(inArray.jsonString == "[-\(big),1e999,0.1000000000000000000000001]")
        #expect(inArray[1]?.numberValue?.double == .infinity)
        #expect(inArray[0]?.numberValue?.double == -1.2345678901234568e38)
    }

    @Test(arguments: [
        ("0", Int64(0), UInt64(0)),
        ("-0", 0, 0),
        ("7", 7, 7),
        ("-7", -7, nil),
        ("9223372036854775807", Int64.max, UInt64(Int64.max)),
        ("-9223372036854775808", Int64.min, nil),
        ("-9223372036854775807", Int64.min + 1, nil),
        ("1.0", 1, 1),
        ("1e2", 100, 100),
        ("1E+2", 100, 100),
        ("150e-1", 15, 15),
        ("1.50e1", 15, 15),
        ("0.5e1", 5, 5),
        ("-2.000", -2, nil),
        ("0e999999999999999999999", 0, 0),
        ("0.000e-5", 0, 0),
        ("-0.0", 0, 0),
        ("100e-2", 1, 1),
        ("922337203685477580.7e1", Int64.max, UInt64(Int64.max)),
        ("1.8446744073709551615e19", nil, UInt64.max),
    ] as [(String, Int64?, UInt64?)])
    func integerAccessors(text: String, int64: Int64?, uint64: UInt64?) throws {
        let number = try #require(JSONNumber(text: text))
        #expect(number.int64 == int64)
        #expect(number.uint64 == uint64)
    }

    @Test(arguments: [
        "1.5", "-0.5", "1e-2", "1e-400", "1e400", "-1e400", "0.1", "9223372036854775808e0",
        "9223372036854775808", "-9223372036854775809", "18446744073709551616",
        "184467440737095516150e-1", "1e20", "1e19000000000000", "12345678901234567890123",
    ])
    func nonInt64(text: String) throws {
        let number = try #require(JSONNumber(text: text))
        #expect(number.int64 == nil)
    }

    @Test func uint64Range() throws {
        #expect(JSONNumber(text: "9223372036854775808")?.uint64 == 9_223_372_036_854_775_808)
        #expect(JSONNumber(text: "18446744073709551615")?.uint64 == UInt64.max)
        #expect(JSONNumber(text: "18446744073709551616")?.uint64 == nil)
        #expect(JSONNumber(text: "184467440737095516150e-1")?.uint64 == UInt64.max)
        #expect(JSONNumber(text: "1e19")?.uint64 == 10_000_000_000_000_000_000)
        #expect(JSONNumber(text: "1e20")?.uint64 == nil)
        #expect(JSONNumber(text: "-1")?.uint64 == nil)
        #expect(JSONNumber(text: "-0")?.uint64 == 0)
        #expect(JSONNumber(text: "0.5")?.uint64 == nil)
    }

    @Test func doubles() throws {
        #expect(JSONNumber(text: "0.1")?.double == 0.1)
        #expect(JSONNumber(text: "-2.5e-3")?.double == -0.0025)
        #expect(JSONNumber(text: "1E3")?.double == 1000)
        #expect(JSONNumber(text: "123456789012345")?.double == 123_456_789_012_345)
        #expect(JSONNumber(text: "12345678901234567890")?.double == 12_345_678_901_234_567_890.0)
        #expect(JSONNumber(text: "9007199254740993")?.double == 9_007_199_254_740_992)
        #expect(JSONNumber(text: "1e400")?.double == .infinity)
        #expect(JSONNumber(text: "-1e400")?.double == -.infinity)
        #expect(JSONNumber(text: "1e-400")?.double == 0)
        let negativeZero = try #require(JSONNumber(text: "-0")?.double)
        #expect(negativeZero == 0 && negativeZero.sign == .minus)
        #expect(JSONNumber(Int64(-42)).double == -42)
    }

    @Test func initializers() throws {
        #expect(JSONNumber(Int64.min).text == "-9223372036854775808")
        #expect(JSONNumber(Int64.max).int64 == Int64.max)
        #expect(JSONNumber(UInt64.max).text == "18446744073709551615")
        #expect(JSONNumber(UInt64.max).uint64 == UInt64.max)
        #expect(JSONNumber(-5).text == "-5")
        let literal: JSONNumber = 12
        #expect(literal.text == "12")
        #expect(JSONNumber(1.5)?.text == "1.5")
        #expect(JSONNumber(100.0)?.int64 == 100)
        #expect(JSONNumber(Double.nan) == nil)
        #expect(JSONNumber(Double.infinity) == nil)
        #expect(JSONNumber(-Double.infinity) == nil)
        #expect(JSONNumber(Double.signalingNaN) == nil)
        for double in [0.0, -0.0, 0.1, 1e16, 1e-7, Double.leastNonzeroMagnitude, -Double.greatestFiniteMagnitude, 123.456, 1e300, 2.5e-10] {
            let number = try #require(JSONNumber(double))
            // Always valid JSON syntax, and the value round trips.
            #expect(JSONNumber(text: number.text) == number, "\(number.text)")
            #expect(number.double == double)
            #expect(number.double.sign == double.sign)
        }
        #expect(JSONNumber(42).description == "42")
    }

    @Test func validatingInitializer() {
        for valid in ["0", "-0", "1", "-1", "10", "1.5", "1e5", "1E5", "1e+5", "1e-5", "-0.0e-0", "123.456E789"] {
            #expect(JSONNumber(text: valid)?.text == valid)
        }
        for invalid in ["", " 1", "1 ", "01", "+1", ".5", "1.", "1e", "--1", "1.2.3", "0x1", "NaN", "inf", "\"1\"", "[1]", "1,"] {
            #expect(JSONNumber(text: invalid) == nil, "\(invalid)")
        }
    }

    @Test func equalityIsTextual() {
        #expect(JSONNumber(text: "1") != JSONNumber(text: "1.0"))
        #expect(JSONNumber(text: "1") == JSONNumber(1))
        #expect(JSONValue.number(JSONNumber(3)) == 3)
    }
}

// MARK: - Object and value API

@Suite struct JSONObjectTests {
    @Test func subscriptSetAppendsOrReplacesInPlace() {
        var object = JSONObject()
        #expect(object.isEmpty)
        object["a"] = 1
        object["b"] = 2
        object["c"] = 3
        object["b"] = "two"
        #expect(object.keys == ["a", "b", "c"])
        #expect(object["b"] == "two")
        #expect(object.count == 3)
        object["a"] = nil
        #expect(object.keys == ["b", "c"])
        #expect(object["a"] == nil)
        #expect(object.removeValue(forKey: "c") == 3)
        #expect(object.removeValue(forKey: "zzz") == nil)
        #expect(object.keys == ["b"])
        #expect(object.contains(key: "b"))
        #expect(!object.contains(key: "c"))
        #expect(object.values == ["two"])
    }

    @Test func initializersAndSequence() {
        let object = JSONObject([("x", 1), ("y", true), ("x", 3)])
        #expect(object.keys == ["x", "y"])
        #expect(object["x"] == 3)
        let literal: JSONObject = ["op": "reply", "id": 9]
        var seen: [String] = []
        for (key, value) in literal {
            seen.append("\(key)=\(value)")
        }
        #expect(seen == [#"op="reply""#, "id=9"])
        #expect(literal.map(\.key) == ["op", "id"])
        #expect(literal.description == #"{"op":"reply","id":9}"#)
    }

    @Test func largeObjectMutation() {
        var object = JSONObject()
        for k in 0..<100 { object["k\(k)"] = .number(JSONNumber(k)) }
        #expect(object.count == 100)
        #expect(object["k57"] == 57)
        object["k57"] = nil
        #expect(object["k57"] == nil)
        #expect(object["k58"] == 58)
        #expect(object.count == 99)
        object["k3"] = "replaced"
        #expect(object.keys[3] == "k3")
        #expect(object["k3"] == "replaced")
        for k in 0..<95 { object["k\(k)"] = nil }
        #expect(object.keys == ["k95", "k96", "k97", "k98", "k99"])
        #expect(object["k99"] == 99)
        object["new"] = nil
        #expect(object.count == 5)
    }

    @Test func equalityIgnoresOrder() {
        let a: JSONObject = ["x": 1, "y": [1, 2], "z": ["n": nil]]
        let b: JSONObject = ["z": ["n": nil], "x": 1, "y": [1, 2]]
        let c: JSONObject = ["x": 1, "y": [2, 1], "z": ["n": nil]]
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(a != c)
        #expect(a != ["x": 1, "y": [1, 2]])
        #expect(Set<JSONValue>([.object(a), .object(b), .object(c)]).count == 2)
        // Large objects too.
        var big1 = JSONObject()
        var big2 = JSONObject()
        for k in 0..<40 { big1["k\(k)"] = .number(JSONNumber(k)) }
        for k in (0..<40).reversed() { big2["k\(k)"] = .number(JSONNumber(k)) }
        #expect(big1 == big2)
        #expect(big1.hashValue == big2.hashValue)
    }

    @Test func valueAccessors() {
        let value: JSONValue = ["s": "text", "n": 5, "f": 2.5, "b": false, "z": nil, "a": [1], "o": ["k": "v"]]
        #expect(value["s"]?.stringValue == "text")
        #expect(value["n"]?.numberValue == JSONNumber(5))
        #expect(value["n"]?.int64Value == 5)
        #expect(value["f"]?.doubleValue == 2.5)
        #expect(value["f"]?.int64Value == nil)
        #expect(value["b"]?.boolValue == false)
        #expect(value["z"]?.isNull == true)
        #expect(value["a"]?.arrayValue == [1])
        #expect(value["o"]?.objectValue == ["k": "v"])
        #expect(value["o"]?["k"] == "v")
        // Wrong kinds give nil.
        #expect(value["s"]?.numberValue == nil)
        #expect(value["n"]?.stringValue == nil)
        #expect(value["b"]?.isNull == false)
        #expect(value.arrayValue == nil)
        #expect(value["s"]?["k"] == nil)
        #expect(JSONValue.string("x")["k"] == nil)
        #expect(JSONValue.null.objectValue == nil)
        let id = 17
        let interpolated: JSONValue = "id-\(id)"
        #expect(interpolated == .string("id-17"))
        #expect(value.description == value.jsonString)
    }
}

// MARK: - Writer

@Suite struct JSONWriterTests {
    @Test func escapesEveryControlCharacter() throws {
        let named: [UInt8: String] = [0x08: #"\b"#, 0x09: #"\t"#, 0x0A: #"\n"#, 0x0C: #"\f"#, 0x0D: #"\r"#]
        let hex = Array("0123456789abcdef")
        for c in UInt8(0)..<0x20 {
            let expected = named[c] ?? "\\u00\(hex[Int(c >> 4)])\(hex[Int(c & 0xF)])"
            var writer = JSONWriter()
            writer.writeString("a" + String(UnicodeScalar(c)) + "b")
            #expect(string(writer.bytes) == "\"a\(expected)b\"", "control \(c)")
            // And it parses back.
            #expect(try parse(string(writer.bytes)) == .string("a" + String(UnicodeScalar(c)) + "b"))
        }
    }

    @Test func escapingRules() throws {
        #expect(JSONValue.string(#"say "hi" \ bye"#).jsonString == #""say \"hi\" \\ bye""#)
        #expect(JSONValue.string("a/b</script>").jsonString == #""a/b</script>""#)
        #expect(JSONValue.string("héllo 日本 😀 \u{7F} \u{2028}").jsonString == "\"héllo 日本 😀 \u{7F} \u{2028}\"")
        #expect(JSONValue.string("").jsonString == #""""#)
        #expect(JSONValue.string("\u{0}\u{0}").jsonString == #""\u0000\u0000""#)
        #expect(JSONValue.string("\"").jsonString == #""\"""#)
        #expect(JSONValue.string("\r\n").jsonString == #""\r\n""#)
        #expect(JSONValue.string("\u{1B}[0m").jsonString == #""\u001b[0m""#)
        let long = String(repeating: "abc\"def\\", count: 1000)
        #expect(try parse(JSONValue.string(long).jsonString) == .string(long))
    }

    @Test func valuesAndOrder() {
        let value: JSONValue = [
            "z": nil, "a": true, "m": false, "n": -3, "f": 0.5,
            "arr": [1, "x", [], [:], [nil]], "o": ["inner": ["deep": "yes"]],
        ]
        #expect(value.jsonString == #"{"z":null,"a":true,"m":false,"n":-3,"f":0.5,"arr":[1,"x",[],{},[null]],"o":{"inner":{"deep":"yes"}}}"#)
        #expect(JSONValue.array([]).jsonString == "[]")
        #expect(JSONValue.object(JSONObject()).jsonString == "{}")
        #expect(JSONValue.null.serialized() == Array("null".utf8))
        // Number text is written verbatim.
        let parsed = try? parse(#"[1.50, 1E+2, -0, 0.0000001, 123456789012345678901234567890]"#)
        #expect(parsed?.jsonString == "[1.50,1E+2,-0,0.0000001,123456789012345678901234567890]")
    }

    @Test func handBuiltFrames() throws {
        var writer = JSONWriter(reservingCapacity: 64)
        writer.writeRaw("{\"op\":\"reply\",\"id\":")
        writer.writeInt(Int64(42))
        writer.writeRaw(",\"user\":")
        writer.writeString("al\"ice")
        writer.writeRaw(",\"n\":[")
        writer.writeInt(UInt64.max)
        writer.writeRaw(",")
        writer.writeInt(-7)
        writer.writeRaw(",")
        writer.writeNumber(JSONNumber(text: "1.5e3")!)
        writer.writeRaw(",")
        writer.writeBool(true)
        writer.writeRaw(",")
        writer.writeNull()
        writer.writeRaw("],\"data\":")
        writer.write(["k": [1, 2]])
        writer.writeRaw(String("}"))
        let text = string(writer.bytes)
        #expect(text == #"{"op":"reply","id":42,"user":"al\"ice","n":[18446744073709551615,-7,1.5e3,true,null],"data":{"k":[1,2]}}"#)
        let value = try parse(text)
        #expect(value["user"] == "al\"ice")
        #expect(value["n"]?[0]?.numberValue?.uint64 == UInt64.max)
        writer.reset()
        #expect(writer.bytes.isEmpty)
        writer.writeInt(0)
        #expect(string(writer.bytes) == "0")
    }

    @Test(arguments: [Int64.min, Int64.min + 1, -1_000_000, -10, -9, -1, 0, 1, 9, 10, 99, 100, 12345, Int64.max - 1, Int64.max])
    func writeInt(value: Int64) {
        var writer = JSONWriter()
        writer.writeInt(value)
        #expect(string(writer.bytes) == String(value))
    }

    @Test(arguments: [UInt64(0), 7, 10, 9_999_999_999, UInt64(Int64.max) + 1, UInt64.max])
    func writeUInt(value: UInt64) {
        var writer = JSONWriter()
        writer.writeInt(value)
        #expect(string(writer.bytes) == String(value))
    }
}

// MARK: - Round trips

@Suite struct JSONRoundTripTests {
    @Test func fixedDocuments() throws {
        let documents = [
            "null", "true", "false", "0", "-1.25e-7", #""""#, "[]", "{}",
            #"{"op":"publish","topic":"room/42","payload":{"text":"héllo \"world\"\n","n":[1,2.5,-3e10,null,true]}}"#,
            #"[{"a":[{"b":[{"c":{}}]}]}]"#,
            #"["\u0000\u001f\b\f\n\r\t\\\"","😀"]"#,
        ]
        for document in documents {
            let value = try parse(document)
            let bytes = value.serialized()
            #expect(try JSONParser.parse(bytes) == value)
            #expect(value.serialized() == bytes)
        }
        // Formatting whitespace disappears, escapes are normalized.
        #expect(try parse(" [ 1 , { \"a\" : \"\\/\\u0041\" } ] ").jsonString == #"[1,{"a":"/A"}]"#)
    }

    @Test func generatedValues() throws {
        var rng = SplitMix64(state: 0x5EED_1234_ABCD_0001)
        var checked = 0
        for _ in 0..<3000 {
            let value = randomValue(&rng, depth: 0)
            let bytes = value.serialized()
            let parsed = try JSONParser.parse(bytes)
            #expect(parsed == value)
            // Byte-identical re-serialization (order and number text preserved).
            #expect(parsed.serialized() == bytes)
            checked += 1
        }
        #expect(checked == 3000)
    }

    private func randomValue(_ rng: inout SplitMix64, depth: Int) -> JSONValue {
        let leafOnly = depth >= 5
        switch Int.random(in: 0..<(leafOnly ? 5 : 8), using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return .number(randomNumber(&rng))
        case 3, 4: return .string(randomString(&rng))
        case 5:
            let count = Int.random(in: 0..<6, using: &rng)
            return .array((0..<count).map { _ in randomValue(&rng, depth: depth + 1) })
        default:
            var object = JSONObject()
            // Occasionally large enough to use the key index.
            let count = Int.random(in: 0..<(Int.random(in: 0..<10, using: &rng) == 0 ? 30 : 6), using: &rng)
            for _ in 0..<count {
                object[randomString(&rng)] = randomValue(&rng, depth: depth + 1)
            }
            return .object(object)
        }
    }

    private func randomNumber(_ rng: inout SplitMix64) -> JSONNumber {
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: return JSONNumber(Int64(bitPattern: rng.next()))
        case 1: return JSONNumber(rng.next())
        case 2: return JSONNumber(Int.random(in: -1000...1000, using: &rng))
        case 3:
            let double = Double(bitPattern: rng.next())
            return JSONNumber(double) ?? JSONNumber(0)
        case 4: return JSONNumber(Double.random(in: -1e6...1e6, using: &rng))!
        default:
            // Arbitrary valid number text, including forms the initializers never produce.
            var text = Bool.random(using: &rng) ? "-" : ""
            let intDigits = Int.random(in: 1...30, using: &rng)
            if intDigits == 1 || Bool.random(using: &rng) && intDigits < 3 {
                text += String(Int.random(in: 0...9, using: &rng))
            } else {
                text += String(Int.random(in: 1...9, using: &rng))
                for _ in 1..<intDigits { text += String(Int.random(in: 0...9, using: &rng)) }
            }
            if Bool.random(using: &rng) {
                text += "."
                for _ in 0..<Int.random(in: 1...8, using: &rng) { text += String(Int.random(in: 0...9, using: &rng)) }
            }
            if Bool.random(using: &rng) {
                text += ["e", "E"].randomElement(using: &rng)! + ["", "+", "-"].randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...3, using: &rng) { text += String(Int.random(in: 0...9, using: &rng)) }
            }
            return JSONNumber(text: text)!
        }
    }

    private func randomString(_ rng: inout SplitMix64) -> String {
        let alphabet: [Unicode.Scalar] = [
            "a", "b", "z", "A", "0", " ", "/", "\"", "\\", "\u{0}", "\u{1}", "\u{8}", "\t", "\n", "\u{C}", "\r",
            "\u{1F}", "\u{7F}", "é", "ß", "\u{7FF}", "\u{800}", "€", "日", "\u{FFFD}", "\u{FFFF}", "😀", "\u{10FFFF}",
            "\u{2028}", "\u{E000}", "\u{D7FF}",
        ]
        var scalars = String.UnicodeScalarView()
        let length = Int.random(in: 0..<12, using: &rng)
        for _ in 0..<length {
            if Int.random(in: 0..<3, using: &rng) == 0 {
                scalars.append(alphabet.randomElement(using: &rng)!)
            } else {
                scalars.append(Unicode.Scalar(UInt8.random(in: 0x20..<0x7F, using: &rng)))
            }
        }
        return String(scalars)
    }
}
