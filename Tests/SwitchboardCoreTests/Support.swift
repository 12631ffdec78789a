import Synchronization
import Testing
import SwitchboardCore
import SwitchboardProtocol
import UserSig

// Shared fixtures of the SwitchboardCore tests. Time comes only from a ManualClock.

let testAppID: UInt64 = 1_400_000_000
let otherAppID: UInt64 = 1_400_000_001
let testSecret = "switchboard-core-tests-secret-0123456789abcdef"
/// 2023-11-14T22:13:20Z.
let testEpochMillis: Int64 = 1_700_000_000_000

/// The §5 table, written out by wire name, independently of `LoginPolicy.group(of:)`.
let specGroups: [LoginPolicy.Kind: [[String]]] = [
    .single: [["Android", "iPhone", "iPad", "Windows", "Mac", "Linux", "Web"]],
    .dual: [["Android", "iPhone", "iPad", "Windows", "Mac", "Linux"], ["Web"]],
    .triple: [["Android", "iPhone", "iPad"], ["Windows", "Mac", "Linux"], ["Web"]],
    .multi: [["Android"], ["iPhone"], ["iPad"], ["Windows"], ["Mac"], ["Linux"], ["Web"]],
]

/// Whether the spec puts `a` and `b` in one group of `kind`.
func specSameGroup(_ kind: LoginPolicy.Kind, _ a: Platform, _ b: Platform) -> Bool {
    specGroups[kind]!.contains { $0.contains(a.rawValue) && $0.contains(b.rawValue) }
}

/// The spec group (index into `specGroups[kind]`) of a platform.
func specGroupIndex(_ kind: LoginPolicy.Kind, _ p: Platform) -> Int {
    specGroups[kind]!.firstIndex { $0.contains(p.rawValue) }!
}

/// §3's platforms, by wire name.
let allPlatforms: [Platform] = ["Android", "iPhone", "iPad", "Windows", "Mac", "Linux", "Web"].map { Platform(rawValue: $0)! }

/// A connection's side of the table: records every delivery, in order.
final class RecordingSink: SessionSink {
    private let log = Mutex<[SessionDelivery]>([])

    func deliver(_ delivery: SessionDelivery) {
        log.withLock { $0.append(delivery) }
    }

    var deliveries: [SessionDelivery] { log.withLock { $0 } }

    /// Live events (`.event`), in order.
    var events: [SessionEvent] {
        deliveries.compactMap { if case .event(_, let e) = $0 { e } else { nil } }
    }

    /// `.kicked` deliveries as (sessionID, event).
    var kicks: [(sessionID: String, event: SessionEvent)] {
        deliveries.compactMap { if case .kicked(let id, let e) = $0 { (id, e) } else { nil } }
    }

    /// Session IDs of `.resumedElsewhere` deliveries.
    var movedAway: [String] {
        deliveries.compactMap { if case .resumedElsewhere(let id) = $0 { id } else { nil } }
    }
}

enum ConnectionIDs {
    private static let counter = Mutex<UInt64>(0)
    static func next() -> UInt64 { counter.withLock { $0 += 1; return $0 } }
}

func newConnection(_ sink: RecordingSink = RecordingSink()) -> ConnectionRef {
    ConnectionRef(id: ConnectionIDs.next(), sink: sink)
}

/// One logged-in connection.
struct Client {
    var info: SessionInfo
    var connection: ConnectionRef
    var sink: RecordingSink
    /// The platforms `login` said it kicked, earliest instance first.
    var kickedPlatforms: [Platform]
    /// How many instances `login` said it kicked.
    var kicked: Int { kickedPlatforms.count }

    var sessionID: String { info.sessionID }
    var connectionID: UInt64 { connection.id }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A session table with a manual clock, one app, and UserSigs checked the way the gateway does.
final class Harness: Sendable {
    let clock: ManualClock
    let table: SessionTable
    let registry: AppRegistry
    let authenticator: Authenticator
    let app: AppConfiguration

    init(policy: LoginPolicy = try! LoginPolicy(), resumeWindow: Int64 = 120, resumeBuffer: Int = 1000,
         shardCount: Int = 64, nowMillis: Int64 = testEpochMillis) {
        clock = ManualClock(millis: nowMillis)
        table = SessionTable(configuration: SessionTableConfiguration(resumeWindowSeconds: resumeWindow,
                                                                      resumeBuffer: resumeBuffer,
                                                                      shardCount: shardCount),
                             clock: clock)
        app = AppConfiguration(sdkAppID: testAppID, secretKey: testSecret, policy: policy)
        registry = AppRegistry([app, AppConfiguration(sdkAppID: otherAppID, secretKey: testSecret, policy: policy)])
        authenticator = Authenticator(apps: registry, clock: clock)
    }

    var nowSeconds: Int64 { clock.nowMillis() / 1000 }

