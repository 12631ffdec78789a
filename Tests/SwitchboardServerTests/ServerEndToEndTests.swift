import Foundation
import NIOCore
import NIOPosix
import Synchronization
import SwitchboardCore
import SwitchboardProtocol
import SwitchboardServer
import Testing

/// Real sockets on loopback: the server as clients see it.
@Suite("End to end over loopback")
struct ServerEndToEndTests {
    let group = MultiThreadedEventLoopGroup.singleton

    @Test func loginKicksTheOtherNativePlatformUnderDual() async throws {
        try await withServer(testConfiguration(policy: .dual)) { _, port in
            let phone = try await TestClient.connect(port: port, group: group)
            let reply = try await phone.request(loginFrame("alice", platform: .iPhone))
            #expect(reply.code == 0)
            #expect(reply.dataObject?["status"]?.numberValue?.int64 == 1)
            let web = try await TestClient.connect(port: port, group: group)
            #expect(try await web.request(loginFrame("alice", platform: .web)).code == 0)

            let android = try await TestClient.connect(port: port, group: group)
            #expect(try await android.request(loginFrame("alice", platform: .android)).code == 0)
            let kicked = try await phone.nextJSON()
            #expect(kicked.string("event") == "kickedOffline")
            #expect(kicked["seq"]?.numberValue?.int64 == 1)
            #expect(kicked.dataObject?.string("reason") == "multiDevice")
            #expect(kicked.dataObject?.string("byPlatform") == "Android")
            #expect(try await phone.closeCode() == 4002)
            // Web coexists with native platforms: still logged in.
            #expect(try await web.request(#"{"op":"getLoginStatus","id":9}"#).dataObject?.numberValue?.int64 == 1)
        }
    }

    /// 64 simultaneous logins of one user from 64 sockets: every login is answered 0, and each
    /// instance ends either held or kicked exactly once; what is held is what the policy allows.
    @Test(arguments: LoginPolicy.Kind.allCases)
    func simultaneousLoginsOfOneUser(policy: LoginPolicy.Kind) async throws {
        let limits: [Platform: Int] = [.web: 3, .android: 2]
        try await withServer(testConfiguration(policy: policy, maxInstances: limits)) { server, port in
            var clients: [(TestClient, Platform)] = []
            var rng = SystemRandomNumberGenerator()
            for _ in 0..<64 {
                let platform = Platform.allCases.randomElement(using: &rng)!
                clients.append((try await TestClient.connect(port: port, group: group), platform))
            }
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for (client, platform) in clients {
                    tasks.addTask { try await client.send(loginFrame("bob", platform: platform)) }
                }
                try await tasks.waitForAll()
            }
            var held: [Platform] = []
            var kicked = 0
            for (client, platform) in clients {
                let reply = try await client.nextJSON()
                #expect(reply.op == "reply" && reply.code == 0, "every login is answered 0 first: \(reply)")
                // Kicked ones get kickedOffline then 4002; held ones get nothing more.
                if let event = try? await client.nextJSON(timeout: .milliseconds(300)) {
                    #expect(event.string("event") == "kickedOffline")
                    #expect(try await client.closeCode() == 4002)
                    kicked += 1
                } else {
                    let status = try await client.request(#"{"op":"getLoginStatus","id":2}"#)
                    #expect(status.dataObject?.numberValue?.int64 == 1)
                    held.append(platform)
                }
            }
            #expect(held.count + kicked == 64)
            let table = server.gateway.table.instances(app: testAppID, userID: "bob") ?? []
            #expect(table.count == held.count)
            #expect(table.allSatisfy { $0.attached })
            #expect(table.map(\.platform).sorted { $0.rawValue < $1.rawValue } == held.sorted { $0.rawValue < $1.rawValue })
            // What is held satisfies the policy: no two platforms of one group, limits kept.
            let policyValue = try! LoginPolicy(kind: policy, maxInstances: limits)
            var byGroup: [Int: Set<Platform>] = [:]
            for platform in held { byGroup[policyValue.group(of: platform), default: []].insert(platform) }
            #expect(byGroup.values.allSatisfy { $0.count == 1 })
            for platform in Set(held) {
                #expect(held.filter { $0 == platform }.count <= policyValue.maxInstances(on: platform))
            }
            #expect(!held.isEmpty)
            for (client, _) in clients { await client.abort() }
        }
    }

