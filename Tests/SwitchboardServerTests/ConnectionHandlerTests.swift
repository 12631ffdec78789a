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
            try bytes(Array(s.utf8))
        }

        func bytes(_ b: [UInt8], opcode: WebSocketOpcode = .text) throws {
            try channel.writeInbound(maskedFrame(opcode: opcode, payload: b))
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

    /// A pong proves the client read what was written before its ping; those events leave the
    /// buffer one heartbeat later, and a resume from before them then fails (6014) rather than
    /// silently missing them.
    @Test func pongReleasesEventsOneHeartbeatAfterTheProof() throws {
        let h = try Harness(heartbeat: 30, loginTimeout: 1000)
        try h.login("alice")
        let login = try h.json()[0]
        let sessionID = try #require(login["data"]?.string("sessionID"))
        let token = try #require(login["data"]?.string("resumeToken"))
        let bob = SessionInfo(sessionID: "x", resumeToken: "", sdkAppID: testAppID, userID: "bob",
                              platform: .web, userSigExpireAt: .max)
        func pongTheNextPing(expecting seq: UInt64) throws {
            h.loop.advanceTime(by: .seconds(30))
            let ping = try #require(try h.written().first { $0.0 == .ping })
            #expect(ping.1.getInteger(at: ping.1.readerIndex, as: UInt64.self) == seq)
            try h.channel.writeInbound(maskedFrame(opcode: .pong, payload: Array(ping.1.readableBytesView)))
        }
        _ = h.gateway.table.send(from: bob, to: "alice", payload: .number(JSONNumber(1)))
        _ = h.gateway.table.send(from: bob, to: "alice", payload: .number(JSONNumber(2)))
        #expect(try h.json().compactMap { $0["seq"]?.numberValue?.int64 } == [1, 2])
        try pongTheNextPing(expecting: 2)  // proof of 1...2; nothing released yet
        _ = h.gateway.table.send(from: bob, to: "alice", payload: .number(JSONNumber(3)))
        _ = try h.json()
        try pongTheNextPing(expecting: 3)  // releases 1...2
        _ = try h.channel.close().wait()

        let sink = NullSink()
        let early = h.gateway.table.resume(sessionID: sessionID, resumeToken: token, lastSeq: 1,
                                           connection: ConnectionRef(id: 998, sink: sink))
        guard case .failure(let code, _) = early else {
            Issue.record("a resume from before released events must fail, got \(early)")
            return
        }
        #expect(code == .notLoggedIn)
        let result = h.gateway.table.resume(sessionID: sessionID, resumeToken: token, lastSeq: 2,
                                            connection: ConnectionRef(id: 999, sink: sink))
        guard case .success(_, let replay) = result else {
            Issue.record("resume failed: \(result)")
            return
        }
        #expect(replay.map(\.seq) == [3])
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

    /// PROTOCOL §7: after `userSigExpired` the login timeout starts again.
    @Test func userSigExpiryRestartsTheLoginClock() throws {
        let h = try Harness(heartbeat: 1000, loginTimeout: 10)
        try h.text(loginFrame("alice", sig: makeSig("alice", expire: 60, time: h.now)))
        #expect(try h.json().first?.code == 0)
        h.clock.advance(millis: 60_001)
        h.loop.advanceTime(by: .milliseconds(60_001))
        #expect(try h.json().first?.string("event") == "userSigExpired")
        h.loop.advanceTime(by: .seconds(9))
        #expect(try h.closeCode() == nil)
        h.loop.advanceTime(by: .seconds(1))
        #expect(try h.closeCode() == 4000)
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

/// A client frame on the wire: masked, as RFC 6455 requires.
func maskedFrame(opcode: WebSocketOpcode, payload: [UInt8], fin: Bool = true,
                 mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeInteger(UInt8(fin ? 0x80 : 0) | UInt8(webSocketOpcode: opcode))
    if payload.count < 126 {
        buffer.writeInteger(UInt8(0x80 | payload.count))
    } else if payload.count <= 0xFFFF {
        buffer.writeInteger(UInt8(0x80 | 126))
        buffer.writeInteger(UInt16(payload.count))
    } else {
        buffer.writeInteger(UInt8(0x80 | 127))
        buffer.writeInteger(UInt64(payload.count))
    }
    buffer.writeBytes(mask)
    buffer.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset & 3] })
    return buffer
}
