import NIOCore
import NIOSSL
public import SwitchboardProtocol
import Synchronization

/// The Switchboard client SDK, shaped like the Chat SDK's `V2TIMManager`, so an app's login code
/// reads the same:
///
///     let manager = try SwitchboardManager(configuration: .init(
///         url: "ws://127.0.0.1:8080/ws", sdkAppID: 1400000000, platform: .iPhone))
///     manager.addListener(myListener)            // onConnecting, onKickedOffline, …
///     try await manager.login(userID: "alice", userSig: sig)
///     Task { for await message in manager.messages { … } }
///     let receipt = try await manager.send(to: "bob", payload: ["text": "hi"])
///
/// Once logged in, the SDK keeps the session: when the connection drops it reconnects with
/// capped, jittered exponential backoff and *resumes* the session, receiving what it missed; if
/// the session cannot be resumed (6026, 6014) it logs in again with the UserSig it holds. It does
/// not come back after a kick or an expired UserSig: the listener says which. `messages`
/// delivers each event once and in order across all of that. Requests made while it reconnects
/// wait for the connection (up to `requestTimeout`).
///
/// All I/O runs on one SwiftNIO event loop of `configuration.eventLoopGroup`. Call `shutdown()`
/// when done.
public final class SwitchboardManager: Sendable {
    public let configuration: Configuration
    /// Incoming `message` events, each once, in order. One consumer; it finishes at `shutdown()`.
    public let messages: AsyncStream<IncomingMessage>
    private let eventLoop: any EventLoop
    private let driver: NIOLoopBoundBox<SessionDriver>
    private let statusBox: StatusBox
    private let isShutDown = Atomic<Bool>(false)

    /// - Throws: `SwitchboardError` 6017 for a URL that is not `ws://` or `wss://`, or TLS
    ///   settings that cannot be used.
    public init(configuration: Configuration) throws(SwitchboardError) {
        let endpoint = try Endpoint(configuration.url)
        var tls: NIOSSLContext?
        if endpoint.secure {
            do {
                tls = try NIOSSLContext(configuration: configuration.tls ?? .makeClientConfiguration())
            } catch {
                throw SwitchboardError.invalidParameters.with(desc: "TLS settings cannot be used: \(error)")
            }
        }
        self.configuration = configuration
        let (stream, continuation) = AsyncStream<IncomingMessage>.makeStream(bufferingPolicy: .unbounded)
        self.messages = stream
        let loop = configuration.eventLoopGroup.next()
        self.eventLoop = loop
        let statusBox = StatusBox()
        self.statusBox = statusBox
        // Made here, then only ever touched on its loop.
        self.driver = NIOLoopBoundBox.makeBoxSendingValue(
            SessionDriver(configuration: configuration, endpoint: endpoint, tls: tls, eventLoop: loop,
                          statusBox: statusBox, messages: continuation),
            eventLoop: loop)
    }

    deinit {
        // Not after `shutdown()`: the app may have shut the event loops down since.
        guard !isShutDown.load(ordering: .relaxed) else { return }
        let driver = self.driver
        eventLoop.execute { driver.value.shutdown() }
    }

    // MARK: Listener

    /// Listeners are called on the SDK's event loop, in order (see `SwitchboardSDKListener`).
    public func addListener(_ listener: any SwitchboardSDKListener) {
        onLoop { $0.addListener(listener) }
    }

    public func removeListener(_ listener: any SwitchboardSDKListener) {
        onLoop { $0.removeListener(listener) }
    }

    // MARK: Login

    /// Logs in: connects, sends `login` with the UserSig, and returns once the server has accepted
    /// it. Logged in as another user already: that user is logged out first. As the same user:
    /// returns at once.
    ///
    /// - Throws: the server's code (70001 expired UserSig, 70009 wrong key, 70020 unknown app, …)
    ///   or the SDK's (9510 connect timeout, 9511 connection failed, 7501 a login in progress).
    public func login(userID: String, userSig: String) async throws(SwitchboardError) {
        if let current = getLoginUser(), current != userID {
            try await logout()
        }
        let credentials = Credentials(userID: userID, userSig: userSig)
        try await call { driver, promise in driver.login(credentials, promise: promise) }
    }

