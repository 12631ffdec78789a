import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import SwitchboardCore
import SwitchboardProtocol
@testable import SwitchboardServer
import UserSig

// Test support for the admin port and the state-change webhook: a small HTTP client, a
// loopback HTTP receiver, and a server helper that exposes both ports.

struct HTTPTestResponse: Sendable {
    let status: Int
    let headers: [(String, String)]
    let body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    func json() throws -> JSONValue { try JSONParser.parse(body) }

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// One HTTP/1.1 request on its own connection over loopback.
enum HTTPTestClient {
    static func request(port: Int, method: HTTPMethod = .GET, uri: String, body: [UInt8]? = nil,
                        headers extra: [(String, String)] = [],
                        timeout: TimeAmount = .seconds(10)) async throws -> HTTPTestResponse {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.any().makePromise(of: HTTPTestResponse.self)
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var headers = HTTPHeaders([("Host", "127.0.0.1:\(port)"), ("Connection", "close")])
        if let body { headers.add(name: "Content-Length", value: String(body.count)) }
        headers.add(contentsOf: extra)
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: uri,
                                                                 headers: headers)), promise: nil)
        if let body {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            promise.fail(TestTimeout(description: "no HTTP response within \(timeout)"))
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        let response = try await promise.futureResult.get()
        try? await channel.close()
        return response
    }

    static func post(port: Int, uri: String, json: String) async throws -> HTTPTestResponse {
        try await request(port: port, method: .POST, uri: uri, body: Array(json.utf8),
                          headers: [("Content-Type", "application/json")])
    }
}

private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<HTTPTestResponse>
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []

    init(promise: EventLoopPromise<HTTPTestResponse>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(let buffer):
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            promise.succeed(HTTPTestResponse(status: Int(head.status.code),
                                             headers: head.headers.map { ($0.name, $0.value) }, body: body))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(TestTimeout(description: "connection closed before a response"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}

/// The query string that authenticates an admin call (Tencent's parameters).
func adminQuery(app: UInt64 = testAppID, identifier: String = "administrator", sig: String? = nil) -> String {
    let userSig = sig ?? makeSig(identifier, app: app)
    return "sdkappid=\(app)&identifier=\(identifier)&usersig=\(userSig)&random=\(UInt32.random(in: 0...UInt32.max))&contenttype=json"
}

/// A server on loopback ports chosen by the kernel: `body(server, webSocketPort, adminPort)`.
func withAdminServer(_ config: ServerConfiguration, clock: any WallClock = SystemClock(),
                     webhook: StateWebhook.Configuration? = nil,
                     _ body: (SwitchboardServer, Int, Int) async throws -> Void) async throws {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    let server = SwitchboardServer(configuration: config, clock: clock, logger: logger)
    if let webhook { server.gateway.webhook.configuration = webhook }
    try await server.start()
    let port = server.webSocketAddress!.port!
    let adminPort = server.adminAddress!.port!
    do {
        try await body(server, port, adminPort)
    } catch {
        try await server.shutdown()
        throw error
    }
    try await server.shutdown()
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(5), _ what: String,
                _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw TestTimeout(description: "not within \(timeout): \(what)")
}

/// The value of one Prometheus sample line (`name{labels} value`), nil if absent.
func metricValue(_ exposition: String, _ series: String) -> Double? {
    for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

func scrapeMetrics(adminPort: Int) async throws -> String {
    let response = try await HTTPTestClient.request(port: adminPort, uri: "/metrics")
    guard response.status == 200 else { throw TestTimeout(description: "/metrics answered \(response.status)") }
    return response.text
}

// MARK: A state-change receiver

/// An HTTP receiver on a loopback port chosen by the kernel, recording every request.
final class WebhookReceiver: Sendable {
    enum Mode: Sendable {
        /// Answers every request with this status and Tencent's OK body.
        case answer(Int)
        /// Reads requests and never answers.
        case silent
    }

    struct Received: Sendable {
        let uri: String
        let body: JSONValue?

        var query: [String: String] { AdminAPI.split(uri).query }
    }

    private let channel: any Channel
    private let received: Mutex<[Received]>

    let port: Int

    private init(channel: any Channel) {
        self.channel = channel
        self.received = Mutex([])
        self.port = channel.localAddress!.port!
    }

    static func start(mode: Mode) async throws -> WebhookReceiver {
        let box = ReceiverBox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(ReceiverHandler(mode: mode, box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let receiver = WebhookReceiver(channel: channel)
        box.receiver.withLock { $0 = receiver }
        return receiver
    }

    var url: String { "http://127.0.0.1:\(port)/state" }

    var requests: [Received] { received.withLock { $0 } }

    fileprivate func record(_ item: Received) { received.withLock { $0.append(item) } }

    /// Waits until `count` requests have come.
    @discardableResult
    func wait(for count: Int, timeout: Duration = .seconds(5)) async throws -> [Received] {
        try await eventually(timeout: timeout, "\(count) state callbacks (have \(requests.count))") {
            requests.count >= count
        }
        return requests
    }

    func stop() async {
        try? await channel.close()
    }
}

private final class ReceiverBox: Sendable {
    let receiver = Mutex<WebhookReceiver?>(nil)
}

private final class ReceiverHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let mode: WebhookReceiver.Mode
    private let box: ReceiverBox
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(mode: WebhookReceiver.Mode, box: ReceiverBox) {
        self.mode = mode
        self.box = box
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(let buffer):
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            box.receiver.withLock { $0 }?.record(.init(uri: head.uri, body: try? JSONParser.parse(body)))
            guard case .answer(let code) = mode else { return }
            let reply = Array(#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}"#.utf8)
            let headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", String(reply.count))])
            context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version,
                                                                      status: HTTPResponseStatus(statusCode: code),
                                                                      headers: headers))), promise: nil)
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: reply)))), promise: nil)
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// A configuration with the test app (and a second one) for the admin tests.
let otherAppID: UInt64 = 1_400_000_099
let otherAppKey = "another-app-secret-key-0123456789"

func adminTestConfiguration(policy: LoginPolicy.Kind = .dual, maxInstances: [Platform: Int] = [:],
                            callbackURL: String = "", heartbeat: Double = 30) -> ServerConfiguration {
    var config = testConfiguration(policy: policy, maxInstances: maxInstances, heartbeat: heartbeat)
    config.apps = [
        AppConfiguration(sdkAppID: testAppID, secretKey: testKey,
                         policy: try! LoginPolicy(kind: policy, maxInstances: maxInstances),
                         stateCallbackURL: callbackURL),
        AppConfiguration(sdkAppID: otherAppID, secretKey: otherAppKey, adminUser: "boss"),
    ]
    return config
}
