/// The `code` of a reply or an `error` event (PROTOCOL §8). Tencent's numbers where Tencent has one.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let ok = ErrorCode(rawValue: 0)
    public static let notLoggedIn = ErrorCode(rawValue: 6014)
    public static let invalidParameters = ErrorCode(rawValue: 6017)
    public static let noSessionToResume = ErrorCode(rawValue: 6026)
    /// The client library's own code for an expired UserSig; the server never sends it.
    public static let clientUserSigExpired = ErrorCode(rawValue: 6206)
    public static let kickedOffline = ErrorCode(rawValue: 6208)
    public static let loginInProcess = ErrorCode(rawValue: 7501)
    public static let rateLimited = ErrorCode(rawValue: 9506)
    public static let userSigExpired = ErrorCode(rawValue: 70001)
    public static let userSigEmpty = ErrorCode(rawValue: 70002)
    public static let userSigMalformed = ErrorCode(rawValue: 70003)
    public static let userSigMismatch = ErrorCode(rawValue: 70009)
    public static let userSigWrongUser = ErrorCode(rawValue: 70013)
    public static let userSigWrongApp = ErrorCode(rawValue: 70014)
    public static let unknownSDKAppID = ErrorCode(rawValue: 70020)
    public static let tooManyFailedLogins = ErrorCode(rawValue: 70050)
    public static let userSigRevoked = ErrorCode(rawValue: 70052)
    public static let noSuchUser = ErrorCode(rawValue: 70107)
    public static let serverBusy = ErrorCode(rawValue: 70169)
    public static let adminInvalidParameter = ErrorCode(rawValue: 70402)

    public var description: String { String(rawValue) }
}

/// WebSocket close codes Switchboard sends (PROTOCOL §8).
public struct CloseCode: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let normal = CloseCode(rawValue: 1000)
    public static let goingAway = CloseCode(rawValue: 1001)
    public static let protocolError = CloseCode(rawValue: 1002)
    public static let binaryFrame = CloseCode(rawValue: 1003)
    public static let invalidUTF8 = CloseCode(rawValue: 1007)
    public static let policyViolation = CloseCode(rawValue: 1008)
    public static let frameTooBig = CloseCode(rawValue: 1009)
    public static let internalError = CloseCode(rawValue: 1011)
    public static let loginTimeout = CloseCode(rawValue: 4000)
    public static let kickedOffline = CloseCode(rawValue: 4002)
    public static let tooManyFailedLogins = CloseCode(rawValue: 4003)
    public static let resumedElsewhere = CloseCode(rawValue: 4005)
}
