import Logging
import NIOCore
import NIOPosix
import SwitchboardProtocol
import Synchronization

/// Tencent's `State.StateChange` callback (PROTOCOL §9): an HTTP POST to an app's
/// `stateCallbackURL` when one of its users logs in, logs out or loses a connection.
///
/// The login path only enqueues: `enqueue` takes one short lock and, when its lane was idle,
/// hands a poster to the current event loop. Everything else (the body, the connection, the
/// wait for the receiver) happens afterwards in a `WebhookPoster`. The queue is bounded: when it
/// is full the event is dropped and counted (`switchboard_webhook_dropped_total`), so a slow or
/// dead receiver costs the gateway at most `queueCapacity` small records and never a blocked
/// loop. Events are not retried: each is posted once, within `timeoutSeconds`.
///
/// Events go through `lanes` lanes by user, one POST in flight per lane: a user's events reach
/// the receiver in the order they happened, different users' in parallel.
final class StateWebhook: Sendable {
    struct Configuration: Sendable, Hashable {
        /// Events waiting to be posted, all lanes together; the next one is dropped and counted.
        var queueCapacity = 10_000
        /// Seconds one POST may take, from connecting to the end of the response.
        var timeoutSeconds: Double = 3
        /// POSTs in flight at once.
        var lanes = 4

        init(queueCapacity: Int = 10_000, timeoutSeconds: Double = 3, lanes: Int = 4) {
            self.queueCapacity = queueCapacity
            self.timeoutSeconds = timeoutSeconds
            self.lanes = lanes
        }

        var timeout: TimeAmount { .nanoseconds(Int64(timeoutSeconds * 1e9)) }
    }

    enum Action: String, Sendable {
        case login = "Login"
        case logout = "Logout"
        case disconnect = "Disconnect"
    }

    enum Reason: String, Sendable {
        case register = "Register"
        case unregister = "Unregister"
        case linkClose = "LinkClose"
        case timeOut = "TimeOut"
    }

    /// What a POST came to.
    enum Outcome: Sendable {
        /// The receiver answered 2xx.
        case ok
        /// No connection, a broken response, or a status other than 2xx.
        case failed
        case timedOut
    }

    struct Event: Sendable {
        let sdkAppID: UInt64
        let url: String
        let action: Action
        let reason: Reason
        let userID: String
        /// Tencent's `OptPlatform`: the client's platform, or `RESTAPI` for the admin API.
        let optPlatform: String
        /// Login only: the platforms of the instances the login pushed out.
        let kicked: [Platform]?
        /// Unix milliseconds.
        let time: Int64

        /// The JSON body, exactly as PROTOCOL §9 (and Tencent) shape it.
        var body: [UInt8] {
            var w = JSONWriter(reservingCapacity: 192)
            w.writeRaw("{\"CallbackCommand\":\"State.StateChange\",\"EventTime\":")
            w.writeInt(time)
            w.writeRaw(",\"Info\":{\"Action\":")
            w.writeString(action.rawValue)
            w.writeRaw(",\"To_Account\":")
            w.writeString(userID)
            w.writeRaw(",\"Reason\":")
            w.writeString(reason.rawValue)
            w.writeRaw("}")
            if let kicked {
                w.writeRaw(",\"KickedDevice\":[")
                for (i, platform) in kicked.enumerated() {
                    if i > 0 { w.writeRaw(",") }
                    w.writeRaw("{\"Platform\":")
                    w.writeString(platform.rawValue)
                    w.writeRaw("}")
                }
                w.writeRaw("]")
            }
            w.writeRaw("}")
            return w.bytes
        }
    }

    private struct Lane {
        var queue = CircularBuffer<Event>()
        var posting = false
    }

    private struct State {
        var configuration: Configuration
        var lanes: [Lane]
        var queued = 0
        var closed = false
    }

    private let group: any EventLoopGroup
    private let metrics: GatewayMetrics
    let logger: Logger
    private let state: Mutex<State>

    init(configuration: Configuration = .init(), group: any EventLoopGroup, metrics: GatewayMetrics, logger: Logger) {
        self.group = group
        self.metrics = metrics
        self.logger = logger
        self.state = Mutex(State(configuration: configuration,
                                 lanes: Array(repeating: Lane(), count: max(1, configuration.lanes))))
    }

    /// Set before the server takes traffic (the lanes are remade; waiting events are dropped).
    var configuration: Configuration {
        get { state.withLock { $0.configuration } }
        set {
            let dropped = state.withLock { state -> Int in
                let dropped = state.lanes.reduce(0) { $0 + $1.queue.count }
                let posting = state.lanes.map(\.posting)
                state.configuration = newValue
                state.lanes = Array(repeating: Lane(), count: max(1, newValue.lanes))
                // A lane still posting keeps its flag, so its poster is not doubled when it ends.
                for (i, flag) in posting.enumerated() where i < state.lanes.count { state.lanes[i].posting = flag }
                state.queued = 0
                return dropped
            }
            metrics.webhookDropped(dropped)
        }
    }

