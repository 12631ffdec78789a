/// What the SDK tells the app about its connection and session, shaped like `V2TIMSDKListener`.
///
/// Callbacks arrive one at a time, in order, on the SDK's event loop: return quickly and do not
/// block. Every implementation is optional.
///
/// - `onConnecting`: an attempt to reach the server starts (at `login`, and before each
///   reconnection). Exactly one `onConnectSuccess` or `onConnectFailed` follows it.
/// - `onConnectSuccess`: the session is attached: logged in, or resumed with nothing missed.
/// - `onConnectFailed`: an attempt failed, or an established connection was lost (code 9508).
///   The SDK reconnects by itself unless one of the two callbacks below follows.
/// - `onKickedOffline`: another login pushed this one out (PROTOCOL §5). The SDK does not
///   reconnect; log in again when the user asks.
/// - `onUserSigExpired`: the UserSig lapsed. The SDK does not reconnect; log in with a new one.
public protocol SwitchboardSDKListener: AnyObject, Sendable {
    func onConnecting()
    func onConnectSuccess()
    func onConnectFailed(code: Int, desc: String)
    func onKickedOffline()
    func onUserSigExpired()
}

extension SwitchboardSDKListener {
    public func onConnecting() {}
    public func onConnectSuccess() {}
    public func onConnectFailed(code: Int, desc: String) {}
    public func onKickedOffline() {}
    public func onUserSigExpired() {}
}
