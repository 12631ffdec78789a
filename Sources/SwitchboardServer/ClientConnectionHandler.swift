import Logging
import NIOCore
import NIOWebSocket
import SwitchboardCore
import SwitchboardProtocol
import UserSig

/// One client's WebSocket connection after the upgrade: decodes its JSON frames, drives its
/// `ConnectionStateMachine`, and performs what the machine and the session table answer.
///
/// Everything here runs on the channel's event loop. Other threads reach the connection only
/// through its `ConnectionSink`, which hops onto that loop. One timer per connection serves the
/// heartbeat, the login timeout, the UserSig expiry and the drain: idle connections must cost little.
final class ClientConnectionHandler: ChannelInboundHandler, NIOScheduledCallbackHandler {
    /// Raw bytes from the socket: frames are parsed here (see `WebSocketFrameParser` for why).
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    // Fields are ordered widest first: Swift lays a class out in declaration order, and idle
    // connections are counted in hundreds of thousands.
    private let gateway: Gateway
    private let registry: ConnectionRegistry?
    /// Per-address limits and this connection's address key (`AddressLimits.key`); the
    /// connection was counted against its address before the upgrade and is released here.
    private let limits: AddressLimits?
    private let addressKey: UInt64
    private let connectionID: UInt64
    private var context: ChannelHandlerContext?
    private var sink: ConnectionSink?
    private var machine = ConnectionStateMachine()
    private var parser: WebSocketFrameParser

    // The one timer and the deadlines it serves; `.distantFuture` is "not set".
    private var timer: NIOScheduledCallback?
    private var timerDeadline: NIODeadline = .distantFuture
    private var loginDeadline: NIODeadline = .distantFuture
    private var expiryDeadline: NIODeadline = .distantFuture
    /// Set once the server drains: when to close with 1001.
    private var drainDeadline: NIODeadline = .distantFuture
    private var nextPing: NIODeadline = .distantFuture
    private var lastInbound: NIODeadline = .uptimeNanoseconds(0)
    /// Start of the current one-second request window (9506 past `maxRequestsPerSecond`).
    private var requestWindowStart: NIODeadline = .uptimeNanoseconds(0)

    /// The highest session seq written to this connection.
    private var writtenSeq: UInt64 = 0
    /// The highest seq a pong proved the client read, and the highest released from the session's
    /// buffer. Release lags proof by one heartbeat: a client library answers a ping before its
    /// app has handled what came earlier, so the app's `lastSeq` may trail the proof.
    private var provenSeq: UInt64 = 0
    private var releasedSeq: UInt64 = 0
    /// Bytes written while the channel was not writable: a client that does not read is cut off
    /// (its session detaches and keeps buffering, so nothing is lost).
    private var unwritableBytes: Int32 = 0
    private var requestsInWindow: Int32 = 0
    private var closing = false
    /// Closed because the peer went silent (heartbeat), not because the socket closed.
    private var timedOut = false

    init(gateway: Gateway, connectionID: UInt64, registry: ConnectionRegistry? = nil,
         limits: AddressLimits? = nil, addressKey: UInt64 = 0) {
        self.gateway = gateway
        self.connectionID = connectionID
        self.registry = registry
        self.limits = limits
        self.addressKey = addressKey
        self.parser = WebSocketFrameParser(maxMessageBytes: gateway.configuration.maxFrameBytes)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.sink = ConnectionSink(handler: self, eventLoop: context.eventLoop)
        let now = context.eventLoop.now
        lastInbound = now
        nextPing = now + gateway.configuration.heartbeat
        loginDeadline = now + gateway.configuration.loginTimeout
        gateway.connectionOpened()
        registry?.add(self, id: connectionID, on: context.eventLoop)
        rearmTimer()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        teardown()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        teardown()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { unwritableBytes = 0 }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Socket errors (reset by peer and the like): the connection is gone; its session detaches.
        closing = true
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastInbound = context.eventLoop.now
        guard !closing else { return }
        parser.append(Self.unwrapInboundIn(data))
        while !closing, let event = parser.next() {
            handle(event, context: context)
        }
        parser.finishRead(allocator: context.channel.allocator)
    }

