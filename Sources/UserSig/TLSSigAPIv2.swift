import Crypto
import Foundation

/// The decoded fields of a UserSig.
public struct UserSigTicket: Sendable, Hashable {
    public var identifier: String
    public var sdkAppID: UInt64
    /// `TLS.time`, unix seconds.
    public var time: Int64
    /// `TLS.expire`, seconds of validity.
    public var expire: Int64
    /// Decoded bytes of `TLS.userbuf`, if present.
    public var userbuf: [UInt8]?

    public init(identifier: String, sdkAppID: UInt64, time: Int64, expire: Int64, userbuf: [UInt8]? = nil) {
        self.identifier = identifier
        self.sdkAppID = sdkAppID
        self.time = time
        self.expire = expire
        self.userbuf = userbuf
    }

    /// `time + expire` in unix seconds (saturating, so absurd field values cannot trap).
    public var expiresAt: Int64 {
        let (sum, overflow) = time.addingReportingOverflow(expire)
        if overflow { return expire > 0 ? .max : .min }
        return sum
    }
}

/// An app's secret key, with the HMAC-SHA256 inner and outer states precomputed once.
///
/// `@unchecked Sendable`: the stored hash states are copy-on-write values that are never mutated in
/// place (each use copies them into a local, and the first `update` of that copy makes a private
/// context), so sharing across threads only ever reads them.
public struct UserSigKey: @unchecked Sendable {
    private let inner: SHA256
    private let outer: SHA256

    public init(secret: String) {
        var block = Array(secret.utf8)
        if block.count > SHA256.blockByteCount {
            block = Array(SHA256.hash(data: block))
        }
        block.append(contentsOf: repeatElement(0, count: SHA256.blockByteCount - block.count))
        var inner = SHA256()
        inner.update(data: block.map { $0 ^ 0x36 })
        var outer = SHA256()
        outer.update(data: block.map { $0 ^ 0x5C })
        self.inner = inner
        self.outer = outer
    }

    /// HMAC-SHA256 over the TLSSigAPIv2 content lines, streamed (no content string is built).
    func mac(sdkAppID: UInt64, identifier: String, time: Int64, expire: Int64, userbufBase64: String?) -> SHA256Digest {
        var hash = inner
        hash.feed("TLS.identifier:")
        hash.feed(identifier)
        hash.feed("\nTLS.sdkappid:")
        hash.feed(String(sdkAppID))
        hash.feed("\nTLS.time:")
        hash.feed(String(time))
        hash.feed("\nTLS.expire:")
        hash.feed(String(expire))
        hash.feed("\n")
        if let userbufBase64 {
            hash.feed("TLS.userbuf:")
            hash.feed(userbufBase64)
            hash.feed("\n")
        }
        let innerDigest = hash.finalize()
        var outerHash = outer
        innerDigest.withUnsafeBytes { outerHash.update(bufferPointer: $0) }
        return outerHash.finalize()
    }

    /// The base64 text of the MAC, as ASCII bytes.
    func signatureBytes(sdkAppID: UInt64, identifier: String, time: Int64, expire: Int64, userbufBase64: String?) -> [UInt8] {
        mac(sdkAppID: sdkAppID, identifier: identifier, time: time, expire: expire, userbufBase64: userbufBase64)
            .withUnsafeBytes { Base64.encode($0) }
    }
}

extension SHA256 {
    fileprivate mutating func feed(_ text: String) {
        var text = text
        text.withUTF8 { update(bufferPointer: UnsafeRawBufferPointer($0)) }
    }
}

/// Tencent TLSSigAPIv2 UserSig: issue (byte-compatible with Tencent's Python library) and verify.
public enum TLSSigAPIv2 {
    /// Inputs longer than this many UTF-8 bytes are rejected as malformed before decoding.
    public static let maxUserSigLength = 24 * 1024
    /// Cap on the inflated JSON size; anything larger is rejected as malformed (zip bombs).
    public static let maxInflatedSize = 16 * 1024

    /// Issues a UserSig exactly as Tencent's `TLSSigAPIv2.py` does (same JSON bytes, same zlib
    /// stream at the same level). `compressionLevel` is 0–9 (-1 means zlib's default, 6); values
    /// outside are clamped. Sigs whose JSON exceeds `maxInflatedSize` will not pass `verify`.
    public static func issue(
        sdkAppID: UInt64, key: UserSigKey, identifier: String, expire: Int64 = 180 * 86400,
        userbuf: [UInt8]? = nil, time: Int64, compressionLevel: Int32 = 6
    ) -> String {
        let userbufBase64 = userbuf.map { String(decoding: Base64.encode($0), as: UTF8.self) }
        let sig = signature(sdkAppID: sdkAppID, key: key, identifier: identifier, time: time, expire: expire,
                            userbufBase64: userbufBase64)
        var json = PythonJSONWriter(capacity: 192 + identifier.utf8.count * 2 + (userbufBase64?.utf8.count ?? 0))
        json.add("TLS.ver", string: "2.0")
        json.add("TLS.identifier", string: identifier)
        json.add("TLS.sdkappid", number: sdkAppID)
        json.add("TLS.expire", number: expire)
        json.add("TLS.time", number: time)
        if let userbufBase64 {
            json.add("TLS.userbuf", string: userbufBase64)
        }
        json.add("TLS.sig", string: sig)
        let compressed = Zlib.compress(json.finish(), level: compressionLevel)
        return String(decoding: Base64.encode(compressed, tencent: true), as: UTF8.self)
    }

