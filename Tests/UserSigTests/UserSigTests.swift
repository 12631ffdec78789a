import Foundation
import Testing
@testable import UserSig

// MARK: - Fixtures

let vectorAppID: UInt64 = 1_400_000_000
let vectorSecret = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
let vectorKey = UserSigKey(secret: vectorSecret)
let vectorTime: Int64 = 1_700_000_000

/// Produced by Tencent's Python library (`tls-sig-api-v2`, TLSSigAPIv2.py) with `time.time`
/// monkeypatched to `time + 0.75`.
struct PythonFixture: Sendable, CustomTestStringConvertible {
    var sdkAppID: UInt64
    var secret: String
    var identifier: String
    var expire: Int64
    var time: Int64
    var userbuf: [UInt8]?
    var sig: String

    var testDescription: String { "\(identifier) key#\(secret.utf8.count) userbuf:\(userbuf.map { "\($0.count)" } ?? "nil")" }
}

let pythonFixtures: [PythonFixture] = [
    .init(sdkAppID: 1_400_000_000, secret: vectorSecret, identifier: "xiaojun", expire: 86400, time: 1_700_000_000, userbuf: nil,
          sig: "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpQJlLMxM4IIlmbkgIUNzNMXFmekg44P93EzccsOcA0qT8yOKnfwLksLcjNPcnNNMzb0Ccg1Sq6IMs1LDPH1ywpJtlWoBk68y0A__"),
    .init(sdkAppID: 1_400_000_000, secret: vectorSecret, identifier: "xiaojun", expire: 86400 * 180, time: 1_700_000_000, userbuf: Array("abc".utf8),
          sig: "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YFFzNPWlxalFSaVpIFsiw72y4FZkpoOEArNCjAwMKwKyI7L1E30NU7UrDcoSs6OSDLyNMgOK3EpTtbUNik0rzZLcfG2VagHdkjl6"),
    .init(sdkAppID: 1_400_000_001, secret: vectorSecret, identifier: "user_42", expire: 3600, time: 1_712_345_678, userbuf: nil,
          sig: "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkSotTi*JNjGCSxSnZiQUFmSlAKUMTAwgwhMqlVhRkFqUCZYzNDAygYiWZuSARQ3NDI2MTUzNzC5g5mekg04vy3I1ck0pcnErMgotKqxyD8sz9HfMKwsy8LXwtIoIywsPLU7PT9H3z3CxslWoBOqsybQ__"),
    // Non-ASCII, quote, slash and backslash in the identifier (Python escapes with \uXXXX), binary userbuf.
    .init(sdkAppID: 1_400_000_001, secret: vectorSecret, identifier: "用户/é \"q\"\\x", expire: 600, time: 1_712_345_678,
          userbuf: [0x00, 0xFF] + Array(" room:1001".utf8),
          sig: "eJxFjd0KgjAAhV9Fdh26zZ9p0EVokNCPZQTFblKnLdHMnIyid0-L6Fx*3zmcJ9gtQrVlNRgrAKsQjJQP4QkrG57yr6CCmNimwsI60aiAkDkKBTcKKJW-xT3JT1XFk66PDPgNGhyTFa9ZZywIB9TwogeIIKwbpkXsgYs7qyOR9q-TwM7iwmmj3VUuven-iWe9Drb7x8x3fSYP4XXjH1HsYeKWKc6zeXhaB5eVJpwQnk3pT8DrDXljQho_"),
    // Empty (but present) userbuf.
    .init(sdkAppID: 20_000_000, secret: "short-key", identifier: "alice", expire: 15_552_000, time: 1_600_000_000, userbuf: [],
          sig: "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkEnMyk1NhUsUp2YkFBZkpQAkjAwiAyqRWFGQWpQLFDU1NTY0Q4iWZuWBRMwNU9aXFqUVJpWkgG*CGZ6aDuKEW-ubBmQHJmdp*-hkFRYXJjnm*ERb6pekGySEBxu7hji5**f5R5eVGVSa2SrUA5lg3NA__"),
    // HMAC key lengths: empty, 1 byte, 65 bytes (> block size, hashed first), long non-ASCII.
    .init(sdkAppID: 1_400_000_000, secret: "", identifier: "bob", expire: 86400, time: 1_700_000_000, userbuf: Array("hi".utf8),
          sig: "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkkvKTYBLFKdmJBQWZKUBhQxMDKIDKpVYUZBalAmUszEzggiWZuSAhQ3M0xaXFqUVJpWkg4xPds23h5memg4QcAwtNwgsc-cvzw5IMXdxNfFJCIi2zswKNzQwrQpwy3Su9coudcvLSyj19bZVqAQasN8Y_"),
    .init(sdkAppID: 1_400_000_000, secret: "k", identifier: "bob", expire: 86400, time: 1_700_000_000, userbuf: Array("hi".utf8),
          sig: "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkkvKTYBLFKdmJBQWZKUBhQxMDKIDKpVYUZBalAmUszEzggiWZuSAhQ3M0xaXFqUVJpWkg4xPds23h5memg4T0fdJDLLXLDKtcw4xd9C0j01yKik1cQ8ON-AxcQpIcnapKPCONs5NDA1wtbJVqAeoZNoY_"),
    .init(sdkAppID: 1_400_000_000, secret: String(repeating: "x", count: 65), identifier: "bob", expire: 86400, time: 1_700_000_000,
          userbuf: Array("hi".utf8),
          sig: "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkkvKTYBLFKdmJBQWZKUBhQxMDKIDKpVYUZBalAmUszEzggiWZuSAhQ3M0xaXFqUVJpWkg4xPds23h5memg4RyKkzKnApSnUPdfPPciqKqtAsDKy2iIn28q7zyiistLZyNsyMzMp3zPX1NbJVqASBkOCw_"),
    .init(sdkAppID: 1_400_000_000, secret: "clé-secrète-" + String(repeating: "z", count: 90), identifier: "bob", expire: 86400,
          time: 1_700_000_000, userbuf: Array("hi".utf8),
          sig: "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkkvKTYBLFKdmJBQWZKUBhQxMDKIDKpVYUZBalAmUszEzggiWZuSAhQ3M0xaXFqUVJpWkg4xPds23h5memg4TKfXIyjALMvILcPMxSCytC81J9ggs9QwM9jQKyfbzLAt3z9U28Swp8jJOSbZVqAQ1RN6g_"),
]