    private func handle(_ event: WebSocketFrameParser.Event, context: ChannelHandlerContext) {
        switch event {
        case .text(let payload):
            textFrame(payload)
        case .binary:
            close(code: .binaryFrame, reason: "binary frames are not accepted; send JSON text")
        case .ping(let payload):
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: context.channel.allocator.buffer(bytes: payload))
            context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
        case .pong(let payload):
            if payload.count == 8 {
                acknowledge(through: payload.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) })
            }
        case .close(let code, let reasonIsValid):
            // Echo the close (RFC 6455 §5.5.1) and end; a session without logout detaches.
            closing = true
            var reply = context.channel.allocator.buffer(capacity: 2)
            reply.writeInteger(WebSocketFrameParser.closeReply(to: code, reasonIsValid: reasonIsValid))
            let closeFrame = WebSocketFrame(fin: true, opcode: .connectionClose, data: reply)
            context.writeAndFlush(Self.wrapOutboundOut(closeFrame)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        case .violation(let code, let reason):
            close(code: code, reason: reason)
        }
    }

    // MARK: Requests

    private func textFrame(_ payload: [UInt8]) {
        let decoded: FrameDecodeResult? = payload.withUnsafeBytes { bytes in
            guard UTF8Validator.isValid(bytes) else { return nil }
            return FrameDecoder.decode(bytes)
        }
        guard let decoded else {
            close(code: .invalidUTF8, reason: "text frame is not valid UTF-8")
            return
        }
        switch machine.received(decoded) {
        case .ignore:
            return
        case .reject(let id, let code, let desc):
            answer(id, RequestError(code, desc))
        case .rejectAndClose(let id, let code, let desc, let closeCode):
            answer(id, RequestError(code, desc))
            close(code: closeCode, reason: "too many malformed frames")
        case .dispatch(let request):
            guard withinRequestRate() else {
                answer(request.id, RequestError(.rateLimited, "too many requests on this connection; slow down"))
                return
            }
            dispatch(request)
        }
    }

    private func dispatch(_ request: InboundFrame) {
        switch request.op {
        case "login": login(request)
        case "resume": resume(request)
        case "ping":
            write(OutboundFrame.pong(id: request.id, timeMillis: gateway.clock.nowMillis()))
        case "getLoginUser":
            answer(request.id, data: .string(machine.session?.userID ?? ""))
        case "getLoginStatus":
            answer(request.id, data: .number(JSONNumber(machine.status.rawValue)))
        case "logout": logout(request)
        case "renewSig": renewSig(request)
        case "send": send(request)
        default:
            answer(request.id, RequestError(.invalidParameters, "unknown op \"\(request.op)\""))
        }
    }

    /// A fixed one-second window per connection: cheap, and enough to stop a flood.
    private func withinRequestRate() -> Bool {
        guard let context else { return true }
        let now = context.eventLoop.now
        if now - requestWindowStart >= .seconds(1) {
            requestWindowStart = now
            requestsInWindow = 0
        }
        requestsInWindow += 1
        return Int(requestsInWindow) <= gateway.configuration.maxRequestsPerSecond
    }

    private func login(_ frame: InboundFrame) {
        if let limits, limits.loginsBlocked(addressKey) {
            answer(frame.id, RequestError(.tooManyFailedLogins, "too many failed logins from this address; retry after a minute"))
            close(code: .tooManyFailedLogins, reason: "too many failed logins")
            return
        }
        if case .logining = machine.state {
            answer(frame.id, RequestError(.loginInProcess, "a login is already in progress on this connection"))
            return
        }
        let request: LoginRequest
        do {
            request = try LoginRequest(frame)
        } catch {
            answer(frame.id, error)
            return
        }
        switch machine.loginRequested(sdkAppID: request.sdkAppID, userID: request.userID) {
        case .inProgress:
            answer(frame.id, RequestError(.loginInProcess, "a login is already in progress on this connection"))
        case .alreadyLoggedIn(let session):
            answer(frame.id, data: loginReplyData(session))
        case .begin(let previous):
            // The check runs on the next turn of the loop: frames already read meanwhile see
            // LOGINING (7501), as a client's pipelined second login should.
            context?.eventLoop.assumeIsolated().execute {
                self.completeLogin(request, id: frame.id, replacing: previous)
            }
        }
    }

    private func completeLogin(_ request: LoginRequest, id: RequestID?, replacing previous: SessionInfo?) {
        guard case .logining = machine.state, let sink else { return }
        let started = NIODeadline.now()  // for the login latency metric: real time
        let app: AppConfiguration
        let ticket: UserSigTicket
        do {
            (app, ticket) = try gateway.authenticator.verify(sdkAppID: request.sdkAppID, userID: request.userID,
                                                              userSig: request.userSig)
        } catch {
            machine.loginFailed()
            gateway.loginFinished(code: error.code, started: started)
            limits?.recordFailedLogin(addressKey)
            answer(id, error)
            return
        }
        guard let context else { return }
        if let previous {
            // The store runs this before the login below (one connection, in order).
            gateway.directory.logout(previous, connectionID: connectionID, executor: sink) {}
            gateway.loggedOut(previous)
            machine.previousSessionEnded()
            expiryDeadline = .distantFuture
        }
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        gateway.directory.login(app: app, userID: request.userID, platform: request.platform, ticket: ticket,
                                connection: ConnectionRef(id: connectionID, sink: sink),
                                executor: sink) { result in
            me.value.loginAnswered(result, id: id, started: started)
        }
    }

    /// The directory's answer to a login: at once on one node, after a round trip in a cluster.
    private func loginAnswered(_ result: LoginResult, id: RequestID?, started: NIODeadline) {
        guard case .logining = machine.state, !closing else {
            // The connection went away meanwhile: what the store registered must not stay attached.
            if case .success(let session, _) = result {
                _ = gateway.directory.detach(session, connectionID: connectionID)
            }
            return
        }
        switch result {
        case .failure(let code, let desc):
            machine.loginFailed()
            if machine.session == nil { armLoginTimeout() }
            gateway.loginFinished(code: code, started: started)
            if code != .serverBusy { limits?.recordFailedLogin(addressKey) }  // an outage is not the client's failure
            answer(id, RequestError(code, desc))
        case .success(let session, let kicked):
            machine.loginSucceeded(session)
            gateway.loggedIn(session, kicked: kicked)
            writtenSeq = 0
            provenSeq = 0
            releasedSeq = 0
            loginDeadline = .distantFuture
            armExpiry(session.userSigExpireAt)
            gateway.loginFinished(code: .ok, started: started)
            answer(id, data: loginReplyData(session))
        }
    }

    private func loginReplyData(_ session: SessionInfo) -> JSONValue {
        .object(JSONObject([
            ("userID", .string(session.userID)),
            ("sessionID", .string(session.sessionID)),
            ("resumeToken", .string(session.resumeToken)),
            ("status", .number(JSONNumber(LoginStatus.logined.rawValue))),
            ("serverTime", .number(JSONNumber(gateway.clock.nowMillis()))),
            ("userSigExpireAt", .number(JSONNumber(session.userSigExpireAt))),
            ("heartbeat", Self.seconds(gateway.configuration.heartbeatSeconds)),
            ("resumeWindow", .number(JSONNumber(gateway.configuration.resumeWindowSeconds))),
        ]))
    }

    /// Whole seconds as an integer, fractions (test configurations) as they are.
    private static func seconds(_ value: Double) -> JSONValue {
        if value == value.rounded() { return .number(JSONNumber(Int64(value))) }
        return JSONNumber(value).map(JSONValue.number) ?? .null
    }

    private func resume(_ frame: InboundFrame) {
        let request: ResumeRequest
        do {
            request = try ResumeRequest(frame)
        } catch {
            answer(frame.id, error)
            return
        }
        let verdict = machine.resumeRequested()
        guard verdict == .ok else {
            let desc = verdict == .loginInProcess
                ? "a login is already in progress on this connection"
                : "this connection already has a session; log out first"
            answer(frame.id, RequestError(verdict, desc))
            return
        }
        context?.eventLoop.assumeIsolated().execute {
            self.completeResume(request, id: frame.id)
        }
    }

    private func completeResume(_ request: ResumeRequest, id: RequestID?) {
        guard case .logining = machine.state, let sink, let context else { return }
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        let lastSeq = request.lastSeq
        gateway.directory.resume(sessionID: request.sessionID, resumeToken: request.resumeToken, lastSeq: lastSeq,
                                 connection: ConnectionRef(id: connectionID, sink: sink),
                                 executor: sink) { result in
            me.value.resumeAnswered(result, lastSeq: lastSeq, id: id)
        }
    }

    private func resumeAnswered(_ result: ResumeResult, lastSeq: UInt64, id: RequestID?) {
        guard case .logining = machine.state, !closing else {
            if case .success(let session, _) = result {
                _ = gateway.directory.detach(session, connectionID: connectionID)
            }
            return
        }
        switch result {
        case .failure(let code, let desc):
            machine.loginFailed()
            gateway.resumeFinished(success: false)
            answer(id, RequestError(code, desc))
        case .success(let session, let replay):
            machine.loginSucceeded(session)
            loginDeadline = .distantFuture
            writtenSeq = lastSeq
            provenSeq = lastSeq
            releasedSeq = lastSeq
            armExpiry(session.userSigExpireAt)
            gateway.resumeFinished(success: true)
            answer(id, data: .object(JSONObject([
                ("userID", .string(session.userID)),
                ("sessionID", .string(session.sessionID)),
                ("status", .number(JSONNumber(LoginStatus.logined.rawValue))),
                ("replayed", .number(JSONNumber(replay.count))),
                ("serverTime", .number(JSONNumber(gateway.clock.nowMillis()))),
                ("userSigExpireAt", .number(JSONNumber(session.userSigExpireAt))),
            ])), flush: replay.isEmpty)
            for (i, event) in replay.enumerated() {
                write(event.frame, flush: i == replay.count - 1)
                writtenSeq = event.seq
            }
        }
    }

    private func logout(_ frame: InboundFrame) {
        guard case .logined(let session) = machine.state else {
            answer(frame.id, RequestError(.notLoggedIn, "not logged in"))
            return
        }
        gateway.loggedOut(session)
        sessionEnded()
        guard let context, let sink else { return }
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        let id = frame.id
        gateway.directory.logout(session, connectionID: connectionID, executor: sink) {
            me.value.answer(id, data: nil)
        }
    }

    private func renewSig(_ frame: InboundFrame) {
        guard case .logined(let session) = machine.state else {
            answer(frame.id, RequestError(.notLoggedIn, "not logged in"))
            return
        }
        let ticket: UserSigTicket
        do throws(RequestError) {
            let request = try RenewSigRequest(frame)
            (_, ticket) = try gateway.authenticator.verify(sdkAppID: session.sdkAppID, userID: session.userID,
                                                            userSig: request.userSig)
        } catch {
            answer(frame.id, error)
            return
        }
        guard let context, let sink else { return }
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        let id = frame.id
        gateway.directory.renewUserSig(session, connectionID: connectionID, ticket: ticket,
                                       executor: sink) { code in
            me.value.renewAnswered(code, session: session, ticket: ticket, id: id)
        }
    }

    private func renewAnswered(_ code: ErrorCode, session: SessionInfo, ticket: UserSigTicket, id: RequestID?) {
        guard code == .ok else {
            let desc = switch code {
            case .userSigRevoked: "UserSig was revoked by an admin kick"
            case .serverBusy: Self.storeUnreachable
            default: "not logged in"
            }
            answer(id, RequestError(code, desc))
            return
        }
        // The session may have ended while the store answered (kicked, expired, logged out).
        guard machine.session?.sessionID == session.sessionID else {
            answer(id, RequestError(.notLoggedIn, "not logged in"))
            return
        }
        machine.renewed(userSigExpireAt: ticket.expiresAt)
        armExpiry(ticket.expiresAt)
        answer(id, data: .object(JSONObject([("userSigExpireAt", .number(JSONNumber(ticket.expiresAt)))])))
    }

    static let storeUnreachable = "the cluster store is unreachable; retry later"

    private func send(_ frame: InboundFrame) {
        guard case .logined(let session) = machine.state else {
            answer(frame.id, RequestError(.notLoggedIn, "not logged in"))
            return
        }
        let request: SendRequest
        do throws(RequestError) {
            request = try SendRequest(frame)
        } catch {
            answer(frame.id, error)
            return
        }
        guard let context, let sink else { return }
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        let id = frame.id
        gateway.directory.send(from: session, to: request.to, payload: request.payload,
                               executor: sink) { result in
            me.value.sendAnswered(result, id: id)
        }
    }

    private func sendAnswered(_ result: Result<SendResult, RequestError>, id: RequestID?) {
        switch result {
        case .success(let sent):
            gateway.messageSent()
            answer(id, data: .object(JSONObject([
                ("msgID", .string(sent.msgID)),
                ("online", .number(JSONNumber(sent.online))),
            ])))
        case .failure(let error):
            answer(id, error)
        }
    }

    /// Logout or UserSig expiry: no session; the connection stays for another login.
    private func sessionEnded() {
        machine.sessionEnded()
        expiryDeadline = .distantFuture
        armLoginTimeout()
    }

    // MARK: Deliveries from the session table (on this loop)

    fileprivate func handle(_ delivery: SessionDelivery) {
        guard !closing else { return }
        switch delivery {
        case .event(let sessionID, let event):
            guard machine.session?.sessionID == sessionID, event.seq > writtenSeq else { return }
            let frame = event.frame
            if let context, !context.channel.isWritable {
                unwritableBytes = Int32(clamping: Int(unwritableBytes) + frame.count)
                if Int(unwritableBytes) > gateway.configuration.maxPendingBytes {
                    // A client that does not read: cut it off. Its session detaches and buffers.
                    gateway.logger.info("closing a connection that does not read", metadata: ["connection.id": "\(connectionID)"])
                    closing = true
                    context.close(mode: .all, promise: nil)
                    return
                }
            }
            write(frame)
            writtenSeq = event.seq
        case .kicked(let sessionID, let event):
            guard machine.session?.sessionID == sessionID else { return }
            machine.close()
            write(event.frame)
            close(code: .kickedOffline, reason: "kicked offline")
        case .resumedElsewhere(let sessionID):
            guard machine.session?.sessionID == sessionID else { return }
            machine.close()
            close(code: .resumedElsewhere, reason: "session resumed on another connection")
        }
    }

    // MARK: Drain

    /// The server is going away: tell the client to resume elsewhere within `afterMillis`, and
    /// close with 1001 then if it has not gone by itself.
    func drain(afterMillis: Int64) {
        guard let context, !closing else { return }
        write(OutboundFrame.connectionEvent(name: .reconnect,
                                            data: .object(JSONObject([("after", .number(JSONNumber(afterMillis)))]))))
        drainDeadline = context.eventLoop.now + .milliseconds(afterMillis)
        rearmTimer()
    }

    // MARK: Timer

    func handleScheduledCallback(eventLoop: some EventLoop) {
        timer = nil
        timerDeadline = .distantFuture
        guard let context, !closing else { return }
        let now = eventLoop.now
        let heartbeat = gateway.configuration.heartbeat
        if now - lastInbound >= heartbeat * 2 {
            // Dead peer: nothing, not even a pong, for two heartbeats. The session detaches.
            timedOut = true
            closing = true
            context.close(promise: nil)
            return
        }
        if now >= loginDeadline {
            close(code: .loginTimeout, reason: "no login in time")
            return
        }
        if now >= drainDeadline {
            close(code: .goingAway, reason: "server draining; resume on a new connection")
            return
        }
        if now >= expiryDeadline {
            expiryDeadline = .distantFuture
            if case .logined(let session) = machine.state, let sink {
                let me = NIOLoopBound(self, eventLoop: context.eventLoop)
                gateway.directory.expireUserSig(session, connectionID: connectionID, writtenSeq: writtenSeq,
                                                executor: sink) { event in
                    me.value.expiryAnswered(event, session: session)
                }
            }
        }
        if now >= nextPing {
            var payload = context.channel.allocator.buffer(capacity: 8)
            payload.writeInteger(writtenSeq)
            context.writeAndFlush(Self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: payload)),
                                  promise: nil)
            nextPing = now + heartbeat
        }
        rearmTimer()
    }

    private func expiryAnswered(_ event: SessionEvent?, session: SessionInfo) {
        guard let event, !closing, machine.session?.sessionID == session.sessionID else { return }
        write(event.frame)
        gateway.userSigExpired(session)
        sessionEnded()
    }

    private func armLoginTimeout() {
        guard let context else { return }
        loginDeadline = context.eventLoop.now + gateway.configuration.loginTimeout
        rearmTimer()
    }

    /// Expired when now > expireAt: the timer fires one millisecond after the second ends.
    private func armExpiry(_ expireAt: Int64) {
        let remaining = expireAt * 1000 + 1 - gateway.clock.nowMillis()
        guard let context else { return }
        expiryDeadline = context.eventLoop.now + .milliseconds(max(0, remaining))
        rearmTimer()
    }

    private func rearmTimer() {
        guard let context, !closing else { return }
        var due = min(nextPing, lastInbound + gateway.configuration.heartbeat * 2)
        due = min(due, loginDeadline, expiryDeadline, drainDeadline)
        if timerDeadline <= due { return }
        if let timer { timer.cancel() }
        timer = try? context.eventLoop.assumeIsolated().scheduleCallback(at: due, handler: self)
        timerDeadline = due
    }

    private func acknowledge(through seq: UInt64) {
        guard seq > provenSeq, seq <= writtenSeq, case .logined(let session) = machine.state else { return }
        if provenSeq > releasedSeq {
            releasedSeq = provenSeq
            gateway.directory.acknowledge(session, connectionID: connectionID, through: provenSeq)
        }
        provenSeq = seq
    }

    // MARK: Writing

    private func answer(_ id: RequestID?, _ error: RequestError) {
        if let id {
            write(OutboundFrame.reply(id: id, code: error.code, desc: error.desc))
        } else {
            write(OutboundFrame.errorEvent(code: error.code, desc: error.desc))
        }
    }

    private func answer(_ id: RequestID?, data: JSONValue?, flush: Bool = true) {
        guard let id else { return }
        write(OutboundFrame.reply(id: id, code: .ok, data: data), flush: flush)
    }

    private func write(_ bytes: [UInt8], flush: Bool = true) {
        guard let context else { return }
        let frame = WebSocketFrame(fin: true, opcode: .text, data: context.channel.allocator.buffer(bytes: bytes))
        if flush {
            context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
        } else {
            context.write(Self.wrapOutboundOut(frame), promise: nil)
        }
    }

    /// Sends a close frame, then shuts down only our side: a full close while the client is
    /// still sending would make the kernel answer with a reset that can destroy the close frame
    /// before the client reads it. What still arrives is read and dropped; the connection ends
    /// when the client closes its side, or after `lingerTime` at the latest.
    private func close(code: CloseCode, reason: String) {
        guard let context, !closing else { return }
        closing = true
        var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.writeInteger(code.rawValue)
        data.writeString(String(reason.utf8.prefix(120)) ?? "")
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        let channel = context.channel
        context.writeAndFlush(Self.wrapOutboundOut(frame)).assumeIsolated().whenComplete { result in
            guard case .success = result else {
                channel.close(promise: nil)
                return
            }
            channel.close(mode: .output, promise: nil)
            _ = try? channel.eventLoop.scheduleCallback(in: Self.lingerTime, handler: CloseLater(channel: channel))
        }
    }

    static let lingerTime: TimeAmount = .seconds(2)

    /// The connection is gone: a session still held detaches (resumable), timers stop, and the
    /// sink lets go of this handler.
    private func teardown() {
        guard let sink else { return }
        self.sink = nil
        closing = true
        timer?.cancel()
        timer = nil
        sink.release()
        gateway.connectionClosed()
        limits?.releaseConnection(addressKey)
        if let context { registry?.remove(id: connectionID, on: context.eventLoop) }
        guard let session = machine.session else { return }
        machine.close()
        if gateway.directory.detach(session, connectionID: connectionID) {
            gateway.disconnected(session, timedOut: timedOut)
        }
    }
}