    /// A UserSig for `user`, issued now (or at `issuedAt`), valid `expire` seconds.
    func sig(_ user: String, app sdkAppID: UInt64 = testAppID, expire: Int64 = 86_400, issuedAt: Int64? = nil) -> String {
        TLSSigAPIv2.issue(sdkAppID: sdkAppID, key: UserSigKey(secret: testSecret), identifier: user,
                          expire: expire, userbuf: nil, time: issuedAt ?? nowSeconds)
    }

    /// A verified ticket, as the gateway has before it calls `SessionTable.login`.
    func ticket(_ user: String, app sdkAppID: UInt64 = testAppID, expire: Int64 = 86_400,
                issuedAt: Int64? = nil) throws -> UserSigTicket {
        try authenticator.verify(sdkAppID: sdkAppID, userID: user,
                                 userSig: sig(user, app: sdkAppID, expire: expire, issuedAt: issuedAt)).1
    }

    /// Logs in through the Authenticator and the table; the raw result.
    func attemptLogin(_ user: String, _ platform: Platform, sink: RecordingSink = RecordingSink(),
                      expire: Int64 = 86_400, issuedAt: Int64? = nil, app: AppConfiguration? = nil,
                      connection: ConnectionRef? = nil) throws -> LoginResult {
        let app = app ?? self.app
        let ticket = try ticket(user, app: app.sdkAppID, expire: expire, issuedAt: issuedAt)
        return table.login(app: app, userID: user, platform: platform, ticket: ticket,
                           connection: connection ?? newConnection(sink))
    }

    /// Logs in and requires success.
    func login(_ user: String, _ platform: Platform, sink: RecordingSink = RecordingSink(),
               expire: Int64 = 86_400, issuedAt: Int64? = nil, app: AppConfiguration? = nil) throws -> Client {
        let connection = newConnection(sink)
        let result = try attemptLogin(user, platform, sink: sink, expire: expire, issuedAt: issuedAt, app: app,
                                      connection: connection)
        switch result {
        case .success(let info, let kicked):
            return Client(info: info, connection: connection, sink: sink, kickedPlatforms: kicked)
        case .failure(let code, let desc):
            throw TestFailure("login of \(user) on \(platform.rawValue) failed: \(code) \(desc)")
        }
    }

    /// Resumes `client`'s session on a new connection.
    func resume(_ client: Client, lastSeq: UInt64, sink: RecordingSink = RecordingSink(),
                token: String? = nil) -> (ResumeResult, Client) {
        let connection = newConnection(sink)
        let result = table.resume(sessionID: client.sessionID, resumeToken: token ?? client.info.resumeToken,
                                  lastSeq: lastSeq, connection: connection)
        var moved = client
        moved.connection = connection
        moved.sink = sink
        moved.kickedPlatforms = []
        if case .success(let info, _) = result { moved.info = info }
        return (result, moved)
    }

    @discardableResult
    func detach(_ client: Client) -> Int64? {
        table.detach(sessionID: client.sessionID, connectionID: client.connectionID)
    }

    /// Sends a message with payload `{"n": n}` from `client` to `to`.
    @discardableResult
    func send(from client: Client, to: String, n: Int) -> SendResult {
        table.send(from: client.info, to: to, payload: .object(["n": .number(JSONNumber(n))]))
    }

    func platforms(of user: String) -> [Platform]? {
        table.instances(app: testAppID, userID: user)?.map(\.platform)
    }
}

extension LoginResult {
    var failureCode: ErrorCode? {
        if case .failure(let code, _) = self { code } else { nil }
    }

    var session: SessionInfo? {
        if case .success(let info, _) = self { info } else { nil }
    }
}

extension ResumeResult {
    var failureCode: ErrorCode? {
        if case .failure(let code, _) = self { code } else { nil }
    }

    /// The replayed events of a successful resume.
    var replay: [SessionEvent]? {
        if case .success(_, let replay) = self { replay } else { nil }
    }

    var session: SessionInfo? {
        if case .success(let info, _) = self { info } else { nil }
    }
}

/// The parsed `data` of an event.
func json(_ event: SessionEvent) throws -> JSONValue {
    try JSONParser.parse(event.data)
}

/// `n` of a message payload `{"n": n}`.
func payloadNumber(_ event: SessionEvent) throws -> Int64? {
    try json(event)["payload"]?["n"]?.int64Value
}

func kickData(reason: String, byPlatform: Platform?) -> JSONValue {
    var object: JSONObject = ["reason": .string(reason)]
    if let byPlatform { object = ["reason": .string(reason), "byPlatform": .string(byPlatform.rawValue)] }
    return .object(object)
}

/// The data of the first kick a sink received; nil when it received none.
func firstKickData(_ sink: RecordingSink) throws -> JSONValue? {
    guard let kick = sink.kicks.first else { return nil }
    return try json(kick.event)
}