/// Builds a UserSig around arbitrary JSON text (for other libraries' encodings and malformed payloads).
func wrap(json: String, level: Int32 = 6) -> String {
    wrap(bytes: Array(json.utf8), level: level)
}

func wrap(bytes: [UInt8], level: Int32 = 6) -> String {
    String(decoding: Base64.encode(Zlib.compress(bytes, level: level), tencent: true), as: UTF8.self)
}

func verifyError(
    _ sig: String, sdkAppID: UInt64 = vectorAppID, identifier: String = "xiaojun", key: UserSigKey = vectorKey,
    now: Int64 = vectorTime
) -> UserSigError? {
    do {
        _ = try TLSSigAPIv2.verify(sig, sdkAppID: sdkAppID, identifier: identifier, key: key, now: now)
        return nil
    } catch {
        return error
    }
}

/// Deterministic generator for the fuzz-ish tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: - Test vector and Python compatibility

@Test func testVectorSignature() {
    let sig = TLSSigAPIv2.signature(sdkAppID: vectorAppID, key: vectorKey, identifier: "xiaojun", time: vectorTime,
                                    expire: 86400, userbufBase64: nil)
    #expect(sig == "SNF4FmVCPucoXsBOpbVF3fFCf57JPm0ezZ1jeVILlVc=")
}

@Test func testVectorIssuedSigCarriesVectorSignature() throws {
    let userSig = TLSSigAPIv2.issue(sdkAppID: vectorAppID, key: vectorKey, identifier: "xiaojun", expire: 86400, time: vectorTime)
    let decoded = try TLSSigAPIv2.decode(userSig)
    #expect(decoded.signature == "SNF4FmVCPucoXsBOpbVF3fFCf57JPm0ezZ1jeVILlVc=")
    #expect(decoded.ticket == UserSigTicket(identifier: "xiaojun", sdkAppID: vectorAppID, time: vectorTime, expire: 86400))
    #expect(decoded.ticket.expiresAt == vectorTime + 86400)
}

