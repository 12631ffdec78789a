import Foundation
import Logging
import NIOCore
import NIOPosix
import SwitchboardClient
import SwitchboardCore
import SwitchboardProtocol
import SwitchboardServer
import Synchronization
import Testing
import UserSig

let testAppID: UInt64 = 1_400_000_000
let testKey = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
let testUserSigKey = UserSigKey(secret: testKey)

func makeSig(_ user: String, expire: Int64 = 86_400, time: Int64? = nil, key: UserSigKey = testUserSigKey) -> String {
    TLSSigAPIv2.issue(sdkAppID: testAppID, key: key, identifier: user, expire: expire,
                      time: time ?? Int64(Date().timeIntervalSince1970))
}

func serverConfiguration(policy: LoginPolicy.Kind = .dual, heartbeat: Double = 30, resumeWindow: Int64 = 120,
                         resumeBuffer: Int = 1000, port: Int = 0) -> ServerConfiguration {
    var config = ServerConfiguration(apps: [
        AppConfiguration(sdkAppID: testAppID, secretKey: testKey, policy: try! LoginPolicy(kind: policy, maxInstances: [:])),
    ])
    config.listen = .init(host: "127.0.0.1", port: port)
    config.admin = .init(host: "127.0.0.1", port: 0)
    config.heartbeatSeconds = heartbeat
    config.resumeWindowSeconds = resumeWindow
    config.resumeBuffer = resumeBuffer
    config.threads = 1
    return config
}

func startServer(_ config: ServerConfiguration) async throws -> SwitchboardServer {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    let server = SwitchboardServer(configuration: config, logger: logger)
    try await server.start()
    return server
}

/// A real server on a loopback port chosen by the kernel, shut down after `body`.
func withServer(_ config: ServerConfiguration, _ body: (SwitchboardServer, Int) async throws -> Void) async throws {
    let server = try await startServer(config)
    let port = server.webSocketAddress!.port!
    do {
        try await body(server, port)
    } catch {
        try await server.shutdown()
        throw error
    }
    try await server.shutdown()
}

extension SwitchboardServer {
    /// The server's view of a user: its instances, attached or detached.
    func instances(of user: String) -> [InstanceStatus] {
        gateway.table.instances(app: testAppID, userID: user) ?? []
    }

    /// The same as words: `["iPhone attached"]`.
    func summary(of user: String) -> [String] {
        instances(of: user).map { "\($0.platform.rawValue) \($0.attached ? "attached" : "detached")" }
    }
}

/// An SDK client configured for fast tests: small backoff, short timeouts.
func makeManager(port: Int, platform: Platform = .iPhone, scheme: String = "ws", host: String = "127.0.0.1",
                 seed: UInt64 = 1, deadAfter: TimeAmount? = nil,
                 tweak: (inout SwitchboardManager.Configuration) -> Void = { _ in }) throws -> SwitchboardManager {
    var configuration = SwitchboardManager.Configuration(url: "\(scheme)://\(host):\(port)/ws", sdkAppID: testAppID,
                                                         platform: platform)
    configuration.reconnect = ReconnectPolicy(initialDelay: .milliseconds(20), maxDelay: .milliseconds(200),
                                              multiplier: 2, jitter: 0.5, immediateFirstRetry: true,
                                              resetAfter: .seconds(1))
    configuration.connectTimeout = .seconds(2)
    configuration.requestTimeout = .seconds(5)
    configuration.deadConnectionTimeout = deadAfter
    configuration.randomSeed = seed
    tweak(&configuration)
    return try SwitchboardManager(configuration: configuration)
}

/// What a listener was told, in order.
enum Heard: Sendable, Hashable {
    case connecting
    case connectSuccess
    case connectFailed(Int)
    case kickedOffline
    case userSigExpired
}

final class RecordingListener: SwitchboardSDKListener {
    private let heard = Mutex<[Heard]>([])
    private let failures = Mutex<[String]>([])

    /// The `desc` of each `onConnectFailed`.
    var failureDescriptions: [String] { failures.withLock { $0 } }

    var events: [Heard] { heard.withLock { $0 } }
    var last: Heard? { heard.withLock { $0.last } }

    func count(_ event: Heard) -> Int { heard.withLock { $0.filter { $0 == event }.count } }

    func onConnecting() { heard.withLock { $0.append(.connecting) } }
    func onConnectSuccess() { heard.withLock { $0.append(.connectSuccess) } }
    func onConnectFailed(code: Int, desc: String) {
        failures.withLock { $0.append(desc) }
        heard.withLock { $0.append(.connectFailed(code)) }
    }
    func onKickedOffline() { heard.withLock { $0.append(.kickedOffline) } }
    func onUserSigExpired() { heard.withLock { $0.append(.userSigExpired) } }

    /// Each `connecting` is followed by exactly one success or failure before the next.
    var attemptsAreWellFormed: Bool {
        var open = false
        for event in events {
            switch event {
            case .connecting:
                if open { return false }
                open = true
            case .connectSuccess:
                if !open { return false }
                open = false
            case .connectFailed:
                open = false
            case .kickedOffline, .userSigExpired:
                if open { return false }
            }
        }
        return true
    }
}

struct Timeout: Error, CustomStringConvertible {
    let description: String
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(_ what: String, timeout: Duration = .seconds(5), _ condition: () async -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(5))
    }
    if await condition() { return }
    throw Timeout(description: "timed out waiting for: \(what)")
}

/// Collects a manager's messages in the background.
final class Inbox: Sendable {
    private final class Storage: Sendable {
        let messages = Mutex<[IncomingMessage]>([])
    }

    private let storage = Storage()
    private let task: Task<Void, Never>

    init(_ manager: SwitchboardManager) {
        let stream = manager.messages
        let storage = self.storage
        task = Task {
            for await message in stream {
                storage.messages.withLock { $0.append(message) }
            }
        }
    }

    var messages: [IncomingMessage] { storage.messages.withLock { $0 } }
    var count: Int { storage.messages.withLock { $0.count } }

    func next(after count: Int, timeout: Duration = .seconds(5)) async throws -> IncomingMessage {
        try await eventually("message \(count + 1)", timeout: timeout) { self.count > count }
        return storage.messages.withLock { $0[count] }
    }

    deinit {
        task.cancel()
    }
}