    @Test func deadPeerDetachesAndResumes() async throws {
        // Heartbeat 0.5 s: dead after 1 s of silence, long enough that a busy machine (the suite
        // runs in parallel) does not drop a client between its connect and its login.
        try await withServer(testConfiguration(heartbeat: 0.5)) { _, port in
            let silent = try await TestClient.connect(port: port, group: group, answerPings: false)
            let reply = try await silent.request(loginFrame("carol"))
            let sessionID = try #require(reply.dataObject?.string("sessionID"))
            let token = try #require(reply.dataObject?.string("resumeToken"))
            let started = ContinuousClock.now
            // Nothing (not even a pong) for two heartbeats: the server drops the connection.
            #expect(try await silent.closeCode(timeout: .seconds(4)) == nil)
            let elapsed = ContinuousClock.now - started
            #expect(elapsed < .seconds(3))

            let sender = try await TestClient.connect(port: port, group: group)
            _ = try await sender.request(loginFrame("dave"))
            let sent = try await sender.request(#"{"op":"send","id":3,"to":"carol","payload":{"n":1}}"#)
            #expect(sent.code == 0)
            #expect(sent.dataObject?["online"]?.numberValue?.int64 == 0)

            let back = try await TestClient.connect(port: port, group: group)
            let resumed = try await back.request(
                #"{"op":"resume","id":4,"sessionID":"\#(sessionID)","resumeToken":"\#(token)","lastSeq":0}"#)
            #expect(resumed.code == 0)
            #expect(resumed.dataObject?["replayed"]?.numberValue?.int64 == 1)
            let replayed = try await back.nextJSON()
            #expect(replayed.string("event") == "message")
            #expect(replayed["seq"]?.numberValue?.int64 == 1)
            #expect(replayed.dataObject?["payload"]?["n"]?.numberValue?.int64 == 1)
        }
    }

    @Test func userSigExpiryIsAnnouncedAndANewLoginWorks() async throws {
        try await withServer(testConfiguration()) { _, port in
            let client = try await TestClient.connect(port: port, group: group)
            let now = Int64(Date().timeIntervalSince1970)
            // Lapses when the clock passes now+2: time enough to log in on a slow machine.
            let sig = makeSig("erin", expire: 102, time: now - 100)
            #expect(try await client.request(loginFrame("erin", sig: sig)).code == 0)
            let event = try await client.nextJSON(timeout: .seconds(4))
            #expect(event.string("event") == "userSigExpired")
            #expect(event["seq"]?.numberValue?.int64 == 1)
            #expect(try await client.request(#"{"op":"getLoginStatus","id":2}"#).dataObject?.numberValue?.int64 == 3)
            #expect(try await client.request(loginFrame("erin", id: 3)).code == 0)
        }
    }

    @Test func plainHTTPGetsAnAnswerNotAHang() async throws {
        try await withServer(testConfiguration()) { _, port in
            let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
            let channel = try await ClientBootstrap(group: group).connect(to: address).get()
            let received = Inbox()
            try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(RawCollector(inbox: received))
            }.get()
            var request = channel.allocator.buffer(capacity: 64)
            request.writeString("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            try await channel.writeAndFlush(request)
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(3)
            var text = ""
            while clock.now < deadline, !text.contains("\r\n\r\n") {
                if case .text(let chunk)? = received.pop() { text += chunk }
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(text.hasPrefix("HTTP/1.1 404"))
            try? await channel.close()
        }
    }
}

final class RawCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let inbox: Inbox
    init(inbox: Inbox) { self.inbox = inbox }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbox.push(.text(String(buffer: Self.unwrapInboundIn(data))))
    }
}