@Test(arguments: pythonFixtures)
func pythonSigsVerify(_ fixture: PythonFixture) throws {
    let key = UserSigKey(secret: fixture.secret)
    let ticket = try TLSSigAPIv2.verify(fixture.sig, sdkAppID: fixture.sdkAppID, identifier: fixture.identifier, key: key,
                                        now: fixture.time)
    #expect(ticket.identifier == fixture.identifier)
    #expect(ticket.sdkAppID == fixture.sdkAppID)
    #expect(ticket.time == fixture.time)
    #expect(ticket.expire == fixture.expire)
    #expect(ticket.userbuf == fixture.userbuf)
    #expect(verifyError(fixture.sig, sdkAppID: fixture.sdkAppID, identifier: fixture.identifier,
                        key: UserSigKey(secret: fixture.secret + "!"), now: fixture.time) == .signatureMismatch)
}

@Test(arguments: pythonFixtures)
func issueIsByteIdenticalToPython(_ fixture: PythonFixture) {
    let sig = TLSSigAPIv2.issue(sdkAppID: fixture.sdkAppID, key: UserSigKey(secret: fixture.secret),
                                identifier: fixture.identifier, expire: fixture.expire, userbuf: fixture.userbuf,
                                time: fixture.time)
    #expect(sig == fixture.sig)
}

@Test func pythonStyleJSONEscaping() {
    var writer = PythonJSONWriter(capacity: 64)
    writer.add("k", string: "a\"b\\c/d\n\r\t\u{8}\u{C}\u{1}\u{7F}é😀")
    writer.add("n", number: Int64(-5))
    let json = String(decoding: writer.finish(), as: UTF8.self)
    // json.dumps({"k": "a\"b\\c/d\n\r\t\b\f\x01\x7fé😀", "n": -5})
    #expect(json == #"{"k": "a\"b\\c/d\n\r\t\b\f\u0001\u007f\u00e9\ud83d\ude00", "n": -5}"#)
}

// MARK: - Round trips

@Test(arguments: Array(Int32(0)...9), [nil, [], Array("room=42&role=admin".utf8), Array(0...255).map(UInt8.init)] as [[UInt8]?])
func roundTripAtEveryLevel(level: Int32, userbuf: [UInt8]?) throws {
    let key = UserSigKey(secret: "secret-\(level)")
    let sig = TLSSigAPIv2.issue(sdkAppID: 1_400_000_123, key: key, identifier: "user-\(level)", expire: 3600, userbuf: userbuf,
                                time: vectorTime, compressionLevel: level)
    #expect(!sig.contains("+") && !sig.contains("/") && !sig.contains("="))
    let ticket = try TLSSigAPIv2.verify(sig, sdkAppID: 1_400_000_123, identifier: "user-\(level)", key: key, now: vectorTime + 10)
    #expect(ticket == UserSigTicket(identifier: "user-\(level)", sdkAppID: 1_400_000_123, time: vectorTime, expire: 3600,
                                    userbuf: userbuf))
}

@Test func defaultExpireAndNonASCIIIdentifier() throws {
    let sig = TLSSigAPIv2.issue(sdkAppID: 1, key: vectorKey, identifier: "ユーザー👩‍💻", time: 0)
    let ticket = try TLSSigAPIv2.verify(sig, sdkAppID: 1, identifier: "ユーザー👩‍💻", key: vectorKey, now: 180 * 86400)
    #expect(ticket.expire == 180 * 86400)
}