@available(*, unavailable)
extension ClientConnectionHandler: Sendable {}

/// The connection as the session table sees it: hands deliveries to the connection's loop.
///
/// `handler` is confined to `eventLoop`: it is read only inside tasks run there and cleared only
/// there (checked in debug builds). That is what `NIOLoopBoundBox` would enforce, without a
/// second allocation per connection.
final class ConnectionSink: SessionSink, DirectoryExecutor, @unchecked Sendable {
    private let eventLoop: any EventLoop
    private var handler: ClientConnectionHandler?

    init(handler: ClientConnectionHandler, eventLoop: any EventLoop) {
        self.handler = handler
        self.eventLoop = eventLoop
    }

    func deliver(_ delivery: SessionDelivery) {
        eventLoop.execute {
            self.eventLoop.assertInEventLoop()
            self.handler?.handle(delivery)
        }
    }

    /// Runs a session directory's answer on the connection's loop (the sink is the connection's
    /// `DirectoryExecutor`: no extra object per request).
    func execute(_ work: @escaping @Sendable () -> Void) {
        eventLoop.execute(work)
    }

    /// Breaks the handler ↔ sink cycle once the connection is gone.
    func release() {
        eventLoop.assertInEventLoop()
        handler = nil
    }
}

/// Ends a connection whose client did not close its side in time.
private struct CloseLater: NIOScheduledCallbackHandler, Sendable {
    let channel: any Channel

    func handleScheduledCallback(eventLoop: some EventLoop) {
        channel.close(promise: nil)
    }
}