    /// Events waiting, all lanes together (not counting those being posted).
    var queued: Int { state.withLock { $0.queued } }

    /// Queues an event for posting; never blocks. Called on event loops, from the gateway's hooks.
    func enqueue(_ event: Event) {
        var hasher = Hasher()
        hasher.combine(event.sdkAppID)
        hasher.combine(event.userID)
        let hash = hasher.finalize()
        let verdict = state.withLock { state -> (accepted: Bool, start: Int?) in
            guard !state.closed, state.queued < state.configuration.queueCapacity else { return (false, nil) }
            let lane = Int(UInt(bitPattern: hash) % UInt(state.lanes.count))
            state.lanes[lane].queue.append(event)
            state.queued += 1
            guard !state.lanes[lane].posting else { return (true, nil) }
            state.lanes[lane].posting = true
            return (true, lane)
        }
        guard verdict.accepted else {
            metrics.webhookDropped(1)
            return
        }
        if let lane = verdict.start {
            // The current loop (the hooks always run on one): scheduling onto another loop of a
            // group that is shutting down is refused, noisily; the own loop's turn never is.
            // (`group.any()` is not enough: while the group shuts down it may vend another loop.)
            let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? group.any()
            let timeout = configuration.timeout
            loop.execute {
                WebhookPoster(webhook: self, lane: lane, eventLoop: loop, timeout: timeout).start()
            }
        }
    }

    /// Stops posting before the event loops go: what waits is dropped (and counted), what comes
    /// later too; POSTs in flight end with their connections.
    func close() {
        let dropped = state.withLock { state -> Int in
            state.closed = true
            let dropped = state.queued
            for i in state.lanes.indices { state.lanes[i].queue.removeAll() }
            state.queued = 0
            return dropped
        }
        metrics.webhookDropped(dropped)
    }

    /// The next event of a lane, or nil when it is empty (the lane's poster then ends).
    func take(lane: Int) -> Event? {
        state.withLock { state -> Event? in
            guard lane < state.lanes.count else { return nil }
            if state.closed {
                state.lanes[lane].posting = false
                return nil
            }
            if let event = state.lanes[lane].queue.popFirst() {
                state.queued -= 1
                return event
            }
            state.lanes[lane].posting = false
            return nil
        }
    }

    /// The lane's loop is going away: what waits in the lane is dropped (and counted), and the
    /// lane is idle again (its poster ends).
    func abandon(lane: Int) {
        let dropped = state.withLock { state -> Int in
            guard lane < state.lanes.count else { return 0 }
            let count = state.lanes[lane].queue.count
            state.lanes[lane] = Lane()
            state.queued -= count
            return count
        }
        metrics.webhookDropped(dropped)
    }

    func posted(_ outcome: Outcome) {
        metrics.webhookPosted(outcome)
    }
}

/// Where an app's state callbacks go: `http://` or `https://`, host, port, path and query.
struct WebhookTarget: Hashable, Sendable {
    var tls: Bool
    var host: String
    var port: Int
    /// Path and query as configured (at least "/").
    var pathAndQuery: String

    init(tls: Bool, host: String, port: Int, pathAndQuery: String) {
        self.tls = tls
        self.host = host
        self.port = port
        self.pathAndQuery = pathAndQuery
    }

    /// Parses `http[s]://host[:port][/path][?query]` (an IPv6 host in brackets); nil if it is not one.
    init?(_ url: String) {
        let rest: Substring
        if url.hasPrefix("http://") {
            tls = false
            rest = url.dropFirst(7)
        } else if url.hasPrefix("https://") {
            tls = true
            rest = url.dropFirst(8)
        } else {
            return nil
        }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var path = String(rest[authorityEnd...])
        if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        pathAndQuery = path
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { return nil }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        } else {
            host = String(authority)
        }
        guard !host.isEmpty else { return nil }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else { return nil }
            self.port = port
        } else {
            port = tls ? 443 : 80
        }
    }

    /// The `Host` header.
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (tls ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// The request target with Tencent's callback query parameters appended (`SdkAppid`,
    /// `CallbackCommand`, `contenttype`, `OptPlatform`), after any the URL already has.
    func requestURI(sdkAppID: UInt64, optPlatform: String) -> String {
        let separator = pathAndQuery.contains("?") ? (pathAndQuery.hasSuffix("?") || pathAndQuery.hasSuffix("&") ? "" : "&") : "?"
        return pathAndQuery + separator
            + "SdkAppid=\(sdkAppID)&CallbackCommand=State.StateChange&contenttype=json&OptPlatform=\(optPlatform)"
    }
}