@Test func standardBase64AlphabetAndMissingPaddingAccepted() throws {
    let sig = pythonFixtures[0].sig
    #expect(sig.hasSuffix("__"))
    let standard = String(sig.map { $0 == "*" ? "+" : $0 == "-" ? "/" : $0 == "_" ? "=" : $0 })
    _ = try TLSSigAPIv2.verify(standard, sdkAppID: vectorAppID, identifier: "xiaojun", key: vectorKey, now: vectorTime)
    _ = try TLSSigAPIv2.verify(String(sig.dropLast(2)), sdkAppID: vectorAppID, identifier: "xiaojun", key: vectorKey, now: vectorTime)
    _ = try TLSSigAPIv2.verify(String(sig.dropLast(1)), sdkAppID: vectorAppID, identifier: "xiaojun", key: vectorKey, now: vectorTime)
    #expect(verifyError(sig + "_") == .malformed)  // excess padding
    #expect(verifyError(sig + "A") == .malformed)  // data after padding
}

// MARK: - Other encoders' JSON

@Test func phpStyleEscapedSlashesVerify() throws {
    let userbuf: [UInt8] = [0xFF, 0xFF, 0xFE, 0x3F]  // base64 "///+Pw=="
    let userbufBase64 = String(decoding: Base64.encode(userbuf), as: UTF8.self)
    #expect(userbufBase64.contains("/"))
    let identifier = "a/b"
    let sig = TLSSigAPIv2.signature(sdkAppID: vectorAppID, key: vectorKey, identifier: identifier, time: vectorTime,
                                    expire: 86400, userbufBase64: userbufBase64)
    func php(_ s: String) -> String { s.replacingOccurrences(of: "/", with: "\\/") }
    // PHP's json_encode: compact, escapes "/", and its own key order.
    let json = #"{"TLS.ver":"2.0","TLS.identifier":"\#(php(identifier))","TLS.sdkappid":1400000000,"TLS.expire":86400,"#
        + #""TLS.time":1700000000,"TLS.userbuf":"\#(php(userbufBase64))","TLS.sig":"\#(php(sig))"}"#
    #expect(json.contains(#"\/"#))
    for level: Int32 in [0, 9] {
        let ticket = try TLSSigAPIv2.verify(wrap(json: json, level: level), sdkAppID: vectorAppID, identifier: identifier,
                                            key: vectorKey, now: vectorTime)
        #expect(ticket.userbuf == userbuf)
    }
}

@Test func otherKeyOrderWhitespaceAndExtraFieldsVerify() throws {
    let sig = TLSSigAPIv2.signature(sdkAppID: vectorAppID, key: vectorKey, identifier: "xiaojun", time: vectorTime,
                                    expire: 86400, userbufBase64: nil)
    let json = "\n { \"TLS.sig\" : \"\(sig)\", \"TLS.time\":1700000000,\"extra\":[1,{\"x\":null}],\t\"TLS.expire\":86400,"
        + "\"TLS.sdkappid\":1400000000,\"TLS.identifier\":\"xiao\\u006aun\",\"TLS.ver\":\"2.0\"}  "
    _ = try TLSSigAPIv2.verify(wrap(json: json), sdkAppID: vectorAppID, identifier: "xiaojun", key: vectorKey, now: vectorTime)
}

// MARK: - Errors and their order

@Test func errorCodesAndDescriptions() {
    let all: [(UserSigError, Int)] = [
        (.empty, 70002), (.malformed, 70003), (.sdkAppIDMismatch, 70014),
        (.identifierMismatch, 70013), (.signatureMismatch, 70009), (.expired, 70001),
    ]
    for (error, code) in all {
        #expect(error.code == code)
        #expect(!error.reason.isEmpty)
        #expect(error.description == "\(code) \(error.reason)")
    }
    #expect(Set(all.map(\.0)).count == all.count)
    #expect(UserSigError.expired == .expired)
    #expect(UserSigError.expired != .empty)
}

