import NIOCore
import NIOPosix
import NIOSSL
import NIOWebSocket
import SwitchboardProtocol
import Synchronization

/// What the synchronous getters read, kept up to date by the driver.
final class StatusBox: Sendable {
    private let value = Mutex<(status: LoginStatus, userID: String?)>((.logout, nil))

    var current: (status: LoginStatus, userID: String?) { value.withLock { $0 } }

    func set(_ status: LoginStatus, _ userID: String?) {
        value.withLock { $0 = (status, userID) }
    }
}

/// Performs what the `ClientSessionStateMachine` decides: opens and closes connections, writes
/// requests, runs the backoff timer, answers the app's calls, calls the listeners and feeds the
/// message stream. It lives on one event loop, where every connection of its manager lives too,
/// so it needs no lock; the manager reaches it by hopping onto that loop.
final class SessionDriver: SessionChannelDelegate {
    private struct Connection {
        let id: ConnectionID
        let channel: any Channel
        let handler: SessionChannelHandler
    }

    private enum Handshake {
        case login
        case resume
    }

    private struct PendingRequest {
        let requestID: Int64
        let op: String
        /// The request's own fields as JSON members (`"to":"bob","payload":{}`), or empty.
        let members: [UInt8]
        let promise: EventLoopPromise<JSONValue?>
        var timeout: Scheduled<Void>?
        var sent = false
    }

    let eventLoop: any EventLoop
    private let configuration: SwitchboardManager.Configuration
    private let endpoint: Endpoint
    private let tls: NIOSSLContext?
    private let statusBox: StatusBox
    private let messages: AsyncStream<IncomingMessage>.Continuation
    private var machine: ClientSessionStateMachine
    private var listeners: [any SwitchboardSDKListener] = []
    private var connection: Connection?
    private var handshake: (id: ConnectionID, requestID: Int64, kind: Handshake)?
    private var logoutRequest: (id: ConnectionID, requestID: Int64)?
    /// Bounds the whole logout, reconnections included.
    private var logoutTimer: Scheduled<Void>?
    private var retryTimer: Scheduled<Void>?
    private var drainTimer: Scheduled<Void>?
    private var pendingLogin: EventLoopPromise<Void>?
    private var pendingLogout: EventLoopPromise<Void>?
    private var nextRequestID: Int64 = 1
    /// Requests in the order they were made; sent ones wait for their reply.
    private var requests: [PendingRequest] = []
    private var isShutDown = false
    /// Connection attempts made so far (for tests and diagnostics).
    private(set) var attempts = 0

    init(configuration: SwitchboardManager.Configuration, endpoint: Endpoint, tls: NIOSSLContext?,
         eventLoop: any EventLoop, statusBox: StatusBox, messages: AsyncStream<IncomingMessage>.Continuation) {
        self.configuration = configuration
        self.endpoint = endpoint
        self.tls = tls
        self.eventLoop = eventLoop
        self.statusBox = statusBox
        self.messages = messages
        var seedSource = SystemRandomNumberGenerator()
        self.machine = ClientSessionStateMachine(policy: configuration.reconnect,
                                                 seed: configuration.randomSeed ?? seedSource.next())
    }

    // MARK: The app's calls (on the loop)

    func addListener(_ listener: any SwitchboardSDKListener) {
        guard !listeners.contains(where: { $0 === listener }) else { return }
        listeners.append(listener)
    }

    func removeListener(_ listener: any SwitchboardSDKListener) {
        listeners.removeAll { $0 === listener }
    }

    func login(_ credentials: Credentials, promise: EventLoopPromise<Void>) {
        guard !isShutDown else { return promise.fail(SwitchboardError.interrupted) }
        switch machine.login(credentials) {
        case .start(let actions):
            pendingLogin = promise
            perform(actions)
        case .alreadyLoggedIn:
            promise.succeed(())
        case .reject(let error):
            promise.fail(error)
        }
    }

    func logout(promise: EventLoopPromise<Void>) {
        switch machine.logout() {
        case .start(let actions):
            pendingLogout = promise
            logoutTimer = eventLoop.assumeIsolated().scheduleTask(in: configuration.requestTimeout) {
                // The server could not be told in time: its session ends with its resume window.
                self.perform(self.machine.logoutTimedOut())
            }
            perform(actions)
        case .done(let actions):
            perform(actions)
            promise.succeed(())
        case .reject(let error):
            promise.fail(error)
        }
    }

