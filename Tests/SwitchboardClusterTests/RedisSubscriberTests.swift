import NIOCore
import SwitchboardCluster
import Testing

@Suite("Redis pub/sub subscriber against a real redis-server")
struct RedisSubscriberTests {
    struct Message: Sendable, Equatable {
        var channel: String
        var payload: [UInt8]
    }

    private func makeSubscriber(_ url: RedisURL, channels: [String], messages: Recorder<Message>,
                                states: Recorder<Bool>? = nil,
                                healthCheckInterval: TimeAmount = .seconds(5)) -> RedisSubscriber {
        RedisSubscriber(url: url, group: redisTestGroup, channels: channels, logger: redisTestLogger(),
                        healthCheckInterval: healthCheckInterval,
                        onMessage: { channel, payload in
                            messages.append(Message(channel: channel, payload: Array(payload.readableBytesView)))
                        },
                        onStateChange: { states?.append($0) })
    }

    @Test("delivers messages in publish order, only for its channels")
    func deliversInOrder() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let publisher = try await connectedClient(redis.url)
        let messages = Recorder<Message>()
        let states = Recorder<Bool>()
        let subscriber = makeSubscriber(redis.url, channels: ["alpha", "beta", "alpha"], messages: messages,
                                        states: states)
        subscriber.start()
        try await waitUntil("subscribed") { subscriber.isSubscribed }
        try await expectStates(states, [true])
        #expect(try await publisher.send("PUBSUB", "NUMSUB", "alpha", "beta").get()
            == .array([.bulkString(Array("alpha".utf8)), .integer(1), .bulkString(Array("beta".utf8)), .integer(1)]))

        var expected: [Message] = []
        var commands: [[RESPArgument]] = []
        for index in 0..<500 {
            let channel = index % 3 == 0 ? "beta" : "alpha"
            let payload = Array("message \(index)".utf8) + [0, 13, 10, UInt8(index % 256)]
            expected.append(Message(channel: channel, payload: payload))
            commands.append(["PUBLISH", .string(channel), .bytes(payload)])
            if index % 50 == 0 {
                commands.append(["PUBLISH", "gamma", "not for us"])
            }
        }
        let replies = try await publisher.pipeline(commands).get()
        #expect(replies.filter { $0 == .integer(1) }.count == 500)
        let large = [UInt8](repeating: 0x61, count: 300_000)
        _ = try await publisher.send(["PUBLISH", "alpha", .bytes(large)]).get()
        expected.append(Message(channel: "alpha", payload: large))

        try await waitUntil("every message arrived") { messages.count >= expected.count }
        #expect(messages.values == expected)
        try await subscriber.close().get()
        #expect(!subscriber.isSubscribed)
        try await expectStates(states, [true, false])
        try await publisher.close().get()
    }

    @Test("resubscribes after Redis is killed and started again on the same port")
    func resubscribesAfterRestart() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let messages = Recorder<Message>()
        let states = Recorder<Bool>()
        let subscriber = makeSubscriber(redis.url, channels: ["events"], messages: messages, states: states)
        subscriber.start()
        try await waitUntil("subscribed") { subscriber.isSubscribed }
        let publisherStates = Recorder<Bool>()
        let publisher = try await connectedClient(redis.url, states: publisherStates)
        #expect(try await publisher.send("PUBLISH", "events", "one").get() == .integer(1))
        try await waitUntil("the first message") { messages.count == 1 }

        redis.kill()
        try await waitUntil("the subscriber sees the connection lost") { !subscriber.isSubscribed }
        try await Task.sleep(for: .milliseconds(200))
        try await redis.launch()
        try await waitUntil("resubscribed") { subscriber.isSubscribed }
        try await waitUntil("the publisher reconnected") { publisherStates.count == 3 && publisher.isConnected }
        try await expectStates(states, [true, false, true])
        #expect(try await publisher.send("PUBLISH", "events", "two").get() == .integer(1))
        try await waitUntil("the second message") { messages.count == 2 }
        #expect(messages.values.map { String(decoding: $0.payload, as: UTF8.self) } == ["one", "two"])

        try await subscriber.close().get()
        try await publisher.close().get()
    }

    @Test("a hung Redis is noticed by the health-check PING and the subscription comes back")
    func healthCheck() async throws {
        let redis = try await RedisServerProcess.start()
        defer { redis.terminate() }
        let messages = Recorder<Message>()
        let states = Recorder<Bool>()
        let subscriber = makeSubscriber(redis.url, channels: ["events"], messages: messages, states: states,
                                        healthCheckInterval: .milliseconds(500))
        subscriber.start()
        try await waitUntil("subscribed") { subscriber.isSubscribed }
        try await Task.sleep(for: .milliseconds(1_100))  // two PINGs answered: still subscribed
        try await expectStates(states, [true])

        redis.pause()
        try await waitUntil("the subscriber gives up on the hung connection", timeout: .seconds(3)) {
            !subscriber.isSubscribed
        }
        redis.resume()
        try await waitUntil("resubscribed", timeout: .seconds(5)) { subscriber.isSubscribed }
        let publisher = try await connectedClient(redis.url)
        #expect(try await publisher.send("PUBLISH", "events", "back").get().int ?? 0 >= 1)
        try await waitUntil("the message") { messages.count == 1 }
        try await subscriber.close().get()
        try await publisher.close().get()
    }
}