@Test func errorOrder() {
    let wrongKey = UserSigKey(secret: "wrong")
    let sig = TLSSigAPIv2.issue(sdkAppID: vectorAppID, key: vectorKey, identifier: "xiaojun", expire: 60, time: vectorTime)
    let late = vectorTime + 3600
    // Empty beats everything.
    #expect(verifyError("", sdkAppID: 1, identifier: "other", key: wrongKey, now: late) == .empty)
    // Malformed beats app/user/key/expiry.
    #expect(verifyError("not a sig", sdkAppID: 1, identifier: "other", key: wrongKey, now: late) == .malformed)
    // Wrong app, wrong user, wrong key, expired: 70014.
    #expect(verifyError(sig, sdkAppID: 1, identifier: "other", key: wrongKey, now: late) == .sdkAppIDMismatch)
    // Right app; wrong user, wrong key, expired: 70013.
    #expect(verifyError(sig, identifier: "other", key: wrongKey, now: late) == .identifierMismatch)
    // Right app and user; wrong key, expired: 70009.
    #expect(verifyError(sig, key: wrongKey, now: late) == .signatureMismatch)
    // Only expired: 70001.
    #expect(verifyError(sig, now: late) == .expired)
    #expect(verifyError(sig) == nil)
}

@Test func identifierComparedByteForByte() {
    let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
    #expect(nfc == nfd)  // Swift String equality is canonical equivalence...
    let sig = TLSSigAPIv2.issue(sdkAppID: vectorAppID, key: vectorKey, identifier: nfd, time: vectorTime)
    #expect(verifyError(sig, identifier: nfd) == nil)
    #expect(verifyError(sig, identifier: nfc) == .identifierMismatch)  // ...but identifiers must match exactly.
    #expect(verifyError(sig, identifier: "Xiaojun") == .identifierMismatch)
}

@Test func tamperedFieldsFailSignature() {
    let sig = TLSSigAPIv2.signature(sdkAppID: vectorAppID, key: vectorKey, identifier: "xiaojun", time: vectorTime,
                                    expire: 86400, userbufBase64: nil)
    func json(expire: Int64, time: Int64 = vectorTime, userbuf: String? = nil, sig: String = sig) -> String {
        #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": \#(expire), "#
            + #""TLS.time": \#(time), "# + (userbuf.map { #""TLS.userbuf": "\#($0)", "# } ?? "") + #""TLS.sig": "\#(sig)"}"#
    }
    #expect(verifyError(wrap(json: json(expire: 86400))) == nil)
    #expect(verifyError(wrap(json: json(expire: 999_999_999))) == .signatureMismatch)
    #expect(verifyError(wrap(json: json(expire: 86400, time: vectorTime + 1))) == .signatureMismatch)
    #expect(verifyError(wrap(json: json(expire: 86400, userbuf: "YWJj"))) == .signatureMismatch)
    #expect(verifyError(wrap(json: json(expire: 86400, sig: String(sig.dropLast())))) == .signatureMismatch)
    #expect(verifyError(wrap(json: json(expire: 86400, sig: sig.lowercased()))) == .signatureMismatch)
    #expect(verifyError(wrap(json: json(expire: 86400, sig: ""))) == .signatureMismatch)
}

@Test func expiryBoundary() {
    let sig = TLSSigAPIv2.issue(sdkAppID: vectorAppID, key: vectorKey, identifier: "xiaojun", expire: 86400, time: vectorTime)
    #expect(verifyError(sig, now: vectorTime - 1_000_000) == nil)  // clock skew: not-yet-valid is not an error
    #expect(verifyError(sig, now: vectorTime + 86400) == nil)
    #expect(verifyError(sig, now: vectorTime + 86401) == .expired)
    let zero = TLSSigAPIv2.issue(sdkAppID: vectorAppID, key: vectorKey, identifier: "xiaojun", expire: 0, time: vectorTime)
    #expect(verifyError(zero, now: vectorTime) == nil)
    #expect(verifyError(zero, now: vectorTime + 1) == .expired)
}

@Test func extremeTimesDoNotTrap() throws {
    let forever = TLSSigAPIv2.issue(sdkAppID: vectorAppID, key: vectorKey, identifier: "xiaojun", expire: .max, time: .max)
    let ticket = try TLSSigAPIv2.verify(forever, sdkAppID: vectorAppID, identifier: "xiaojun", key: vectorKey, now: .max)
    #expect(ticket.expiresAt == .max)
    let past = TLSSigAPIv2.issue(sdkAppID: vectorAppID, key: vectorKey, identifier: "xiaojun", expire: .min, time: -1)
    #expect(verifyError(past, now: .min) == nil)  // saturates at .min
    #expect(verifyError(past, now: .min + 1) == .expired)
    #expect(UserSigTicket(identifier: "", sdkAppID: 0, time: .min, expire: -1).expiresAt == .min)
}