    /// A request that needs a session. It waits for the connection when the SDK is reconnecting.
    func request(op: String, members: [UInt8], promise: EventLoopPromise<JSONValue?>) {
        guard machine.status == .logined, !isShutDown else {
            return promise.fail(SwitchboardError.notLoggedIn)
        }
        let requestID = makeRequestID()
        var pending = PendingRequest(requestID: requestID, op: op, members: members, promise: promise)
        pending.timeout = eventLoop.assumeIsolated().scheduleTask(in: configuration.requestTimeout) {
            self.requestTimedOut(requestID)
        }
        requests.append(pending)
        if machine.isOnline, let connection, machine.currentConnection == connection.id {
            send(requestAt: requests.count - 1, on: connection)
        }
    }

    func userSigRenewed(_ userSig: String) {
        machine.userSigRenewed(userSig)
    }

    func shutdown() {
        guard !isShutDown else { return }
        isShutDown = true
        // No logout round trip: a session still held detaches on the server and ends with its window.
        machine.shutDown()
        if let connection {
            self.connection = nil
            connection.handler.abandon()
        }
        retryTimer?.cancel()
        drainTimer?.cancel()
        logoutTimer?.cancel()
        logoutRequest = nil
        pendingLogin?.fail(SwitchboardError.interrupted)
        pendingLogin = nil
        pendingLogout?.succeed(())
        pendingLogout = nil
        failRequests(.interrupted, sentOnly: false)
        statusBox.set(.logout, nil)
        listeners = []
        messages.finish()
    }

    // MARK: Test hooks

    /// Stops reading from the current connection (what it is sent stays in the socket).
    func suspendReading() {
        try? connection?.channel.syncOptions?.setOption(.autoRead, value: false)
    }

    /// Closes the current connection as a network failure would: the SDK notices and reconnects.
    func dropConnection() {
        connection?.channel.close(promise: nil)
    }

    // MARK: SessionChannelDelegate

    func isCurrent(_ id: ConnectionID) -> Bool {
        connection?.id == id && machine.currentConnection == id
    }

    func connection(_ id: ConnectionID, received frame: InboundFrame) {
        guard connection?.id == id else { return }
        switch frame.op {
        case "event": event(frame, on: id)
        case "reply": reply(frame, on: id)
        default: break  // "pong": the read itself was the news
        }
    }

    func connection(_ id: ConnectionID, lost error: SwitchboardError, closeCode: UInt16?) {
        if connection?.id == id { connection = nil }
        if handshake?.id == id { handshake = nil }
        perform(machine.connectionLost(id, error: error, closeCode: closeCode, now: eventLoop.now))
    }

    // MARK: Frames

    private func event(_ frame: InboundFrame, on id: ConnectionID) {
        let name = frame.string("event")
        guard let seq = frame.fields["seq"]?.numberValue?.uint64 else {
            // A connection event: never replayed, not numbered.
            if name == "reconnect" {
                let after = frame.fields["data"]?["after"]?.int64Value ?? 0
                perform(machine.reconnectRequested(id, after: .milliseconds(max(after, 0))))
            }
            return
        }
        let kind: SessionEventKind = switch name {
        case "message": .message
        case "kickedOffline": .kickedOffline
        case "userSigExpired": .userSigExpired
        default: .other
        }
        switch machine.sessionEvent(kind, seq: seq, on: id) {
        case .deliver:
            messages.yield(IncomingMessage(seq: seq, data: frame.fields["data"]))
        case .drop:
            break
        case .end(let actions):
            perform(actions)
        }
    }

    private func reply(_ frame: InboundFrame, on id: ConnectionID) {
        guard case .number(let number)? = frame.id, let requestID = number.int64 else { return }
        let code = frame.fields["code"]?.int64Value.map(Int.init) ?? -1
        let error = code == 0 ? nil : SwitchboardError(code: code, desc: frame.string("desc") ?? "")
        let data = frame.fields["data"]
        if let handshake, handshake.id == id, handshake.requestID == requestID {
            self.handshake = nil
            let now = eventLoop.now
            switch handshake.kind {
            case .login:
                let result: Result<SessionGrant, SwitchboardError>
                if let error {
                    result = .failure(error)
                } else if let grant = Self.grant(from: data) {
                    result = .success(grant)
                } else {
                    result = .failure(.invalidParameters.with(desc: "the login reply lacks sessionID or resumeToken"))
                }
                perform(machine.loginReplied(id, result, now: now))
            case .resume:
                perform(machine.resumeReplied(id, error.map { .failure($0) } ?? .success(()), now: now))
            }
            return
        }
        if let logoutRequest, logoutRequest.id == id, logoutRequest.requestID == requestID {
            self.logoutRequest = nil
            perform(machine.logoutReplied(id))
            return
        }
        guard let index = requests.firstIndex(where: { $0.requestID == requestID && $0.sent }) else { return }
        let request = requests.remove(at: index)
        request.timeout?.cancel()
        if let error {
            request.promise.fail(error)
        } else {
            request.promise.succeed(data)
        }
    }

