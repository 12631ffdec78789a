import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
import SwitchboardCore
import SwitchboardProtocol
@testable import SwitchboardServer
import Testing

/// The connection handler on an `EmbeddedChannel`: deterministic, virtual time on the loop,
/// wall time on a `ManualClock`.
@Suite("Connection handler")
struct ConnectionHandlerTests {
    final class Harness {
        let loop = EmbeddedEventLoop()
        let channel: EmbeddedChannel
        let gateway: Gateway
        let clock = ManualClock(millis: Int64(1_700_000_000) * 1000)

        init(heartbeat: Double = 30, loginTimeout: Double = 10) throws {
            var config = testConfiguration(heartbeat: heartbeat, loginTimeout: loginTimeout)
            config.threads = 1
            gateway = Gateway(configuration: config, group: loop, clock: clock, logger: Logger(label: "test"))
            channel = EmbeddedChannel(loop: loop)
            try channel.pipeline.syncOperations.addHandler(
                ClientConnectionHandler(gateway: gateway, connectionID: gateway.makeConnectionID()))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        var now: Int64 { clock.nowMillis() / 1000 }

        func text(_ s: String) throws {
            try channel.writeInbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: s)))
        }

        func bytes(_ b: [UInt8], opcode: WebSocketOpcode = .text) throws {
            try channel.writeInbound(WebSocketFrame(fin: true, opcode: opcode, data: ByteBuffer(bytes: b)))
        }

        /// Every frame written so far, as (opcode, payload).
        func written() throws -> [(WebSocketOpcode, ByteBuffer)] {
            loop.run()
            var out: [(WebSocketOpcode, ByteBuffer)] = []
            while let frame = try channel.readOutbound(as: WebSocketFrame.self) {
                out.append((frame.opcode, frame.unmaskedData))
            }
            return out
        }

        func json() throws -> [JSONValue] {
            try written().compactMap { opcode, data in
                opcode == .text ? try JSONParser.parse(String(buffer: data)) : nil
            }
        }

        func closeCode() throws -> UInt16? {
            for (opcode, data) in try written() where opcode == .connectionClose {
                var d = data
                return d.readInteger(as: UInt16.self)
            }
            return nil
        }

        func login(_ user: String, platform: Platform = .iPhone, id: Int = 1) throws {
            try text(loginFrame(user, platform: platform, id: id,
                                sig: makeSig(user, expire: 86_400, time: now)))
        }
    }

    @Test func secondLoginReadInTheSameBatchGets7501() throws {
        let h = try Harness()
        try h.login("alice", id: 1)
        try h.login("alice", id: 2)
        let replies = try h.json()
        #expect(replies.count == 2)
        #expect(replies[0].code == 7501 && replies[0]["id"]?.numberValue?.int64 == 2)
        #expect(replies[1].code == 0 && replies[1]["id"]?.numberValue?.int64 == 1)
    }

    @Test func statusIsLoginingWhileTheLoginIsChecked() throws {
        let h = try Harness()
        try h.login("alice")
        try h.text(#"{"op":"getLoginStatus","id":"s"}"#)
        try h.text(#"{"op":"getLoginUser","id":"u"}"#)
        let replies = try h.json()
        #expect(replies[0]["data"]?.numberValue?.int64 == 2)
        #expect(replies[1]["data"]?.stringValue == "")
        try h.text(#"{"op":"getLoginStatus","id":"s"}"#)
        try h.text(#"{"op":"getLoginUser","id":"u"}"#)
        let after = try h.json()
        #expect(after[0]["data"]?.numberValue?.int64 == 1)
        #expect(after[1]["data"]?.stringValue == "alice")
    }

    @Test func binaryFrameCloses1003() throws {
        let h = try Harness()
        try h.bytes([1, 2, 3], opcode: .binary)
        #expect(try h.closeCode() == 1003)
    }

    @Test func invalidUTF8Closes1007() throws {
        let h = try Harness()
        try h.bytes([0x7B, 0xC3, 0x28, 0x7D])
        #expect(try h.closeCode() == 1007)
    }

    @Test func tenMalformedFramesInARowClose1008() throws {
        let h = try Harness()
        for _ in 0..<9 { try h.text("nope") }
        try h.text(#"{"op":"ping"}"#)  // a good frame resets the count
        for _ in 0..<9 { try h.text("[1]") }
        var frames = try h.written()
        #expect(!frames.contains { $0.0 == .connectionClose })
        #expect(frames.filter { $0.0 == .text }.count == 19)
        try h.text(#"{"id":5}"#)
        frames = try h.written()
        let reply = try JSONParser.parse(String(buffer: frames[0].1))
        #expect(reply.op == "reply" && reply.code == 6017 && reply["id"]?.numberValue?.int64 == 5)
        var close = frames[1].1
        #expect(frames[1].0 == .connectionClose && close.readInteger(as: UInt16.self) == 1008)
    }

    @Test func malformedWithoutIDGetsAnErrorEventAndStaysOpen() throws {
        let h = try Harness()
        try h.text(#"{"op":42}"#)
        let events = try h.json()
        #expect(events[0].op == "event" && events[0].string("event") == "error")
        #expect(events[0]["data"]?["code"]?.numberValue?.int64 == 6017)
        #expect(events[0]["seq"] == nil)
        #expect(h.channel.isActive)
    }

    @Test func requestsBeforeLoginGet6014AndUnknownOps6017() throws {
        let h = try Harness()
        for op in ["logout", "renewSig", "send"] {
            try h.text(#"{"op":"\#(op)","id":1}"#)
        }
        try h.text(#"{"op":"teleport","id":2}"#)
        let replies = try h.json()
        #expect(replies.prefix(3).allSatisfy { $0.code == 6014 })
        #expect(replies[3].code == 6017)
    }

    @Test func loginTimeoutCloses4000() throws {
        let h = try Harness(loginTimeout: 10)
        h.loop.advanceTime(by: .seconds(9))
        #expect(try h.closeCode() == nil)
        try h.text(#"{"op":"ping","id":1}"#)  // activity does not stop the login clock
        h.loop.advanceTime(by: .seconds(1))
        #expect(try h.closeCode() == 4000)
    }

    @Test func loggedInConnectionIsNotTimedOutAndLogoutRestartsTheClock() throws {
        let h = try Harness(heartbeat: 1000, loginTimeout: 10)
        try h.login("alice")
        _ = try h.json()
        h.loop.advanceTime(by: .seconds(20))
        #expect(try h.closeCode() == nil)
        try h.text(#"{"op":"logout","id":2}"#)
        #expect(try h.json().first?.code == 0)
        h.loop.advanceTime(by: .seconds(10))
        #expect(try h.closeCode() == 4000)
    }

    @Test func heartbeatPingsThenDropsASilentPeer() throws {
        let h = try Harness(heartbeat: 30, loginTimeout: 1000)
        try h.login("alice")
        _ = try h.json()
        h.loop.advanceTime(by: .seconds(30))
        #expect(try h.written().contains { $0.0 == .ping })
        #expect(h.channel.isActive)
        h.loop.advanceTime(by: .seconds(30))
        _ = try h.written()
        #expect(!h.channel.isActive)
        // The session detached rather than ended: it is still the user's instance.
        let instances = h.gateway.table.instances(app: testAppID, userID: "alice")
        #expect(instances?.count == 1 && instances?.first?.attached == false)
    }

    @Test func pongAcknowledgesWhatWasWrittenBeforeThePing() throws {
        let h = try Harness(heartbeat: 30, loginTimeout: 1000)
        try h.login("alice")
        let login = try h.json()[0]
        let sessionID = try #require(login["data"]?.string("sessionID"))
        let info = SessionInfo(sessionID: "x", resumeToken: "", sdkAppID: testAppID, userID: "bob",
                               platform: .web, userSigExpireAt: .max)
        _ = h.gateway.table.send(from: info, to: "alice", payload: .number(JSONNumber(1)))
        _ = h.gateway.table.send(from: info, to: "alice", payload: .number(JSONNumber(2)))
        #expect(try h.json().compactMap { $0["seq"]?.numberValue?.int64 } == [1, 2])
        h.loop.advanceTime(by: .seconds(30))
        let ping = try #require(try h.written().first { $0.0 == .ping })
        var payload = ping.1
        #expect(payload.getInteger(at: payload.readerIndex, as: UInt64.self) == 2)
        try h.channel.writeInbound(WebSocketFrame(fin: true, opcode: .pong, data: payload))
        // Acknowledged: a resume from seq 2 replays nothing, from 1 would need dropped events.
        _ = try h.channel.close().wait()
        _ = payload.readInteger(as: UInt64.self)
        let token = try #require(login["data"]?.string("resumeToken"))
        let sink = NullSink()
        let result = h.gateway.table.resume(sessionID: sessionID, resumeToken: token, lastSeq: 2,
                                            connection: ConnectionRef(id: 999, sink: sink))
        guard case .success(_, let replay) = result else {
            Issue.record("resume failed: \(result)")
            return
        }
        #expect(replay.isEmpty)
    }

    @Test func userSigExpiryFiresAtTheLapseAndTheConnectionStays() throws {
        let h = try Harness(heartbeat: 1000, loginTimeout: 1000)
        let sig = makeSig("alice", expire: 60, time: h.now)
        try h.text(loginFrame("alice", sig: sig))
        #expect(try h.json().first?.code == 0)
        h.clock.advance(seconds: 60)
        h.loop.advanceTime(by: .seconds(60))
        #expect(try h.json().isEmpty)  // now == time + expire: still valid
        h.clock.advance(millis: 1)
        h.loop.advanceTime(by: .milliseconds(1))
        let events = try h.json()
        #expect(events.first?.string("event") == "userSigExpired")
        #expect(h.channel.isActive)
        try h.text(#"{"op":"getLoginStatus","id":1}"#)
        #expect(try h.json().first?["data"]?.numberValue?.int64 == 3)
    }

    @Test func pingOpGetsPongWithTheID() throws {
        let h = try Harness()
        try h.text(#"{"op":"ping","id":"p1"}"#)
        let pong = try h.json()[0]
        #expect(pong.op == "pong" && pong.string("id") == "p1")
        #expect(pong["time"]?.numberValue?.int64 == h.clock.nowMillis())
    }
}

final class NullSink: SessionSink {
    func deliver(_ delivery: SessionDelivery) {}
}