// MARK: - Malformed input

@Test(arguments: [
    "!!!!", "eJyr", "====", "e", "abcde", "eJ yr", "eJyr\n", "é", "\u{0}", "_", "__", "A===", "AAAA=AAA",
    "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpQJl",
])
func garbageIsMalformed(_ input: String) {
    #expect(verifyError(input) == .malformed)
    #expect(throws: UserSigError.malformed) { try TLSSigAPIv2.decode(input) }
}

@Test func emptyIsEmpty() {
    #expect(throws: UserSigError.empty) { try TLSSigAPIv2.decode("") }
}

@Test(arguments: [
    "", "null", "[]", "\"x\"", "42", "{", "{}", "{\"TLS.ver\": \"2.0\"}",
    // each field missing or of the wrong type
    #"{"TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": "x"}"#,
    #"{"TLS.ver": 2.0, "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "3.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": 7, "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": "1400000000", "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": -1, "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 99999999999999999999999, "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.time": 1700000000, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": "86400", "TLS.time": 1700000000, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": 1.5, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": true, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": 1700000000}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": 5}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.userbuf": 5, "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.userbuf": "a!b", "TLS.sig": "x"}"#,
    #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": "x"} trailing"#,
])
func badPayloadIsMalformed(_ json: String) {
    // Wrong app id and wrong user too: malformed must be reported first.
    #expect(verifyError(wrap(json: json), sdkAppID: 7, identifier: "nobody") == .malformed)
}

@Test func zlibEdgeCasesAreMalformed() throws {
    let valid = pythonFixtures[0]
    let compressed = try #require(Base64.decode(valid.sig, tencent: true))
    func sig(_ bytes: [UInt8]) -> String { String(decoding: Base64.encode(bytes, tencent: true), as: UTF8.self) }
    #expect(verifyError(sig(compressed)) == nil)
    #expect(verifyError(sig(compressed + [0])) == .malformed)  // trailing bytes after the stream
    #expect(verifyError(sig(Array(compressed.dropLast()))) == .malformed)  // truncated Adler-32
    var badChecksum = compressed
    badChecksum[badChecksum.count - 1] ^= 1
    #expect(verifyError(sig(badChecksum)) == .malformed)
    // Raw deflate / gzip framing are not RFC 1950.
    #expect(verifyError(sig(Array(compressed.dropFirst(2)))) == .malformed)
    #expect(verifyError(sig([0x1F, 0x8B, 0x08, 0x00] + compressed)) == .malformed)
    // A stream demanding a preset dictionary (FDICT set, valid header check).
    #expect(verifyError(sig([0x78, 0xBB, 0, 0, 0, 1, 0x03, 0x00])) == .malformed)
    // Valid zlib, not JSON.
    #expect(verifyError(wrap(bytes: [0xFF, 0xFE, 0x00])) == .malformed)
}

@Test func zipBombAndHugeInputsAreMalformed() {
    let sig = TLSSigAPIv2.signature(sdkAppID: vectorAppID, key: vectorKey, identifier: "xiaojun", time: vectorTime,
                                    expire: 86400, userbufBase64: nil)
    let head = #"{"TLS.ver": "2.0", "TLS.identifier": "xiaojun", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, "#
        + #""TLS.time": 1700000000, "TLS.sig": "\#(sig)"}"#
    // Just under the cap still verifies (valid JSON padded with whitespace)...
    let fits = head + String(repeating: " ", count: TLSSigAPIv2.maxInflatedSize - head.utf8.count)
    #expect(verifyError(wrap(json: fits, level: 9)) == nil)
    // ...one byte more is rejected, and so is a 10 MB bomb (a few KB compressed).
    #expect(verifyError(wrap(json: fits + " ", level: 9)) == .malformed)
    let bomb = wrap(json: head + String(repeating: " ", count: 10_000_000), level: 9)
    #expect(bomb.utf8.count < TLSSigAPIv2.maxUserSigLength)
    #expect(verifyError(bomb) == .malformed)
    // Oversized input is rejected before decoding.
    #expect(verifyError(String(repeating: "A", count: 5_000_000)) == .malformed)
    #expect(verifyError(wrap(json: head, level: 0) + String(repeating: "A", count: TLSSigAPIv2.maxUserSigLength)) == .malformed)
}

