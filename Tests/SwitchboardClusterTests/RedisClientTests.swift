import Foundation
import NIOCore
import SwitchboardCluster
import Testing

@Suite("Redis client against a real redis-server")
struct RedisClientTests {
    @Test("SET, GET, INCR, DEL round trips, binary and large values")
    func roundTrips() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let client = try await connectedClient(redis.url)

        #expect(try await client.send("SET", "greeting", "hello").get() == .simpleString("OK"))
        #expect(try await client.send("GET", "greeting").get().string == "hello")
        #expect(try await client.send("GET", "missing").get() == .bulkString(nil))
        #expect(try await client.send("INCR", "counter").get() == .integer(1))
        #expect(try await client.send(["INCRBY", "counter", .int(-11)]).get() == .integer(-10))
        #expect(try await client.send("GET", "counter").get().int == -10)
        #expect(try await client.send("DEL", "greeting", "counter", "missing").get() == .integer(2))
        #expect(try await client.send("EXISTS", "greeting").get() == .integer(0))

        let binary: [UInt8] = [0, 13, 10, 255, 36, 42, 13, 10]
        _ = try await client.send(["SET", .bytes(binary), .bytes(binary)]).get()
        #expect(try await client.send(["GET", .bytes(binary)]).get() == .bulkString(binary))

