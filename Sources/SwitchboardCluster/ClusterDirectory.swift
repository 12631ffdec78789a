public import Logging
public import NIOCore
public import SwitchboardCore
public import SwitchboardProtocol
public import UserSig
import Synchronization

/// Settings of cluster mode.
public struct ClusterConfiguration: Sendable {
    /// `redis://[user:password@]host[:port][/db]`
    public var redis: String
    /// Seconds a silent node is presumed alive; liveness is renewed every third of it.
    public var nodeTTLSeconds: Double
    public var resumeWindowSeconds: Int64
    public var resumeBuffer: Int

    public init(redis: String, nodeTTLSeconds: Double = 10, resumeWindowSeconds: Int64 = 120, resumeBuffer: Int = 1000) {
        self.redis = redis
        self.nodeTTLSeconds = nodeTTLSeconds
        self.resumeWindowSeconds = resumeWindowSeconds
        self.resumeBuffer = resumeBuffer
    }
}

/// The sessions of every node of a cluster, kept in Redis (see `ClusterScripts` for the keys).
///
/// Each node holds its own connections; the store holds every session, its buffer and the
/// user's policy state. A login, resume or delivery is one Lua script on the user's keys; what it
/// means for a connection on some node (an event, a kick, a takeover) is published on that
/// node's channel from inside the script and handed to the connection by `route`.
///
/// Connections of this node are kept in `routes`, by connection ID. A route is registered before
/// the script that may publish to it runs; until the script's answer is handed to the connection
/// (on its loop) deliveries wait in the route, so a connection always sees its reply first.
public final class ClusterDirectory: SessionDirectory {
    public let configuration: ClusterConfiguration
    private let url: RedisURL?
    private let client: RedisClient?
    private let subscriber: Mutex<RedisSubscriber?> = Mutex(nil)
    private let group: any EventLoopGroup
    private let clock: any WallClock
    private let logger: Logger
    private let state = Mutex(State())
    /// This node's connections by connection ID, in shards: a delivery locks one shard, never
    /// every connection of the node.
    private let routeShards: [RouteShard] = (0..<routeShardCount).map { _ in RouteShard() }
    private static let routeShardCount = 32
    private let available = Atomic<Bool>(false)
    /// Distinguishes this process from an earlier one with the same node ID: connection IDs
    /// restart at 1, and a dead incarnation's sessions must not pass for this one's.
    public let incarnation: String
    private let messagePrefix: String
    private let messageCounter = Atomic<UInt64>(0)
    private let window: Int64

    struct Route {
        let sessionID: String
        let connection: ConnectionRef
        var app: UInt64
        var userID: String
        var platform: Platform
        var userSigTime: Int64
        var userSigExpireAt: Int64
        /// The highest seq handed to the connection.
        var lastSeq: UInt64
        /// False until the login or resume answer has been handed to the connection.
        var ready: Bool
        var waiting: [SessionDelivery] = []
    }

    /// What a node settles with the store once it is back: ends and detaches decided meanwhile.
    struct Settlement {
        enum Kind { case detach, end(ErrorCode) }
        let kind: Kind
        let app: UInt64
        let userID: String
        let sessionID: String
        let connection: String
    }

    struct State {
        var nodeID = ""
        var started = false
        var closed = false
        var settlements: [Settlement] = []
        var clientUp = false
        var subscriberUp = false
        var resyncRunning = false
        var resyncAgain = false
        var cleanedOwnLeftovers = false
        var liveness: RepeatedTask?
        /// The store's identity (`sb:epoch`): a store that came back empty has a new one.
        var epoch: String?
        /// The other nodes last seen in `sb:nodes`.
        var peers: Set<String> = []
    }

    /// Settlements kept while the store is away; past this the oldest are dropped (their
    /// sessions then end with their resume window or their node's liveness).
    static let maxSettlements = 100_000

    public init(configuration: ClusterConfiguration, group: any EventLoopGroup, clock: any WallClock, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.clock = clock
        self.logger = logger
        self.window = configuration.resumeWindowSeconds * 1000
        self.incarnation = Base64URL.random(8)
        self.messagePrefix = Base64URL.random(6)
        do {
            let url = try RedisURL(configuration.redis)
            self.url = url
            let timeout = TimeAmount.milliseconds(Int64(max(0.2, configuration.nodeTTLSeconds / 2) * 1000))
            let box = WeakBox()
            self.client = RedisClient(url: url, group: group, requestTimeout: timeout, logger: logger,
                                      onStateChange: { up in box.value?.clientChanged(up) })
            box.value = self
        } catch {
            logger.error("cluster store URL is not valid", metadata: ["error": "\(error)"])
            self.url = nil
            self.client = nil
        }
    }

    public var isAvailable: Bool { available.load(ordering: .acquiring) }

    /// The store's URL as it may be shown (no password).
    public var storeDescription: String { url.map { "\($0)" } ?? "(invalid URL)" }