    /// Ends the session on the server and closes the connection. If the connection is down (or
    /// drops meanwhile) the SDK reconnects and resumes just to end the session, within
    /// `requestTimeout`; past that the session is left to end with its resume window.
    public func logout() async throws(SwitchboardError) {
        try await call { driver, promise in driver.logout(promise: promise) }
    }

    /// The user logged in (also while reconnecting), or nil.
    public func getLoginUser() -> String? {
        statusBox.current.userID
    }

    /// LOGINED from a successful login until logout, a kick or an expired UserSig — including while
    /// the SDK reconnects — LOGINING during `login`, LOGOUT otherwise.
    public func getLoginStatus() -> LoginStatus {
        statusBox.current.status
    }

    /// Replaces the UserSig before it expires, without reconnecting; a later fresh login uses it.
    /// - Returns: the new UserSig's expiry (unix seconds).
    @discardableResult
    public func renewSig(_ userSig: String) async throws(SwitchboardError) -> Int64 {
        var w = JSONWriter(reservingCapacity: userSig.utf8.count + 16)
        w.writeRaw("\"userSig\":")
        w.writeString(userSig)
        let members = w.bytes
        let data: JSONValue? = try await call { driver, promise in
            driver.request(op: "renewSig", members: members, promise: promise)
        }
        onLoop { $0.userSigRenewed(userSig) }
        return data?["userSigExpireAt"]?.int64Value ?? 0
    }

    // MARK: Messages

    /// Sends `payload` to every instance of `userID` (and a copy to this user's other instances).
    /// - Throws: 9508 when the connection dropped before the reply (the message may or may not
    ///   have gone: the SDK does not send it twice), 9520/9523 on timeout, or the server's code.
    @discardableResult
    public func send(to userID: String, payload: JSONValue) async throws(SwitchboardError) -> SendReceipt {
        var w = JSONWriter(reservingCapacity: 64)
        w.writeRaw("\"to\":")
        w.writeString(userID)
        w.writeRaw(",\"payload\":")
        w.write(payload)
        let members = w.bytes
        let data: JSONValue? = try await call { driver, promise in
            driver.request(op: "send", members: members, promise: promise)
        }
        return SendReceipt(msgID: data?["msgID"]?.stringValue ?? "",
                           online: data?["online"]?.int64Value.map(Int.init) ?? 0)
    }

    // MARK: Lifecycle

    /// Closes the connection, stops reconnecting, fails what is pending, and finishes `messages`.
    /// A session still held is not logged out: it ends on the server with its resume window.
    public func shutdown() async {
        isShutDown.store(true, ordering: .relaxed)
        let driver = self.driver
        try? await eventLoop.submit { driver.value.shutdown() }.get()
    }

    // MARK: Test hooks

    /// Stops reading from the current connection, so what the server sends next stays unread.
    @_spi(Testing) public func suspendReading() async {
        let driver = self.driver
        try? await eventLoop.submit { driver.value.suspendReading() }.get()
    }

    /// Closes the current connection as a network failure would; the SDK reconnects.
    @_spi(Testing) public func dropConnection() async {
        let driver = self.driver
        try? await eventLoop.submit { driver.value.dropConnection() }.get()
    }

    /// Connection attempts made so far.
    @_spi(Testing) public func connectionAttempts() async -> Int {
        let driver = self.driver
        return (try? await eventLoop.submit { driver.value.attempts }.get()) ?? 0
    }

    // MARK: Internals

    private func onLoop(_ body: @escaping @Sendable (SessionDriver) -> Void) {
        let driver = self.driver
        eventLoop.execute { body(driver.value) }
    }

    private func call<T: Sendable>(
        _ body: @escaping @Sendable (SessionDriver, EventLoopPromise<T>) -> Void
    ) async throws(SwitchboardError) -> T {
        let promise = eventLoop.makePromise(of: T.self)
        onLoop { body($0, promise) }
        do {
            return try await promise.futureResult.get()
        } catch let error as SwitchboardError {
            throw error
        } catch {
            throw SwitchboardError(code: 7012, desc: "internal error: \(error)")
        }
    }
}
