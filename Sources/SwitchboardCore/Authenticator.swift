public import SwitchboardProtocol
public import UserSig

/// Checks a login's app and UserSig (PROTOCOL §4): pure, no locks beyond the app lookup.
public struct Authenticator: Sendable {
    public let apps: AppRegistry
    public let clock: any WallClock

    public init(apps: AppRegistry, clock: any WallClock) {
        self.apps = apps
        self.clock = clock
    }

    /// - Returns: the app and the decoded ticket, or the §4 error (70020 for an unknown app).
    public func verify(sdkAppID: UInt64, userID: String, userSig: String) throws(RequestError) -> (AppConfiguration, UserSigTicket) {
        guard let app = apps.app(sdkAppID) else {
            throw RequestError(.unknownSDKAppID, "sdkAppID \(sdkAppID) is not configured on this server")
        }
        let nowMillis = clock.nowMillis()
        let ticket: UserSigTicket
        do {
            ticket = try TLSSigAPIv2.verify(userSig, sdkAppID: sdkAppID, identifier: userID, key: app.key,
                                            now: nowMillis / 1000)
        } catch {
            throw RequestError(ErrorCode(rawValue: error.code), error.reason)
        }
        // Expired when now > time + expire, read in milliseconds so the expiry timer agrees.
        guard nowMillis <= ticket.expiresAt * 1000 else {
            throw RequestError(.userSigExpired, "UserSig expired")
        }
        return (app, ticket)
    }
}
