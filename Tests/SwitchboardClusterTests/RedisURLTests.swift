import SwitchboardCluster
import Testing

@Suite("Redis URL")
struct RedisURLTests {
    @Test("valid URLs")
    func valid() throws {
        let plain = try RedisURL("redis://localhost")
        #expect(plain == RedisURL(host: "localhost", port: 6379, database: 0, password: nil, user: nil))

        let full = try RedisURL("redis://alice:s3cret@redis.internal:6380/2")
        #expect(full.host == "redis.internal")
        #expect(full.port == 6380)
        #expect(full.database == 2)
        #expect(full.user == "alice")
        #expect(full.password == "s3cret")

        let passwordOnly = try RedisURL("redis://:p%40ss%3Aword@10.0.0.5")
        #expect(passwordOnly.user == nil)
        #expect(passwordOnly.password == "p@ss:word")
        #expect(passwordOnly.port == 6379)

        let ipv6 = try RedisURL("redis://[::1]:7000/15")
        #expect(ipv6.host == "::1")
        #expect(ipv6.port == 7000)
        #expect(ipv6.database == 15)

        #expect(try RedisURL("REDIS://h:1/").database == 0)
        #expect(try RedisURL("redis://h:65535").port == 65535)
        // A password containing '@' unencoded: the last '@' ends the credentials.
        #expect(try RedisURL("redis://:a@b@host").password == "a@b")
    }

    @Test("invalid URLs throw", arguments: [
        "", "localhost:6379", "http://localhost", "rediss://localhost", "redis://",
        "redis://:6379", "redis://host:0", "redis://host:65536", "redis://host:port",
        "redis://host:-1", "redis://host/db", "redis://host/-1", "redis://host/1/2",
        "redis://host?db=1", "redis://host#x", "redis://secret@host", "redis://user:@host",
        "redis://:%zz@host", "redis://ho st", "redis://[::1", "redis://[::1]x", "redis://a:b:c",
    ])
    func invalid(_ text: String) {
        #expect(throws: RedisURLError.self) { try RedisURL(text) }
    }

    @Test("errors and descriptions hide the password")
    func redaction() throws {
        let url = try RedisURL("redis://bob:hunter2@cache:6390/1")
        #expect(url.description == "redis://bob:***@cache:6390/1")
        #expect(!"\(url)".contains("hunter2"))
        do {
            _ = try RedisURL("redis://bob:hunter2@cache:99999")
            Issue.record("expected an error")
        } catch {
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.contains("port"))
        }
    }
}

@Suite("Redis script SHA-1")
struct RedisScriptTests {
    @Test("known SHA-1 vectors")
    func vectors() {
        #expect(RedisScript("").sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(RedisScript("abc").sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(RedisScript("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").sha1
            == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(RedisScript("The quick brown fox jumps over the lazy dog").sha1
            == "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12")
        #expect(RedisScript("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu").sha1
            == "a49b2446a02c645bf419f995b67091253a04a259")
        // The padding edge cases (55, 56, 64 bytes) and a multi-block message.
        #expect(RedisScript(String(repeating: "x", count: 55)).sha1 == "cef734ba81a024479e09eb5a75b6ddae62e6abf1")
        #expect(RedisScript(String(repeating: "x", count: 56)).sha1 == "901305367c259952f4e7af8323f480d59f81335b")
        #expect(RedisScript(String(repeating: "x", count: 64)).sha1 == "bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163")
        #expect(RedisScript(String(repeating: "x", count: 1_000)).sha1 == "c3efa690fa3fdd2e2526853eed670538ea127638")
    }
}