    /// Connects to the store and joins the cluster as `nodeID`. Returns at once: `isAvailable`
    /// turns true once the store answers and this node's state is registered.
    public func start(nodeID: String) {
        guard let client, let url else { return }
        let first = state.withLock { state -> Bool in
            guard !state.started else { return false }
            state.started = true
            state.nodeID = nodeID
            return true
        }
        guard first else { return }
        let box = WeakBox()
        let subscriber = RedisSubscriber(
            url: url, group: group, channels: [Self.channel(nodeID)], logger: logger,
            onMessage: { _, payload in box.value?.received(payload) },
            onStateChange: { up in box.value?.subscriberChanged(up) })
        box.value = self
        self.subscriber.withLock { $0 = subscriber }
        let interval = TimeAmount.milliseconds(Int64(configuration.nodeTTLSeconds * 1000 / 3))
        let task = client.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            self?.livenessTick()
        }
        state.withLock { $0.liveness = task }
        client.start()
        subscriber.start()
    }

    /// Leaves the cluster: detaches the sessions still held here (their clients resume
    /// elsewhere), drops the liveness key, and closes the store connections.
    public func shutdown() async {
        guard let client else { return }
        let (nodeID, task) = state.withLock { state -> (String, RepeatedTask?) in
            state.closed = true
            return (state.nodeID, state.liveness)
        }
        let routes = allRoutes(clearing: true)
        available.store(false, ordering: .releasing)
        task?.cancel()
        if client.isConnected {
            var pending: [EventLoopFuture<RESPValue>] = []
            for route in routes where route.ready {
                pending.append(client.eval(ClusterScripts.detach, keys: Self.keys(route.app, route.userID),
                                           arguments: [.string(route.sessionID), .string(nodeID),
                                                       .string(connectionToken(route.connection.id)), .int(window)]))
            }
            pending.append(client.send(["DEL", .string(Self.liveKey(nodeID)), .string(Self.nodeSessionsKey(nodeID))]))
            pending.append(client.send(["SREM", "sb:nodes", .string(nodeID)]))
            for future in pending { _ = try? await future.get() }
        }
        _ = try? await subscriber.withLock({ $0 })?.close().get()
        _ = try? await client.close().get()
    }

    // MARK: Connections

    public func login(app: AppConfiguration, userID: String, platform: Platform, ticket: UserSigTicket,
                      connection: ConnectionRef, executor: any DirectoryExecutor,
                      then: @escaping @Sendable (LoginResult) -> Void) {
        guard let client, isAvailable else {
            then(.failure(.serverBusy, Self.unreachable))
            return
        }
        let sessionID = Base64URL.random(14)
        let resumeToken = Base64URL.random(15)
        let nodeID = registerRoute(Route(sessionID: sessionID, connection: connection, app: app.sdkAppID, userID: userID,
                                         platform: platform, userSigTime: ticket.time,
                                         userSigExpireAt: ticket.expiresAt, lastSeq: 0, ready: false))
        let token = connectionToken(connection.id)
        let now = clock.nowMillis()
        // The resume token and the way from a session ID to its user: as long as the session can live.
        let ttl = max(1000, ticket.expiresAt * 1000 - now) + window + 60_000
        _ = client.send(["SET", .string(Self.sessionKey(sessionID)),
                         .string("\(app.sdkAppID)|\(resumeToken)|\(userID)"), "PX", .int(ttl)])
        let policy = app.policy
        let groups = Platform.allCases.map { "\($0.rawValue):\(policy.group(of: $0))" }.joined(separator: ",")
        client.eval(ClusterScripts.login, keys: Self.keys(app.sdkAppID, userID),
                    arguments: [.string(sessionID), .string(nodeID), .string(token), .string(platform.rawValue),
                                .int(ticket.time), .int(ticket.expiresAt), .int(window), .string(groups),
                                .int(Int64(policy.maxInstances(on: platform))),
                                .bytes(SessionTable.kickData(reason: "multiDevice", byPlatform: platform))])
            .whenComplete { result in
                switch result {
                case .success(let reply):
                    let items = reply.array ?? []
                    let code = items.first?.int ?? -1
                    guard code == 0 else {
                        self.dropRoute(connection.id)
                        _ = client.send(["DEL", .string(Self.sessionKey(sessionID))])
                        let error = Self.failure(code == -1 ? .serverBusy : ErrorCode(rawValue: Int(code)))
                        executor.execute { then(.failure(error.code, error.desc)) }
                        return
                    }
                    let kicked = items.dropFirst().compactMap { $0.string.flatMap(Platform.init(rawValue:)) }
                    let day = Int32(truncatingIfNeeded: self.clock.nowMillis() / 86_400_000)
                    let dau = "sb:dau:\(app.sdkAppID):\(day)"
                    _ = client.pipeline([
                        ["SADD", .string(Self.nodeSessionsKey(nodeID)), .string(Self.member(app.sdkAppID, userID, sessionID))],
                        ["SADD", .string(Self.appUsersKey(app.sdkAppID)), .string(userID)],
                        ["SADD", .string(dau), .string(userID)],
                        ["EXPIRE", .string(dau), "172800"],
                    ])
                    let info = SessionInfo(sessionID: sessionID, resumeToken: resumeToken, sdkAppID: app.sdkAppID,
                                           userID: userID, platform: platform, userSigExpireAt: ticket.expiresAt)
                    self.answer(connection.id, seq: 0, executor: executor) { then(.success(info, kicked: kicked)) }
                case .failure(let error):
                    // The script may have run: leave nothing attached that no connection holds.
                    self.dropRoute(connection.id)
                    self.settle(Settlement(kind: .detach, app: app.sdkAppID, userID: userID, sessionID: sessionID,
                                           connection: token))
                    self.logger.warning("login failed on the cluster store", metadata: ["error": "\(error)"])
                    executor.execute { then(.failure(.serverBusy, Self.unreachable)) }
                }
            }
    }

    public func resume(sessionID: String, resumeToken: String, lastSeq: UInt64, connection: ConnectionRef,
                       executor: any DirectoryExecutor, then: @escaping @Sendable (ResumeResult) -> Void) {
        guard let client, isAvailable else {
            then(.failure(.serverBusy, Self.unreachable))
            return
        }
        guard Base64URL.isDigits(sessionID, length: 14) else {
            then(.failure(.noSessionToResume, "unknown session"))
            return
        }
        client.send(["GET", .string(Self.sessionKey(sessionID))]).whenComplete { result in
            switch result {
            case .failure:
                executor.execute { then(.failure(.serverBusy, Self.unreachable)) }
            case .success(let value):
                guard let text = value.string, let entry = Self.parseSessionEntry(text),
                      constantTimeEquals(entry.token, resumeToken)
                else {
                    executor.execute { then(.failure(.noSessionToResume, "unknown session")) }
                    return
                }
                self.resume(sessionID: sessionID, app: entry.app, userID: entry.userID, resumeToken: resumeToken,
                            lastSeq: lastSeq, connection: connection, executor: executor, then: then)
            }
        }
    }

    private func resume(sessionID: String, app: UInt64, userID: String, resumeToken: String, lastSeq: UInt64,
                        connection: ConnectionRef, executor: any DirectoryExecutor,
                        then: @escaping @Sendable (ResumeResult) -> Void) {
        guard let client else { return }
        // Platform and UserSig are filled in from the store's answer.
        let nodeID = registerRoute(Route(sessionID: sessionID, connection: connection, app: app, userID: userID,
                                         platform: .web, userSigTime: 0, userSigExpireAt: 0, lastSeq: lastSeq,
                                         ready: false))
        let token = connectionToken(connection.id)
        client.eval(ClusterScripts.resume, keys: Self.keys(app, userID),
                    arguments: [.string(sessionID), .string(nodeID), .string(token), .int(Int64(lastSeq)), .int(window)])
            .whenComplete { result in
                switch result {
                case .success(let reply):
                    let items = reply.array ?? []
                    let code = items.first?.int ?? -1
                    guard code == 0, items.count >= 3, let platform = items[1].string.flatMap(Platform.init(rawValue:)),
                          let expireAt = items[2].int
                    else {
                        self.dropRoute(connection.id)
                        let error: RequestError = switch code {
                        case 6017: RequestError(.invalidParameters,
                                                "lastSeq \(lastSeq) is beyond the session's last event \(items.dropFirst().first?.int ?? 0)")
                        case 6014: RequestError(.notLoggedIn, "events after lastSeq are no longer buffered; log in again")
                        default: Self.failure(code <= 0 ? .serverBusy : ErrorCode(rawValue: Int(code)))
                        }
                        executor.execute { then(.failure(error.code, error.desc)) }
                        return
                    }
                    let replay = items.dropFirst(3).compactMap { Self.parseEvent($0) }
                    let last = replay.last?.seq ?? lastSeq
                    self.routeShard(for: connection.id).routes.withLock { routes in
                        routes[connection.id]?.platform = platform
                        routes[connection.id]?.userSigExpireAt = expireAt
                    }
                    _ = client.send(["SADD", .string(Self.nodeSessionsKey(nodeID)), .string(Self.member(app, userID, sessionID))])
                    let info = SessionInfo(sessionID: sessionID, resumeToken: resumeToken, sdkAppID: app, userID: userID,
                                           platform: platform, userSigExpireAt: expireAt)
                    self.answer(connection.id, seq: last, executor: executor) { then(.success(info, replay: replay)) }
                case .failure:
                    self.dropRoute(connection.id)
                    self.settle(Settlement(kind: .detach, app: app, userID: userID, sessionID: sessionID, connection: token))
                    executor.execute { then(.failure(.serverBusy, Self.unreachable)) }
                }
            }
    }

    public func logout(_ session: SessionInfo, connectionID: UInt64, executor: any DirectoryExecutor,
                       then: @escaping @Sendable () -> Void) {
        guard dropRoute(connectionID, sessionID: session.sessionID) else {
            then()
            return
        }
        let settlement = Settlement(kind: .end(.notLoggedIn), app: session.sdkAppID, userID: session.userID,
                                    sessionID: session.sessionID, connection: connectionToken(connectionID))
        guard let client, isAvailable else {
            settle(settlement)
            then()
            return
        }
        // Answered once the store has ended it: a resume elsewhere right after gets 6014.
        apply(settlement, client: client, nodeID: nodeID).whenComplete { result in
            if case .failure = result { self.settle(settlement) }
            executor.execute(then)
        }
    }

    public func expireUserSig(_ session: SessionInfo, connectionID: UInt64, writtenSeq: UInt64,
                              executor: any DirectoryExecutor, then: @escaping @Sendable (SessionEvent?) -> Void) {
        let held = routeShard(for: connectionID).routes.withLock { $0[connectionID]?.sessionID == session.sessionID }
        guard let client, held else {
            then(nil)
            return
        }
        let event: @Sendable (UInt64) -> SessionEvent = { seq in
            SessionEvent(seq: seq, name: .userSigExpired, data: Array("{}".utf8))
        }
        let settlement = Settlement(kind: .end(.userSigExpired), app: session.sdkAppID, userID: session.userID,
                                    sessionID: session.sessionID, connection: connectionToken(connectionID))
        guard isAvailable else {
            // Ended here at once, as the contract says; settled with the store once it is back.
            dropRoute(connectionID, sessionID: session.sessionID)
            settle(settlement)
            then(event(writtenSeq + 1))
            return
        }
        // The route stays until the store has answered: a kick or a takeover that ended the
        // session first still reaches the connection (which then ignores this answer).
        client.eval(ClusterScripts.end, keys: Self.keys(session.sdkAppID, session.userID),
                    arguments: [.string(session.sessionID), .string(nodeID), .string(settlement.connection),
                                .int(Int64(ErrorCode.userSigExpired.rawValue)), .int(window)])
            .whenComplete { result in
                self.dropRoute(connectionID, sessionID: session.sessionID)
                var seq = writtenSeq + 1
                switch result {
                case .success(let reply):
                    let items = reply.array ?? []
                    if items.first?.int == 1, let last = items.dropFirst().first?.int {
                        seq = max(UInt64(max(0, last)), writtenSeq) + 1
                    }
                case .failure:
                    self.settle(settlement)
                }
                // The UserSig lapsed whatever the store said: the connection's session ends.
                let final = seq
                executor.execute { then(event(final)) }
            }
    }

    public func renewUserSig(_ session: SessionInfo, connectionID: UInt64, ticket: UserSigTicket,
                             executor: any DirectoryExecutor, then: @escaping @Sendable (ErrorCode) -> Void) {
        guard let client, isAvailable else {
            then(.serverBusy)
            return
        }
        let now = clock.nowMillis()
        client.eval(ClusterScripts.renew, keys: Self.keys(session.sdkAppID, session.userID),
                    arguments: [.string(session.sessionID), .string(nodeID), .string(connectionToken(connectionID)),
                                .int(ticket.time), .int(ticket.expiresAt), .int(window)])
            .whenComplete { result in
                let code: ErrorCode
                switch result {
                case .success(let reply):
                    code = ErrorCode(rawValue: Int(reply.int ?? Int64(ErrorCode.serverBusy.rawValue)))
                case .failure:
                    code = .serverBusy
                }
                if code == .ok {
                    self.routeShard(for: connectionID).routes.withLock { routes in
                        if routes[connectionID]?.sessionID == session.sessionID {
                            routes[connectionID]?.userSigTime = ticket.time
                            routes[connectionID]?.userSigExpireAt = ticket.expiresAt
                        }
                    }
                    let ttl = max(1000, ticket.expiresAt * 1000 - now) + self.window + 60_000
                    _ = client.send(["PEXPIRE", .string(Self.sessionKey(session.sessionID)), .int(ttl)])
                }
                executor.execute { then(code) }
            }
    }

    public func detach(_ session: SessionInfo, connectionID: UInt64) -> Bool {
        guard dropRoute(connectionID, sessionID: session.sessionID) else { return false }
        settle(Settlement(kind: .detach, app: session.sdkAppID, userID: session.userID, sessionID: session.sessionID,
                          connection: connectionToken(connectionID)))
        return true
    }

    public func acknowledge(_ session: SessionInfo, connectionID: UInt64, through seq: UInt64) {
        // Best effort: an acknowledgement lost in an outage is made good by the next one.
        guard let client, isAvailable else { return }
        _ = client.eval(ClusterScripts.acknowledge, keys: Self.keys(session.sdkAppID, session.userID),
                        arguments: [.string(session.sessionID), .string(nodeID), .string(connectionToken(connectionID)),
                                    .int(Int64(seq))])
    }

    public func send(from sender: SessionInfo, to recipient: String, payload: JSONValue, executor: any DirectoryExecutor,
                     then: @escaping @Sendable (Result<SendResult, RequestError>) -> Void) {
        guard let client, isAvailable else {
            then(.failure(RequestError(.serverBusy, Self.unreachable)))
            return
        }
        let (msgID, data) = message(from: sender.userID, to: recipient, payload: payload)
        // Both scripts go out on one connection, in order: a sender's messages keep their order.
        let delivered = deliver(client, app: sender.sdkAppID, userID: recipient, except: "", data: data)
        let copied = recipient == sender.userID
            ? nil
            : deliver(client, app: sender.sdkAppID, userID: sender.userID, except: sender.sessionID, data: data)
        delivered.and(copied ?? client.eventLoop.makeSucceededFuture(.integer(0))).whenComplete { result in
            switch result {
            case .success(let (reply, _)):
                let online = Int(reply.int ?? 0)
                executor.execute { then(.success(SendResult(msgID: msgID, online: online))) }
            case .failure:
                executor.execute { then(.failure(RequestError(.serverBusy, Self.unreachable))) }
            }
        }
    }

    // MARK: Admin

    public func adminKick(app: UInt64, userID: String) throws(RequestError) -> Int? {
        let client = try readyClient()
        let reply = try wait(client.eval(ClusterScripts.adminKick, keys: Self.keys(app, userID),
                                         arguments: [.bytes(SessionTable.kickData(reason: "admin", byPlatform: nil)),
                                                     .int(window)]))
        guard let count = reply.int, count >= 0 else { return nil }
        return Int(count)
    }

    public func instances(app: UInt64, userIDs: [String]) throws(RequestError) -> [[InstanceStatus]?] {
        let client = try readyClient()
        let futures = userIDs.map { userID in
            client.eval(ClusterScripts.instances, keys: Self.keys(app, userID), arguments: [.int(window)])
        }
        var out: [[InstanceStatus]?] = []
        for future in futures {
            let reply = try wait(future)
            guard let items = reply.array else {
                out.append(nil)
                continue
            }
            var list: [InstanceStatus] = []
            var i = 0
            while i + 1 < items.count {
                if let platform = items[i].string.flatMap(Platform.init(rawValue:)) {
                    list.append(InstanceStatus(platform: platform, attached: items[i + 1].int == 1))
                }
                i += 2
            }
            out.append(list)
        }
        return out
    }

    public func push(app: UInt64, from adminUser: String, to recipients: [String], payload: JSONValue)
        throws(RequestError) -> [SendResult] {
        let client = try readyClient()
        let sends = recipients.map { recipient in
            let (msgID, data) = message(from: adminUser, to: recipient, payload: payload)
            return (msgID, deliver(client, app: app, userID: recipient, except: "", data: data))
        }
        var out: [SendResult] = []
        for (msgID, future) in sends {
            out.append(SendResult(msgID: msgID, online: Int(try wait(future).int ?? 0)))
        }
        return out
    }

    /// Counts across the cluster: every user of the app with sessions is read (a scan of
    /// `sb:a:<app>`, a script per user, pipelined): fine for an admin call, not for a hot path.
    public func counts(app: UInt64) throws(RequestError) -> SessionCounts {
        let client = try readyClient()
        var counts = SessionCounts()
        let day = Int32(truncatingIfNeeded: clock.nowMillis() / 86_400_000)
        counts.dau = Int(try wait(client.send(["SCARD", .string("sb:dau:\(app):\(day)")])).int ?? 0)
        let usersKey = Self.appUsersKey(app)
        var cursor = "0"
        repeat {
            let page = try wait(client.send(["SSCAN", .string(usersKey), .string(cursor), "COUNT", "500"]))
            guard let parts = page.array, parts.count == 2, let next = parts[0].string else {
                throw RequestError(.serverBusy, "unexpected answer from the cluster store")
            }
            cursor = next
            let users = (parts[1].array ?? []).compactMap(\.string)
            let futures = users.map { userID in
                client.eval(ClusterScripts.instances, keys: Self.keys(app, userID), arguments: [.int(window)])
            }
            var gone: [String] = []
            for (userID, future) in zip(users, futures) {
                let items = try wait(future).array ?? []
                if items.isEmpty { gone.append(userID) }
                var online = false
                var i = 0
                while i + 1 < items.count {
                    if items[i + 1].int == 1 {
                        counts.attached += 1
                        online = true
                        if let platform = items[i].string.flatMap(Platform.init(rawValue:)) {
                            counts.byPlatform[platform, default: 0] += 1
                        }
                    } else {
                        counts.detached += 1
                    }
                    i += 2
                }
                if online { counts.usersOnline += 1 }
            }
            if !gone.isEmpty {
                // Users without sessions leave the index (a login puts them back).
                _ = client.send(["SREM", .string(usersKey)] + gone.map { .string($0) })
            }
        } while cursor != "0"
        return counts
    }

    /// This node's share of an app's sessions, for its metrics: the sessions attached here and
    /// their users (detached sessions live in the store only; `counts` reads them). Summed over
    /// the nodes, attached sessions and platforms are the cluster's; users are not (one user may
    /// be attached on several nodes).
    public func localCounts(app: UInt64) -> SessionCounts {
        var counts = SessionCounts()
        var users = Set<String>()
        for route in allRoutes() where route.ready && route.app == app {
            counts.attached += 1
            counts.byPlatform[route.platform, default: 0] += 1
            users.insert(route.userID)
        }
        counts.usersOnline = users.count
        return counts
    }

    /// Today's DAU of an app, cluster-wide (one `SCARD`; blocking: never on an event loop). Nil
    /// while the store is unreachable.
    public func dau(app: UInt64) -> Int? {
        guard let client = try? readyClient() else { return nil }
        let day = Int32(truncatingIfNeeded: clock.nowMillis() / 86_400_000)
        guard let reply = try? wait(client.send(["SCARD", .string("sb:dau:\(app):\(day)")])) else { return nil }
        return reply.int.map { Int($0) }
    }

    // MARK: Routes

    private func routeShard(for connectionID: UInt64) -> RouteShard {
        routeShards[Int(truncatingIfNeeded: connectionID % UInt64(Self.routeShardCount))]
    }

    /// Every route, shard by shard (emptied when `clearing`).
    private func allRoutes(clearing: Bool = false) -> [Route] {
        var all: [Route] = []
        for shard in routeShards {
            shard.routes.withLock { routes in
                all.append(contentsOf: routes.values)
                if clearing { routes = [:] }
            }
        }
        return all
    }

    /// Registers a connection's route; returns this node's ID.
    private func registerRoute(_ route: Route) -> String {
        routeShard(for: route.connection.id).routes.withLock { $0[route.connection.id] = route }
        return nodeID
    }

    /// Forgets a connection's route (only the given session's, when one is given).
    @discardableResult
    private func dropRoute(_ connectionID: UInt64, sessionID: String? = nil) -> Bool {
        routeShard(for: connectionID).routes.withLock { routes in
            guard let route = routes[connectionID] else { return false }
            if let sessionID, route.sessionID != sessionID { return false }
            routes[connectionID] = nil
            return true
        }
    }

    /// Hands a login's or resume's answer to its connection, then what arrived for it meanwhile.
    /// Both are queued on the connection's loop under the lock that deliveries take, so the
    /// answer comes first.
    private func answer(_ connectionID: UInt64, seq: UInt64, executor: any DirectoryExecutor,
                        _ work: @escaping @Sendable () -> Void) {
        let ended = routeShard(for: connectionID).routes.withLock { routes -> Route? in
            guard var route = routes[connectionID] else {
                executor.execute(work)  // the connection went away; it detaches what it was given
                return nil
            }
            executor.execute(work)
            route.ready = true
            route.lastSeq = max(route.lastSeq, seq)
            let waiting = route.waiting
            route.waiting = []
            // A kick or a takeover that came meanwhile ends the route once it is handed over.
            let ends = waiting.contains { if case .event = $0 { false } else { true } }
            routes[connectionID] = ends ? nil : route
            for delivery in waiting {
                route.connection.sink.deliver(delivery)
            }
            return ends ? route : nil
        }
        if let ended { unlist(ended) }
    }

    /// A message on this node's channel: `E|K|R sessionID connection seq[\ndata]`, or `X - - 0`
    /// (this node was released as dead).
    private func received(_ payload: ByteBuffer) {
        let bytes = Array(payload.readableBytesView)
        let headEnd = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
        let head = String(decoding: bytes[..<headEnd], as: UTF8.self).split(separator: " ")
        guard head.count == 4, let seq = UInt64(head[3]) else {
            logger.warning("malformed message on the node channel")
            return
        }
        if head[0] == "X" {
            // Another node took this one for dead and released its sessions: register them again.
            logger.warning("this node was taken for dead; registering its sessions again")
            resync()
            return
        }
        let sessionID = String(head[1])
        let data = headEnd < bytes.endIndex ? Array(bytes[(headEnd + 1)...]) : []
        let connection = head[2]
        guard let dot = connection.firstIndex(of: "."), connection[..<dot] == incarnation[...],
              let connectionID = UInt64(connection[connection.index(after: dot)...])
        else { return }  // for an earlier incarnation of this node: nobody here holds it
        let delivery: SessionDelivery
        switch head[0] {
        case "E": delivery = .event(sessionID: sessionID, SessionEvent(seq: seq, name: .message, data: data))
        case "K": delivery = .kicked(sessionID: sessionID, SessionEvent(seq: seq, name: .kickedOffline, data: data))
        case "R": delivery = .resumedElsewhere(sessionID: sessionID)
        default: return
        }
        route(delivery, to: connectionID, sessionID: sessionID, seq: seq)
    }

    private func route(_ delivery: SessionDelivery, to connectionID: UInt64, sessionID: String, seq: UInt64) {
        let ended = routeShard(for: connectionID).routes.withLock { routes -> Route? in
            guard var route = routes[connectionID], route.sessionID == sessionID else { return nil }
            let ends: Bool
            if case .event = delivery {
                ends = false
                route.lastSeq = max(route.lastSeq, seq)
            } else {
                ends = true
            }
            if !route.ready {
                route.waiting.append(delivery)
                routes[connectionID] = route
                return nil
            }
            routes[connectionID] = ends ? nil : route
            route.connection.sink.deliver(delivery)
            return ends ? route : nil
        }
        if let ended { unlist(ended) }
    }

    /// A session another node ended (kick, takeover) leaves this node's list in the store.
    /// (Never called under a route shard's lock: it reads the node ID under the state lock.)
    private func unlist(_ route: Route) {
        guard let client, isAvailable else { return }  // a resync rebuilds the list anyway
        _ = client.send(["SREM", .string(Self.nodeSessionsKey(nodeID)),
                         .string(Self.member(route.app, route.userID, route.sessionID))])
    }

    // MARK: Store state

    private func clientChanged(_ up: Bool) {
        let resync = state.withLock { state -> Bool in
            state.clientUp = up
            return up && state.subscriberUp
        }
        logger.notice(up ? "cluster store connected" : "cluster store unreachable")
        if resync { self.resync() } else { available.store(false, ordering: .releasing) }
    }

    private func subscriberChanged(_ up: Bool) {
        let resync = state.withLock { state -> Bool in
            state.subscriberUp = up
            return up && state.clientUp
        }
        if resync { self.resync() } else { available.store(false, ordering: .releasing) }
    }

    /// The store is (back) in reach: announce this node, release what an earlier incarnation
    /// left, register every session held here again (the store may have come back empty),
    /// deliver what the pub/sub gap missed, and settle what was decided meanwhile.
    private func resync() {
        guard let client else { return }
        let go = state.withLock { state -> Bool in
            if state.closed { return false }
            if state.resyncRunning {
                state.resyncAgain = true
                return false
            }
            state.resyncRunning = true
            return true
        }
        guard go else { return }
        available.store(false, ordering: .releasing)
        // The peers are those known before the store went away: a store that came back empty
        // lists only the nodes that have announced themselves again.
        let (nodeID, settlements, cleanLeftovers, peers) = state.withLock { state in
            defer {
                state.settlements = []
                state.cleanedOwnLeftovers = true
            }
            return (state.nodeID, state.settlements, !state.cleanedOwnLeftovers,
                    state.peers.subtracting([state.nodeID]).sorted())
        }
        let routes = allRoutes().filter(\.ready)
        var steps: [EventLoopFuture<Void>] = []
        steps.append(announce(client, nodeID: nodeID).map { _ in })
        let epoch = client.pipeline([["SET", "sb:epoch", .string(Base64URL.random(12)), "NX"], ["GET", "sb:epoch"]])
            .flatMapThrowing { replies -> String in
                guard let epoch = replies.last?.string else { throw RedisError.protocolError("no sb:epoch") }
                return epoch
            }
        if cleanLeftovers {
            steps.append(releaseSessions(of: nodeID, keepIncarnation: incarnation, client: client))
        }
        for route in routes {
            let connectionID = route.connection.id
            let token = connectionToken(connectionID)
            let future = client.eval(ClusterScripts.reregister, keys: Self.keys(route.app, route.userID),
                                     arguments: [.string(route.sessionID), .string(nodeID), .string(token),
                                                 .string(route.platform.rawValue), .int(route.userSigTime),
                                                 .int(route.userSigExpireAt), .int(Int64(route.lastSeq)), .int(window)])
                .map { reply -> Void in
                    let items = reply.array ?? []
                    let code = items.first?.int ?? 0
                    if code == 0 {
                        for event in items.dropFirst().compactMap(Self.parseEvent) {
                            self.route(.event(sessionID: route.sessionID, event), to: connectionID,
                                       sessionID: route.sessionID, seq: event.seq)
                        }
                    } else if code == Int64(ErrorCode.kickedOffline.rawValue) {
                        let kick = SessionEvent(seq: route.lastSeq + 1, name: .kickedOffline,
                                                data: SessionTable.kickData(reason: "multiDevice", byPlatform: nil))
                        self.route(.kicked(sessionID: route.sessionID, kick), to: connectionID,
                                   sessionID: route.sessionID, seq: kick.seq)
                    } else {
                        self.route(.resumedElsewhere(sessionID: route.sessionID), to: connectionID,
                                   sessionID: route.sessionID, seq: 0)
                    }
                }
            steps.append(future)
            steps.append(client.send(["SADD", .string(Self.nodeSessionsKey(nodeID)),
                                      .string(Self.member(route.app, route.userID, route.sessionID))]).map { _ in })
        }
        for settlement in settlements {
            steps.append(apply(settlement, client: client, nodeID: nodeID))
        }
        EventLoopFuture.whenAllComplete(steps, on: client.eventLoop).and(epoch).whenComplete { result in
            guard case .success(let (results, epoch)) = result,
                  !results.contains(where: { if case .failure = $0 { true } else { false } })
            else {
                self.endResync(failed: true, epoch: nil, sessions: 0)
                return
            }
            let deadline = NIODeadline.now() + .milliseconds(Int64(self.configuration.nodeTTLSeconds * 1000))
            self.awaitPeers(client, nodeID: nodeID, peers: peers, epoch: epoch, deadline: deadline, sessions: routes.count)
        }
    }

    /// After a store came back empty, a node that reports ready before the others have
    /// registered their sessions again would take logins and messages for users it cannot see.
    /// So each node marks itself registered in this store (`sb:reg:<nodeID>` = the epoch) and
    /// waits until every peer it knew has done the same, or `nodeTTL` has passed (a peer that
    /// does not come back is dead). Without a wipe, the peers' marks are already there.
    private func awaitPeers(_ client: RedisClient, nodeID: String, peers: [String], epoch: String, deadline: NIODeadline,
                            sessions: Int) {
        guard !state.withLock({ $0.closed }) else { return endResync(failed: true, epoch: nil, sessions: 0) }
        let ttl = Int64(configuration.nodeTTLSeconds * 1000)
        let mark: [[RESPArgument]] = [["SET", .string(Self.registeredKey(nodeID)), .string(epoch), "PX", .int(ttl)]]
        client.pipeline(mark + peers.map { ["GET", .string(Self.registeredKey($0))] }).whenComplete { result in
            guard case .success(let replies) = result else {
                return self.endResync(failed: true, epoch: nil, sessions: 0)
            }
            let waiting = zip(peers, replies.dropFirst()).filter { $0.1.string != epoch }.map(\.0)
            if waiting.isEmpty || NIODeadline.now() >= deadline {
                if !waiting.isEmpty {
                    self.logger.warning("peers did not register again in time; going on without them",
                                        metadata: ["peers": "\(waiting)"])
                }
                return self.endResync(failed: false, epoch: epoch, sessions: sessions)
            }
            client.eventLoop.scheduleTask(in: .milliseconds(50)) {
                self.awaitPeers(client, nodeID: nodeID, peers: peers, epoch: epoch, deadline: deadline, sessions: sessions)
            }
        }
    }

    private func endResync(failed: Bool, epoch: String?, sessions: Int) {
        let (again, late) = state.withLock { state -> (Bool, [Settlement]) in
            state.resyncRunning = false
            if !failed { state.epoch = epoch }
            defer { state.resyncAgain = false }
            let again = state.resyncAgain || (failed && state.clientUp && state.subscriberUp && !state.closed)
            guard !failed && !again else { return (again, []) }
            // Decided while this resync ran (the store counted as away): settle them now.
            available.store(true, ordering: .releasing)
            defer { state.settlements = [] }
            return (false, state.settlements)
        }
        if !failed && !again {
            for settlement in late { settle(settlement) }
            logger.notice("cluster node registered", metadata: ["node": "\(nodeID)", "sessions": "\(sessions)"])
            // The peers to wait for should the store come back empty (refreshed by every liveness tick).
            let nodeID = self.nodeID
            client?.send(["SMEMBERS", "sb:nodes"]).whenSuccess { reply in
                let nodes = Set((reply.array ?? []).compactMap(\.string))
                self.state.withLock { $0.peers.formUnion(nodes.subtracting([nodeID])) }
            }
        } else if again, let client {
            // Something changed (or failed) meanwhile: go again shortly.
            client.eventLoop.scheduleTask(in: .milliseconds(100)) { self.resync() }
        }
    }

    /// Renews this node's liveness key and looks for nodes whose key lapsed.
    private func livenessTick() {
        guard let client, client.isConnected else { return }
        let (nodeID, epoch) = state.withLock { ($0.nodeID, $0.epoch) }
        if isAvailable, let epoch {
            _ = client.send(["SET", .string(Self.registeredKey(nodeID)), .string(epoch), "PX",
                             .int(Int64(configuration.nodeTTLSeconds * 1000))])
        }
        announce(client, nodeID: nodeID).whenSuccess { previous in
            if previous.isNull, self.isAvailable {
                // Our key had lapsed (the store restarted, or this node stalled past its TTL):
                // other nodes may have released our sessions; take them back where still free.
                self.logger.warning("this node's liveness had lapsed; registering its sessions again")
                self.resync()
            }
        }
        client.send(["SMEMBERS", "sb:nodes"]).whenSuccess { reply in
            let nodes = (reply.array ?? []).compactMap(\.string)
            if self.isAvailable {  // not while a store that came back is being filled again
                self.state.withLock { $0.peers = Set(nodes).subtracting([nodeID]) }
            }
            for other in nodes where other != nodeID {
                client.send(["EXISTS", .string(Self.liveKey(other))]).whenSuccess { exists in
                    guard exists.int == 0 else { return }
                    self.reapDeadNode(other, client: client)
                }
            }
        }
    }

    /// Sets this node's liveness key (answering its previous value) and joins the node set.
    private func announce(_ client: RedisClient, nodeID: String) -> EventLoopFuture<RESPValue> {
        let ttl = Int64(configuration.nodeTTLSeconds * 1000)
        return client.pipeline([
            ["SET", .string(Self.liveKey(nodeID)), .string(incarnation), "PX", .int(ttl), "GET"],
            ["SADD", "sb:nodes", .string(nodeID)],
        ]).map { $0.first ?? .bulkString(nil) }
    }

    /// A node's liveness lapsed: one node (whoever takes the lock) detaches the sessions it held,
    /// so their clients can resume on the others.
    private func reapDeadNode(_ node: String, client: RedisClient) {
        let ttl = Int64(configuration.nodeTTLSeconds * 1000)
        client.send(["SET", .string("sb:reap:\(node)"), .string(incarnation), "NX", "PX", .int(ttl)])
            .flatMap { lock -> EventLoopFuture<Bool> in
                guard lock.string == "OK" else { return client.eventLoop.makeSucceededFuture(false) }
                // Looked at once more, now that we hold the lock: a node that was only slow to
                // announce itself (the store just came back) is not dead.
                return client.send(["EXISTS", .string(Self.liveKey(node))]).map { $0.int == 0 }
            }
            .whenSuccess { dead in
                guard dead else { return }
                self.logger.warning("cluster node is dead; releasing its sessions", metadata: ["node": "\(node)"])
                self.releaseSessions(of: node, keepIncarnation: "", client: client).whenSuccess {
                    _ = client.send(["SREM", "sb:nodes", .string(node)])
                    // Should it be alive after all, it takes its sessions back (see `received`).
                    _ = client.send(["PUBLISH", .string(Self.channel(node)), "X - - 0"])
                }
            }
    }

    /// Detaches every session a node (or an earlier incarnation of this one) holds in the store.
    private func releaseSessions(of node: String, keepIncarnation: String, client: RedisClient) -> EventLoopFuture<Void> {
        let key = Self.nodeSessionsKey(node)
        return client.send(["SMEMBERS", .string(key)]).flatMap { reply in
            var futures: [EventLoopFuture<RESPValue>] = []
            var released: [RESPArgument] = []
            for member in (reply.array ?? []).compactMap(\.string) {
                guard let (app, userID, sessionID) = Self.parseMember(member) else { continue }
                released.append(.string(member))
                futures.append(client.eval(ClusterScripts.detachDead, keys: Self.keys(app, userID),
                                           arguments: [.string(sessionID), .string(node),
                                                       .string(keepIncarnation.isEmpty ? "" : keepIncarnation + "."),
                                                       .int(self.window)]))
            }
            let members = released
            return EventLoopFuture.andAllSucceed(futures, on: client.eventLoop).flatMap {
                guard !members.isEmpty else { return client.eventLoop.makeSucceededVoidFuture() }
                if keepIncarnation.isEmpty {
                    return client.send(["DEL", .string(key)]).map { _ in }
                }
                // Our own set: keep the members this incarnation holds (they are added again anyway).
                return client.send(["SREM", .string(key)] + members).map { _ in }
            }
        }
    }

    /// Ends or detaches a session in the store now, or once it is back.
    private func settle(_ settlement: Settlement) {
        guard let client else { return }
        // Checked under the lock `endResync` turns availability on under: nothing is queued
        // after the queue was taken.
        let nodeID = state.withLock { state -> String? in
            guard isAvailable else {
                if state.settlements.count >= Self.maxSettlements { state.settlements.removeFirst() }
                state.settlements.append(settlement)
                return nil
            }
            return state.nodeID
        }
        guard let nodeID else { return }
        apply(settlement, client: client, nodeID: nodeID).whenFailure { _ in
            self.state.withLock { state in
                if state.settlements.count >= Self.maxSettlements { state.settlements.removeFirst() }
                state.settlements.append(settlement)
            }
        }
    }

    private func apply(_ settlement: Settlement, client: RedisClient, nodeID: String) -> EventLoopFuture<Void> {
        let keys = Self.keys(settlement.app, settlement.userID)
        let script: EventLoopFuture<RESPValue>
        switch settlement.kind {
        case .detach:
            script = client.eval(ClusterScripts.detach, keys: keys,
                                 arguments: [.string(settlement.sessionID), .string(nodeID),
                                             .string(settlement.connection), .int(window)])
        case .end(let code):
            script = client.eval(ClusterScripts.end, keys: keys,
                                 arguments: [.string(settlement.sessionID), .string(nodeID),
                                             .string(settlement.connection), .int(Int64(code.rawValue)), .int(window)])
        }
        let index = client.send(["SREM", .string(Self.nodeSessionsKey(nodeID)),
                                 .string(Self.member(settlement.app, settlement.userID, settlement.sessionID))])
        return script.and(index).map { _ in }
    }

    // MARK: Helpers

    private var nodeID: String { state.withLock { $0.nodeID } }

    private func connectionToken(_ id: UInt64) -> String { "\(incarnation).\(id)" }

    private func readyClient() throws(RequestError) -> RedisClient {
        guard let client, isAvailable else { throw RequestError(.serverBusy, Self.unreachable) }
        return client
    }

    private func wait(_ future: EventLoopFuture<RESPValue>) throws(RequestError) -> RESPValue {
        do {
            return try future.wait()
        } catch {
            throw RequestError(.serverBusy, Self.unreachable)
        }
    }

    private func deliver(_ client: RedisClient, app: UInt64, userID: String, except: String, data: [UInt8])
        -> EventLoopFuture<RESPValue> {
        client.eval(ClusterScripts.deliver, keys: Self.keys(app, userID),
                    arguments: [.string(except), .bytes(data), .int(window), .int(Int64(configuration.resumeBuffer))])
    }

    private func message(from sender: String, to recipient: String, payload: JSONValue) -> (String, [UInt8]) {
        let msgID = "\(messagePrefix)-\(messageCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
        return (msgID, SessionTable.messageData(from: sender, to: recipient, msgID: msgID, payload: payload,
                                                time: clock.nowMillis()))
    }

    static let unreachable = "the cluster store is unreachable; retry later"

    private static func failure(_ code: ErrorCode) -> RequestError {
        switch code {
        case .userSigRevoked: RequestError(code, "UserSig was revoked by an admin kick; make a new one")
        case .kickedOffline: RequestError(code, "the session was kicked offline while away; log in again")
        case .userSigExpired: RequestError(code, "the UserSig expired while away; log in with a new one")
        case .notLoggedIn: RequestError(code, "the session ended (logged out or its buffer overflowed); log in again")
        case .noSessionToResume: RequestError(code, "unknown session, or its resume window has passed")
        case .serverBusy: RequestError(code, unreachable)
        default: RequestError(code, "refused by the cluster store")
        }
    }

    static func keys(_ app: UInt64, _ userID: String) -> [RESPArgument] {
        let tag = "sb:{\(app):\(userID)}"
        return [.string(tag + ":u"), .string(tag + ":k"), .string(tag + ":b:")]
    }

    static func channel(_ nodeID: String) -> String { "sb:node:\(nodeID)" }
    static func liveKey(_ nodeID: String) -> String { "sb:live:\(nodeID)" }
    static func registeredKey(_ nodeID: String) -> String { "sb:reg:\(nodeID)" }
    static func nodeSessionsKey(_ nodeID: String) -> String { "sb:ns:\(nodeID)" }
    static func appUsersKey(_ app: UInt64) -> String { "sb:a:\(app)" }
    static func sessionKey(_ sessionID: String) -> String { "sb:sid:\(sessionID)" }
    static func member(_ app: UInt64, _ userID: String, _ sessionID: String) -> String { "\(app)|\(sessionID)|\(userID)" }

    static func parseMember(_ text: String) -> (UInt64, String, String)? {
        let parts = text.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let app = UInt64(parts[0]) else { return nil }
        return (app, String(parts[2]), String(parts[1]))
    }

    static func parseSessionEntry(_ text: String) -> (app: UInt64, token: String, userID: String)? {
        let parts = text.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let app = UInt64(parts[0]) else { return nil }
        return (app, String(parts[1]), String(parts[2]))
    }

    /// A buffered event, `seq\ndata`.
    static func parseEvent(_ value: RESPValue) -> SessionEvent? {
        guard case .bulkString(let bytes?) = value, let newline = bytes.firstIndex(of: UInt8(ascii: "\n")),
              let seq = UInt64(String(decoding: bytes[..<newline], as: UTF8.self))
        else { return nil }
        return SessionEvent(seq: seq, name: .message, data: Array(bytes[(newline + 1)...]))
    }

}

/// One shard of a node's routes.
final class RouteShard: Sendable {
    let routes = Mutex<[UInt64: ClusterDirectory.Route]>([:])
}

/// Lets the store clients call back into the directory that owns them without a cycle.
private final class WeakBox: Sendable {
    private struct Reference {
        weak var value: ClusterDirectory?
    }

    private let reference = Mutex(Reference())

    var value: ClusterDirectory? {
        get { reference.withLock { $0.value } }
        set { reference.withLock { $0.value = newValue } }
    }
}