        let large = (0..<1_500_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        _ = try await client.send(["SET", "large", .bytes(large)]).get()
        #expect(try await client.send("GET", "large").get() == .bulkString(large))

        _ = try await client.send("RPUSH", "list", "a", "b", "c").get()
        #expect(try await client.send("LRANGE", "list", "0", "-1").get()
            == .array([.bulkString(Array("a".utf8)), .bulkString(Array("b".utf8)), .bulkString(Array("c".utf8))]))
        #expect(try await client.send("LRANGE", "nothing", "0", "-1").get() == .array([]))
        #expect(client.pendingCount == 0)
        try await client.close().get()
    }

    @Test("1,000 pipelined commands come back in order; concurrent senders are all answered")
    func pipelining() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let client = try await connectedClient(redis.url)

        let commands: [[RESPArgument]] = (0..<1_000).map { _ in ["INCR", "seq"] }
        let replies = try await client.pipeline(commands).get()
        #expect(replies == (1...1_000).map { RESPValue.integer(Int64($0)) })

        // Errors inside a pipeline are values, not failures.
        let mixed = try await client.pipeline([["SET", "k", "v"], ["INCR", "k"], ["GET", "k"]]).get()
        #expect(mixed[0] == .simpleString("OK"))
        #expect(mixed[1].errorMessage?.hasPrefix("ERR") == true)
        #expect(mixed[2].string == "v")
        #expect(try await client.pipeline([]).get() == [])

        // Many single requests in flight at once, from many threads, each gets its own reply.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<4 {
                group.addTask {
                    let futures = (0..<100).map { index in
                        client.send(["SET", .string("key-\(task)-\(index)"), .int(Int64(index))])
                            .flatMap { _ in client.send("GET", "key-\(task)-\(index)") }
                    }
                    var values: [Int64?] = []
                    for future in futures {
                        values.append(try await future.get().int)
                    }
                    #expect(values == (0..<100).map { Int64($0) })
                }
            }
            try await group.waitForAll()
        }
        #expect(client.pendingCount == 0)
        try await client.close().get()
    }

    @Test("an error reply fails the request with .server and the connection stays usable")
    func errorReply() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let client = try await connectedClient(redis.url)

        let error = await redisError(client.send("NOSUCHCOMMAND", "x"))
        guard case .server(let message)? = error else {
            Issue.record("expected .server, got \(String(describing: error))")
            return
        }
        #expect(message.hasPrefix("ERR unknown command"))
        _ = try await client.send("SET", "s", "text").get()
        #expect(await redisError(client.send("INCR", "s")) == .server("ERR value is not an integer or out of range"))
        #expect(try await client.send("PING").get() == .simpleString("PONG"))
        // An empty command gets no reply from Redis: refused before it is sent.
        #expect(await redisError(client.send([])) == .protocolError("empty command"))
        #expect(await redisError(client.pipeline([["PING"], []]))?.description.contains("empty command") == true)
        #expect(client.isConnected)
        try await client.close().get()
    }

    @Test("eval runs EVALSHA, falls back to EVAL on NOSCRIPT (e.g. after SCRIPT FLUSH)")
    func evalScript() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let client = try await connectedClient(redis.url)
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1]) * tonumber(ARGV[2])")

        func calls(_ command: String) async throws -> Int {
            let info = try await client.send("INFO", "commandstats").get().string ?? ""
            guard let line = info.split(separator: "\r\n").first(where: { $0.hasPrefix("cmdstat_\(command):") }),
                  let field = line.split(separator: ",").first,
                  let calls = Int(field.split(separator: "=").last ?? "") else { return 0 }
            return calls
        }

        // A fresh server has not seen the script: EVALSHA → NOSCRIPT → EVAL.
        #expect(try await client.eval(script, keys: ["n"], arguments: [.int(5), "10"]).get() == .integer(50))
        #expect(try await calls("evalsha") == 1)
        #expect(try await calls("eval") == 1)
        // Now cached: EVALSHA alone.
        #expect(try await client.eval(script, keys: ["n"], arguments: [.int(1), "1"]).get() == .integer(6))
        #expect(try await calls("evalsha") == 2)
        #expect(try await calls("eval") == 1)
        // The cache emptied (as by a restart): the fallback again.
        _ = try await client.send("SCRIPT", "FLUSH").get()
        #expect(try await client.eval(script, keys: ["n"], arguments: [.int(1), "2"]).get() == .integer(14))
        #expect(try await calls("evalsha") == 3)
        #expect(try await calls("eval") == 2)

        // Our SHA-1 is the one Redis computes.
        #expect(try await client.send("SCRIPT", "LOAD", script.source).get().string == script.sha1)
        let other = RedisScript("return {KEYS[1], ARGV[1], 'é', 3}")
        #expect(try await client.send("SCRIPT", "LOAD", other.source).get().string == other.sha1)
        #expect(try await client.eval(other, keys: ["k"], arguments: ["a"]).get()
            == .array([.bulkString(Array("k".utf8)), .bulkString(Array("a".utf8)),
                       .bulkString(Array("é".utf8)), .integer(3)]))

        // A script error is a server error, not a fallback.
        let failing = RedisScript("return redis.call('NOSUCHCOMMAND')")
        guard case .server? = await redisError(client.eval(failing, keys: [], arguments: [])) else {
            Issue.record("expected .server")
            return
        }
        try await client.close().get()
    }

    @Test("AUTH and SELECT are sent on connect; a wrong password never connects")
    func authAndSelect() async throws {
        let redis = try await RedisServerProcess.start(extraArguments: ["--requirepass", "s3cret"])
        defer { redis.terminate() }
        let url = try RedisURL("redis://:s3cret@127.0.0.1:\(redis.port)/3")
        let client = try await connectedClient(url)
        #expect(try await client.send("CLIENT", "INFO").get().string?.contains(" db=3 ") == true)
        _ = try await client.send("SET", "in-db-3", "yes").get()

        // An ACL user.
        _ = try await client.send("ACL", "SETUSER", "alice", "on", ">wonderland", "~*", "&*", "+@all").get()
        let alice = try await connectedClient(try RedisURL("redis://alice:wonderland@127.0.0.1:\(redis.port)"))
        #expect(try await alice.send("ACL", "WHOAMI").get().string == "alice")
        #expect(try await alice.send("GET", "in-db-3").get() == .bulkString(nil))  // db 0
        try await alice.close().get()

        let states = Recorder<Bool>()
        let wrong = RedisClient(url: try RedisURL("redis://:wrong@127.0.0.1:\(redis.port)"), group: redisTestGroup,
                                requestTimeout: .seconds(1), logger: redisTestLogger(),
                                onStateChange: { states.append($0) })
        wrong.start()
        try await Task.sleep(for: .milliseconds(300))
        #expect(!wrong.isConnected)
        #expect(states.values.isEmpty)
        #expect(await redisError(wrong.send("PING"))?.isUnavailable == true)
        try await wrong.close().get()
        try await client.close().get()
    }

    @Test("requests to a refused port fail at once with .unavailable, not after the timeout")
    func refusedFailsFast() async throws {
        let port = try RedisServerProcess.freePort()  // nothing listens there
        let client = RedisClient(url: RedisURL(host: "127.0.0.1", port: port), group: redisTestGroup,
                                 requestTimeout: .seconds(10), logger: redisTestLogger())
        // Not started yet.
        #expect(await redisError(client.send("PING"))?.isUnavailable == true)
        client.start()
        for _ in 0..<5 {
            let (error, elapsed) = await timedRedisError { client.send("GET", "k") }
            #expect(error?.isUnavailable == true)
            #expect(elapsed < .seconds(1))  // the timeout is 10 s
            try await Task.sleep(for: .milliseconds(60))
        }
        #expect(await redisError(client.pipeline([["PING"], ["PING"]]))?.isUnavailable == true)
        #expect(!client.isConnected)
        #expect(client.pendingCount == 0)
        try await client.close().get()
    }

    @Test("reconnects after a Redis restart and works again; onStateChange reports false then true")
    func reconnectAfterRestart() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let states = Recorder<Bool>()
        let client = try await connectedClient(redis.url, states: states)
        try await expectStates(states, [true])
        _ = try await client.send("SET", "before", "1").get()

        redis.kill()
        try await waitUntil("the client sees the connection lost") { !client.isConnected }
        try await expectStates(states, [true, false])
        let (error, elapsed) = await timedRedisError { client.send("GET", "before") }
        #expect(error?.isUnavailable == true)
        #expect(elapsed < .seconds(1))  // the timeout is 2 s
        try await Task.sleep(for: .milliseconds(300))  // a few refused reconnects

        try await redis.launch()
        try await waitUntil("the client reconnects") { client.isConnected }
        try await expectStates(states, [true, false, true])
        _ = try await client.send("SET", "after", "2").get()
        #expect(try await client.send("GET", "after").get().string == "2")
        #expect(try await client.send("GET", "before").get() == .bulkString(nil))  // no persistence

        try await client.close().get()
        try await expectStates(states, [true, false, true, false])
        #expect(!client.isConnected)
        #expect(await redisError(client.send("PING"))?.isUnavailable == true)
    }

    @Test("a hung (SIGSTOPped) Redis gives .timeout within the timeout, then the client recovers after SIGCONT")
    func hungServerTimesOut() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let states = Recorder<Bool>()
        let client = try await connectedClient(redis.url, requestTimeout: .milliseconds(400), states: states)
        _ = try await client.send("SET", "k", "v").get()

        redis.pause()
        var pipelined: EventLoopFuture<[RESPValue]>?
        let (firstError, elapsed) = await timedRedisError {
            let first = client.send("GET", "k")
            pipelined = client.pipeline([["GET", "k"], ["PING"]])
            return first
        }
        #expect(firstError == .timeout)
        #expect(elapsed >= .milliseconds(390), "timed out too early: \(elapsed)")
        #expect(elapsed < .milliseconds(1_500), "timed out too late: \(elapsed)")
        let pipelineError = await redisError(pipelined!)
        #expect(pipelineError == .timeout || pipelineError?.isUnavailable == true)

        // The connection was dropped; while Redis hangs, requests fail fast or time out, never hang.
        try await waitUntil("the client drops the hung connection") { !client.isConnected }
        try await expectStates(states, [true, false])
        let (error, whileHung) = await timedRedisError { client.send("PING") }
        #expect(error == .timeout || error?.isUnavailable == true)
        #expect(whileHung < .milliseconds(1_500))

        redis.resume()
        try await waitUntil("the client reconnects after SIGCONT", timeout: .seconds(8)) { client.isConnected }
        #expect(try await client.send("GET", "k").get().string == "v")
        #expect(states.values.last == true)
        #expect(client.pendingCount == 0)
        try await client.close().get()
    }

    @Test("in-flight requests are capped; beyond the cap they fail with .unavailable(\"too many pending\")")
    func pendingCap() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let client = try await connectedClient(redis.url, requestTimeout: .seconds(2), maxPending: 100)
        redis.pause()
        let held = client.pipeline(Array(repeating: ["PING"], count: 100))
        #expect(client.pendingCount == 100)
        #expect(await redisError(client.send("PING")) == .unavailable("too many pending"))
        #expect(await redisError(client.pipeline([["PING"]])) == .unavailable("too many pending"))
        redis.resume()
        #expect(try await held.get().count == 100)
        #expect(client.pendingCount == 0)
        #expect(try await client.send("PING").get() == .simpleString("PONG"))
        try await client.close().get()
    }

    @Test("close() fails pending requests with .unavailable and stops reconnecting")
    func closeFailsPending() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let client = try await connectedClient(redis.url, requestTimeout: .seconds(5))
        redis.pause()
        let pending = client.send("PING")
        try await client.close().get()
        #expect(await redisError(pending)?.isUnavailable == true)
        redis.resume()
        try await Task.sleep(for: .milliseconds(200))
        #expect(!client.isConnected)
        #expect(await redisError(client.send("PING"))?.isUnavailable == true)
    }
}