    private static func grant(from data: JSONValue?) -> SessionGrant? {
        guard let sessionID = data?["sessionID"]?.stringValue, let token = data?["resumeToken"]?.stringValue else {
            return nil
        }
        let heartbeat = data?["heartbeat"]?.doubleValue.flatMap { $0 > 0 ? TimeAmount.nanoseconds(Int64($0 * 1e9)) : nil }
        return SessionGrant(sessionID: sessionID, resumeToken: token, heartbeat: heartbeat)
    }

    // MARK: Actions

    private func perform(_ actions: [ClientSessionStateMachine.Action]) {
        // First: an app whose call these actions answer must read the status they produced.
        publishStatus()
        for action in actions {
            perform(action)
        }
        publishStatus()
    }

    private func publishStatus() {
        statusBox.set(isShutDown ? .logout : machine.status, isShutDown ? nil : machine.userID)
    }

    private func perform(_ action: ClientSessionStateMachine.Action) {
        switch action {
        case .connect(let id):
            open(id)
        case .sendLogin(let id, let credentials):
            sendHandshake(.login, on: id) { requestID in self.loginFrame(requestID, credentials) }
        case .sendResume(let id, let sessionID, let token, let lastSeq):
            sendHandshake(.resume, on: id) { requestID in
                var w = JSONWriter(reservingCapacity: 128)
                w.writeRaw("{\"op\":\"resume\",\"id\":")
                w.writeInt(requestID)
                w.writeRaw(",\"sessionID\":")
                w.writeString(sessionID)
                w.writeRaw(",\"resumeToken\":")
                w.writeString(token)
                w.writeRaw(",\"lastSeq\":")
                w.writeInt(lastSeq)
                w.writeRaw("}")
                return w.bytes
            }
        case .sendLogout(let id):
            guard let connection, connection.id == id else { return }
            let requestID = makeRequestID()
            logoutRequest = (id, requestID)
            var w = JSONWriter(reservingCapacity: 40)
            w.writeRaw("{\"op\":\"logout\",\"id\":")
            w.writeInt(requestID)
            w.writeRaw("}")
            connection.handler.write(w.bytes)
        case .close(let id):
            if let connection, connection.id == id {
                self.connection = nil
                connection.handler.abandon()
            }
            if handshake?.id == id { handshake = nil }
        case .closeLater(let id, let after):
            drainTimer?.cancel()
            drainTimer = eventLoop.assumeIsolated().scheduleTask(in: after) {
                // Reported as a loss: the machine resumes on a new connection.
                if let connection = self.connection, connection.id == id {
                    connection.channel.close(promise: nil)
                }
            }
        case .scheduleRetry(let token, let after):
            retryTimer?.cancel()
            retryTimer = eventLoop.assumeIsolated().scheduleTask(in: after) {
                self.retryTimer = nil
                self.perform(self.machine.retryDue(token))
            }
        case .cancelRetry:
            retryTimer?.cancel()
            retryTimer = nil
        case .notify(let event):
            notify(event)
        case .online(let id, let heartbeat):
            guard let connection, connection.id == id else { return }
            let limit = configuration.deadConnectionTimeout
                ?? heartbeat.map { .nanoseconds($0.nanoseconds * 5 / 2) }
                ?? .seconds(75)
            connection.handler.becameOnline(silenceLimit: limit)
            for index in requests.indices where !requests[index].sent {
                send(requestAt: index, on: connection)
            }
        case .completeLogin(let error):
            let promise = pendingLogin
            pendingLogin = nil
            if let error { promise?.fail(error) } else { promise?.succeed(()) }
        case .completeLogout:
            logoutTimer?.cancel()
            logoutTimer = nil
            logoutRequest = nil
            let promise = pendingLogout
            pendingLogout = nil
            promise?.succeed(())
        case .failRequests(let error):
            failRequests(error, sentOnly: false)
        case .failInFlight(let error):
            failRequests(error, sentOnly: true)
        }
    }

    private func notify(_ event: ListenerEvent) {
        for listener in listeners {
            switch event {
            case .connecting: listener.onConnecting()
            case .connectSuccess: listener.onConnectSuccess()
            case .connectFailed(let error): listener.onConnectFailed(code: error.code, desc: error.desc)
            case .kickedOffline: listener.onKickedOffline()
            case .userSigExpired: listener.onUserSigExpired()
            }
        }
    }