    /// Full check in the order: empty (70002), malformed (70003), sdkappid (70014),
    /// identifier (70013), signature (70009), expiry (70001). `now` in unix seconds;
    /// the sig is valid up to and including `now == time + expire`.
    public static func verify(
        _ userSig: String, sdkAppID: UInt64, identifier: String, key: UserSigKey, now: Int64
    ) throws(UserSigError) -> UserSigTicket {
        let (payload, userbuf) = try decodePayload(userSig)
        guard payload.sdkAppID == sdkAppID else { throw .sdkAppIDMismatch }
        // Byte comparison: Swift's String == would equate canonically-equivalent but distinct identifiers.
        guard payload.identifier.utf8.elementsEqual(identifier.utf8) else { throw .identifierMismatch }
        let expected = key.signatureBytes(sdkAppID: payload.sdkAppID, identifier: payload.identifier,
                                          time: payload.time, expire: payload.expire,
                                          userbufBase64: payload.userbuf)
        guard constantTimeEquals(payload.sig, expected) else { throw .signatureMismatch }
        let ticket = UserSigTicket(identifier: payload.identifier, sdkAppID: payload.sdkAppID,
                                   time: payload.time, expire: payload.expire, userbuf: userbuf)
        guard now <= ticket.expiresAt else { throw .expired }
        return ticket
    }

    /// Decode only (no key, no expiry check): for tools and for reading TLS.time.
    /// Throws `.empty` or `.malformed`.
    public static func decode(_ userSig: String) throws(UserSigError) -> (ticket: UserSigTicket, signature: String) {
        let (payload, userbuf) = try decodePayload(userSig)
        let ticket = UserSigTicket(identifier: payload.identifier, sdkAppID: payload.sdkAppID,
                                   time: payload.time, expire: payload.expire, userbuf: userbuf)
        return (ticket, payload.sig)
    }

    /// The TLS.sig value for these fields (base64 of the HMAC), exposed for tests.
    public static func signature(
        sdkAppID: UInt64, key: UserSigKey, identifier: String, time: Int64, expire: Int64, userbufBase64: String?
    ) -> String {
        String(decoding: key.signatureBytes(sdkAppID: sdkAppID, identifier: identifier, time: time, expire: expire,
                                            userbufBase64: userbufBase64),
               as: UTF8.self)
    }

    // MARK: - Internals

    private static let jsonDecoder = JSONDecoder()

    private struct Payload: Decodable {
        var version: String
        var identifier: String
        var sdkAppID: UInt64
        var time: Int64
        var expire: Int64
        var userbuf: String?
        var sig: String

        enum CodingKeys: String, CodingKey {
            case version = "TLS.ver"
            case identifier = "TLS.identifier"
            case sdkAppID = "TLS.sdkappid"
            case time = "TLS.time"
            case expire = "TLS.expire"
            case userbuf = "TLS.userbuf"
            case sig = "TLS.sig"
        }
    }

    /// Steps 1–3 of the spec; also decodes TLS.userbuf (invalid base64 there is malformed too).
    private static func decodePayload(_ userSig: String) throws(UserSigError) -> (Payload, [UInt8]?) {
        var userSig = userSig
        let count = userSig.utf8.count
        guard count != 0 else { throw .empty }
        guard count <= maxUserSigLength,
              let compressed = userSig.withUTF8({ Base64.decode($0, tencent: true) }),
              let json = Zlib.inflate(compressed, limit: maxInflatedSize)
        else { throw .malformed }
        let payload: Payload
        do {
            payload = try jsonDecoder.decode(Payload.self, from: json)
        } catch {
            throw .malformed
        }
        guard payload.version == "2.0" else { throw .malformed }
        var userbuf: [UInt8]? = nil
        if let text = payload.userbuf {
            guard let bytes = Base64.decode(text, tencent: false) else { throw .malformed }
            userbuf = bytes
        }
        return (payload, userbuf)
    }

    private static func constantTimeEquals(_ provided: String, _ expected: [UInt8]) -> Bool {
        let provided = provided.utf8
        guard provided.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(provided, expected) {
            difference |= a ^ b
        }
        return difference == 0
    }
}
