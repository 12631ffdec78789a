import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket
import Synchronization
import SwitchboardClient
import SwitchboardCore
import SwitchboardProtocol
@testable import SwitchboardServer
import UserSig

let testAppID: UInt64 = 1_400_000_000
let testKey = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
let testUserSigKey = UserSigKey(secret: testKey)

func makeSig(_ user: String, expire: Int64 = 86_400, time: Int64? = nil, app: UInt64 = testAppID) -> String {
    TLSSigAPIv2.issue(sdkAppID: app, key: testUserSigKey, identifier: user, expire: expire,
                      time: time ?? Int64(Date().timeIntervalSince1970))
}

func loginFrame(_ user: String, platform: Platform = .iPhone, id: Int = 1, sig: String? = nil) -> String {
    #"{"op":"login","id":\#(id),"sdkAppID":\#(testAppID),"userID":"\#(user)","userSig":"\#(sig ?? makeSig(user))","platform":"\#(platform.rawValue)"}"#
}

func testConfiguration(policy: LoginPolicy.Kind = .dual, maxInstances: [Platform: Int] = [:],
                       heartbeat: Double = 30, loginTimeout: Double = 10) -> ServerConfiguration {
    var config = ServerConfiguration(apps: [
        AppConfiguration(sdkAppID: testAppID, secretKey: testKey,
                         policy: try! LoginPolicy(kind: policy, maxInstances: maxInstances)),
    ])
    config.listen = .init(host: "127.0.0.1", port: 0)
    config.admin = .init(host: "127.0.0.1", port: 0)
    config.heartbeatSeconds = heartbeat
    config.loginTimeoutSeconds = loginTimeout
    config.threads = 2
    return config
}

/// A real server on loopback ports chosen by the kernel.
func withServer(_ config: ServerConfiguration, _ body: (SwitchboardServer, Int) async throws -> Void) async throws {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    let server = SwitchboardServer(configuration: config, logger: logger)
    try await server.start()
    let port = server.webSocketAddress!.port!
    do {
        try await body(server, port)
    } catch {
        try await server.shutdown()
        throw error
    }
    try await server.shutdown()
}

enum Incoming: Sendable, Equatable {
    case text(String)
    case close(UInt16)
    case ping
    /// The TCP connection ended.
    case end
}

final class Inbox: Sendable {
    private let items = Mutex<[Incoming]>([])

    func push(_ item: Incoming) { items.withLock { $0.append(item) } }

    func pop() -> Incoming? {
        items.withLock { $0.isEmpty ? nil : $0.removeFirst() }
    }
}

/// Collects what a test client receives; answers server pings unless told not to.
final class CollectingHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let inbox: Inbox
    let answerPings: Bool

    init(inbox: Inbox, answerPings: Bool) {
        self.inbox = inbox
        self.answerPings = answerPings
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            inbox.push(.text(String(buffer: frame.unmaskedData)))
        case .connectionClose:
            var data = frame.unmaskedData
            inbox.push(.close(data.readInteger(as: UInt16.self) ?? 1005))
        case .ping:
            inbox.push(.ping)
            if answerPings {
                let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
                context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
            }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.push(.end)
    }
}

struct TestTimeout: Error, CustomStringConvertible {
    let description: String
}

/// A WebSocket client over a real socket, for end-to-end tests.
final class TestClient: Sendable {
    let channel: any Channel
    let inbox: Inbox

    static func connect(port: Int, group: any EventLoopGroup, answerPings: Bool = true) async throws -> TestClient {
        let inbox = Inbox()
        let channel = try await WebSocketConnector.connect(host: "127.0.0.1", port: port, group: group) { _ in
            [CollectingHandler(inbox: inbox, answerPings: answerPings)]
        }.get()
        return TestClient(channel: channel, inbox: inbox)
    }

    private init(channel: any Channel, inbox: Inbox) {
        self.channel = channel
        self.inbox = inbox
    }

    func send(_ text: String) async throws {
        let frame = WebSocketFrame.clientText(Array(text.utf8), allocator: channel.allocator)
        try await channel.writeAndFlush(frame)
    }

    /// The next thing received, skipping server pings.
    func next(timeout: Duration = .seconds(5)) async throws -> Incoming {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if let item = inbox.pop() {
                if item == .ping { continue }
                return item
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw TestTimeout(description: "nothing received within \(timeout)")
    }

    func nextJSON(timeout: Duration = .seconds(5)) async throws -> JSONValue {
        let item = try await next(timeout: timeout)
        guard case .text(let text) = item else {
            throw TestTimeout(description: "expected a text frame, got \(item)")
        }
        return try JSONParser.parse(text)
    }

    /// Sends a request and returns its reply, collecting any events that come first.
    func request(_ text: String) async throws -> JSONValue {
        try await send(text)
        return try await nextJSON()
    }

    /// Waits for the close frame and returns its code.
    func closeCode(timeout: Duration = .seconds(5)) async throws -> UInt16? {
        while true {
            switch try await next(timeout: timeout) {
            case .close(let code): return code
            case .end: return nil
            default: continue
            }
        }
    }

    func abort() async {
        try? await channel.close()
    }
}

extension JSONValue {
    var code: Int64? { self["code"]?.numberValue?.int64 }
    var op: String? { self["op"]?.stringValue }
    func string(_ key: String) -> String? { self[key]?.stringValue }
    var dataObject: JSONValue? { self["data"] }
}