    // MARK: Connections

    private func open(_ id: ConnectionID) {
        attempts += 1
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let establishTimeout = configuration.connectTimeout
        let maxFrameSize = configuration.maxFrameSize
        WebSocketConnector.connect(
            host: endpoint.host, port: endpoint.port, path: endpoint.path, group: eventLoop,
            maxFrameSize: maxFrameSize, connectTimeout: configuration.connectTimeout,
            tls: tls, serverHostname: endpoint.host
        ) { _ in
            [
                NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 16,
                                            maxAccumulatedFrameSize: maxFrameSize),
                SessionChannelHandler(id: id, delegate: bound.value, establishTimeout: establishTimeout),
            ]
        }
        .assumeIsolated()
        .whenComplete { result in
            switch result {
            case .success(let channel):
                self.opened(id, channel: channel)
            case .failure(let error):
                self.perform(self.machine.connectionLost(id, error: self.connectError(error), closeCode: nil,
                                                         now: self.eventLoop.now))
            }
        }
    }

    private func opened(_ id: ConnectionID, channel: any Channel) {
        guard !isShutDown, machine.currentConnection == id, channel.isActive,
              let handler = try? channel.pipeline.syncOperations.handler(type: SessionChannelHandler.self)
        else {
            // Abandoned meanwhile (or already gone, which its handler has reported).
            channel.close(promise: nil)
            return
        }
        connection = Connection(id: id, channel: channel, handler: handler)
        perform(machine.connected(id))
    }

    private func sendHandshake(_ kind: Handshake, on id: ConnectionID, frame: (Int64) -> [UInt8]) {
        guard let connection, connection.id == id else { return }
        let requestID = makeRequestID()
        handshake = (id, requestID, kind)
        connection.handler.write(frame(requestID))
    }

    private func loginFrame(_ requestID: Int64, _ credentials: Credentials) -> [UInt8] {
        var w = JSONWriter(reservingCapacity: 512)
        w.writeRaw("{\"op\":\"login\",\"id\":")
        w.writeInt(requestID)
        w.writeRaw(",\"sdkAppID\":")
        w.writeInt(configuration.sdkAppID)
        w.writeRaw(",\"userID\":")
        w.writeString(credentials.userID)
        w.writeRaw(",\"userSig\":")
        w.writeString(credentials.userSig)
        w.writeRaw(",\"platform\":")
        w.writeString(configuration.platform.rawValue)
        if let deviceID = configuration.deviceID {
            w.writeRaw(",\"deviceID\":")
            w.writeString(deviceID)
        }
        w.writeRaw("}")
        return w.bytes
    }

    private func connectError(_ error: any Error) -> SwitchboardError {
        if case ChannelError.connectTimeout = error {
            return .connectTimeout
        }
        // NIO lists every address it tried; one reason is enough for the app.
        let reason = (error as? NIOConnectionError)?.connectionErrors.first.map { "\($0.error)" } ?? "\(error)"
        return .connectFailed.with(desc: "could not connect to \(endpoint.host):\(endpoint.port): \(reason)")
    }

    // MARK: Requests

    private func makeRequestID() -> Int64 {
        defer { nextRequestID += 1 }
        return nextRequestID
    }

    private func send(requestAt index: Int, on connection: Connection) {
        var w = JSONWriter(reservingCapacity: requests[index].members.count + 40)
        w.writeRaw("{\"op\":")
        w.writeString(requests[index].op)
        w.writeRaw(",\"id\":")
        w.writeInt(requests[index].requestID)
        if !requests[index].members.isEmpty {
            w.writeRaw(",")
            w.bytes.append(contentsOf: requests[index].members)
        }
        w.writeRaw("}")
        requests[index].sent = true
        connection.handler.write(w.bytes)
    }

    private func requestTimedOut(_ requestID: Int64) {
        guard let index = requests.firstIndex(where: { $0.requestID == requestID }) else { return }
        let request = requests.remove(at: index)
        request.promise.fail(request.sent ? SwitchboardError.requestTimeout : SwitchboardError.noNetworkTimeout)
    }

    private func failRequests(_ error: SwitchboardError, sentOnly: Bool) {
        var kept: [PendingRequest] = []
        for request in requests {
            if sentOnly && !request.sent {
                kept.append(request)
            } else {
                request.timeout?.cancel()
                request.promise.fail(error)
            }
        }
        requests = kept
    }
}

@available(*, unavailable)
extension SessionDriver: Sendable {}