@Test(arguments: pythonFixtures.prefix(2))
func everyTruncationIsRejected(_ fixture: PythonFixture) {
    let bytes = Array(fixture.sig.utf8)
    let dataLength = bytes.count - bytes.reversed().prefix { $0 == UInt8(ascii: "_") }.count
    let key = UserSigKey(secret: fixture.secret)
    for length in 0..<bytes.count {
        let prefix = String(decoding: bytes[..<length], as: UTF8.self)
        let error = verifyError(prefix, sdkAppID: fixture.sdkAppID, identifier: fixture.identifier, key: key, now: fixture.time)
        if length == 0 {
            #expect(error == .empty)
        } else if length < dataLength {
            #expect(error == .malformed, "prefix of length \(length)")
        } else {
            #expect(error == nil, "only padding dropped, length \(length)")  // lenient about missing padding
        }
    }
}

@Test func randomMutationsNeverCrash() {
    var rng = SplitMix64(state: 0x5EED)
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-_+/= !\u{0}é".unicodeScalars)
    var outcomes: [Int: Int] = [:]
    for fixture in pythonFixtures {
        let key = UserSigKey(secret: fixture.secret)
        var scalars = Array(fixture.sig.unicodeScalars)
        for _ in 0..<300 {
            var mutated = scalars
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: mutated[Int.random(in: 0..<mutated.count, using: &rng)] = alphabet.randomElement(using: &rng)!
                case 1: mutated.insert(alphabet.randomElement(using: &rng)!, at: Int.random(in: 0...mutated.count, using: &rng))
                default: if mutated.count > 1 { mutated.remove(at: Int.random(in: 0..<mutated.count, using: &rng)) }
                }
            }
            var text = String.UnicodeScalarView()
            text.append(contentsOf: mutated)
            let error = verifyError(String(text), sdkAppID: fixture.sdkAppID, identifier: fixture.identifier, key: key,
                                    now: fixture.time)
            outcomes[error?.code ?? 0, default: 0] += 1
        }
        scalars.shuffle(using: &rng)
        #expect(verifyError(String(String.UnicodeScalarView(scalars))) != nil)
    }
    #expect(outcomes[70003, default: 0] > 0)
    #expect(Set(outcomes.keys).isSubset(of: [0, 70003, 70009, 70013, 70014]))
}

@Test func randomBytesNeverCrash() {
    var rng = SplitMix64(state: 42)
    for round in 0..<2000 {
        let count = Int.random(in: 0...300, using: &rng)
        let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
        // Random base64 (Tencent alphabet), random zlib payloads, random text.
        var inputs = [
            String(decoding: Base64.encode(bytes, tencent: true), as: UTF8.self),
            wrap(bytes: bytes, level: Int32(round % 10)),
            String(decoding: bytes, as: UTF8.self),
        ]
        // A valid zlib header followed by random data.
        inputs.append(String(decoding: Base64.encode([0x78, 0x9C] + bytes, tencent: true), as: UTF8.self))
        for input in inputs {
            let error = verifyError(input)
            #expect(error == (input.isEmpty ? .empty : .malformed))
        }
    }
}

@Test func keyIsUsableConcurrently() async throws {
    let sig = TLSSigAPIv2.issue(sdkAppID: vectorAppID, key: vectorKey, identifier: "xiaojun", time: vectorTime)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<8 {
            group.addTask {
                for _ in 0..<200 {
                    _ = try TLSSigAPIv2.verify(sig, sdkAppID: vectorAppID, identifier: "xiaojun", key: vectorKey, now: vectorTime)
                }
            }
        }
        try await group.waitForAll()
    }
}
