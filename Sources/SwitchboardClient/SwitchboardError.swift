/// A failed SDK call, as the Chat SDK reports one: a numeric `code` and an English `desc`.
///
/// Codes the server sent are passed through (PROTOCOL §8: 6014, 6017, 70001, …); codes the SDK
/// makes itself reuse the Chat SDK's client numbers (the 6xxx, 7xxx and 95xx ranges).
public struct SwitchboardError: Error, Sendable, Hashable, CustomStringConvertible {
    public let code: Int
    public let desc: String

    public init(code: Int, desc: String) {
        self.code = code
        self.desc = desc
    }

    public var description: String { "\(code): \(desc)" }

    // Server codes the SDK acts on.
    public static let notLoggedIn = SwitchboardError(code: 6014, desc: "not logged in")
    public static let invalidParameters = SwitchboardError(code: 6017, desc: "invalid parameters")
    public static let noSessionToResume = SwitchboardError(code: 6026, desc: "no session to resume")
    public static let kickedOffline = SwitchboardError(code: 6208, desc: "kicked offline by another login")
    public static let userSigExpiredOnServer = SwitchboardError(code: 70001, desc: "UserSig expired")
    public static let userSigRevoked = SwitchboardError(code: 70052, desc: "UserSig revoked")

    // The SDK's own codes.
    /// The UserSig expired (the client library's number; the server's is 70001).
    public static let userSigExpired = SwitchboardError(code: 6206, desc: "UserSig expired; log in with a new one")
    /// A call was interrupted by `logout` or `shutdown`.
    public static let interrupted = SwitchboardError(code: 7009, desc: "interrupted by logout or shutdown")
    public static let loginInProgress = SwitchboardError(code: 7501, desc: "a login is already in progress")
    public static let logoutInProgress = SwitchboardError(code: 7502, desc: "a logout is already in progress")
    /// The connection dropped while a request waited for its reply: its outcome is unknown.
    public static let networkDisconnected = SwitchboardError(code: 9508, desc: "the connection to the server was lost")
    public static let connectTimeout = SwitchboardError(code: 9510, desc: "connecting to the server timed out")
    public static let connectFailed = SwitchboardError(code: 9511, desc: "could not connect to the server")
    /// A sent request got no reply in time.
    public static let requestTimeout = SwitchboardError(code: 9520, desc: "the server did not reply in time")
    /// A request waited for a connection that did not come back in time.
    public static let noNetworkTimeout = SwitchboardError(code: 9523, desc: "no connection to the server in time")

    func with(desc: String) -> SwitchboardError {
        SwitchboardError(code: code, desc: desc)
    }
}
