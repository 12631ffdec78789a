/// An error answered to a request: a code of §8 and an English description.
public struct RequestError: Error, Sendable, Hashable {
    public var code: ErrorCode
    public var desc: String

    public init(_ code: ErrorCode, _ desc: String) {
        self.code = code
        self.desc = desc
    }
}

/// `userID`: 1 to 32 bytes of `a-z A-Z 0-9 _ -` (PROTOCOL §3).
public func isValidUserID(_ userID: String) -> Bool {
    let utf8 = userID.utf8
    guard (1...32).contains(utf8.count) else { return false }
    return utf8.allSatisfy { b in
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2D
    }
}

public struct LoginRequest: Sendable, Hashable {
    public var sdkAppID: UInt64
    public var userID: String
    public var userSig: String
    public var platform: Platform
    public var deviceID: String?

    /// Field checks in the order a client author would fix them; a missing or empty `userSig`
    /// is 70002 (empty), every other wrong field 6017.
    public init(_ frame: InboundFrame) throws(RequestError) {
        guard let appValue = frame.fields["sdkAppID"] else {
            throw RequestError(.invalidParameters, "sdkAppID is required")
        }
        guard let sdkAppID = appValue.numberValue?.uint64 else {
            throw RequestError(.invalidParameters, "sdkAppID must be a positive integer")
        }
        guard let userValue = frame.fields["userID"] else {
            throw RequestError(.invalidParameters, "userID is required")
        }
        guard let userID = userValue.stringValue, isValidUserID(userID) else {
            throw RequestError(.invalidParameters, "userID must be 1 to 32 characters of a-z A-Z 0-9 _ -")
        }
        guard let platformValue = frame.fields["platform"] else {
            throw RequestError(.invalidParameters, "platform is required")
        }
        guard let name = platformValue.stringValue, let platform = Platform(rawValue: name) else {
            throw RequestError(.invalidParameters,
                               "platform must be one of Android, iPhone, iPad, Windows, Mac, Linux, Web")
        }
        var deviceID: String?
        if let deviceValue = frame.fields["deviceID"], !deviceValue.isNull {
            guard let d = deviceValue.stringValue, d.utf8.count <= 128 else {
                throw RequestError(.invalidParameters, "deviceID must be a string of at most 128 bytes")
            }
            deviceID = d
        }
        var userSig = ""
        if let sigValue = frame.fields["userSig"], !sigValue.isNull {
            guard let s = sigValue.stringValue else {
                throw RequestError(.invalidParameters, "userSig must be a string")
            }
            userSig = s
        }
        guard !userSig.isEmpty else {
            throw RequestError(.userSigEmpty, "userSig is empty")
        }
        self.sdkAppID = sdkAppID
        self.userID = userID
        self.userSig = userSig
        self.platform = platform
        self.deviceID = deviceID
    }
}

public struct ResumeRequest: Sendable, Hashable {
    public var sessionID: String
    public var resumeToken: String
    /// The last `seq` the client received; 0 when it received none (or sent none).
    public var lastSeq: UInt64

    public init(_ frame: InboundFrame) throws(RequestError) {
        guard let sessionID = frame.fields["sessionID"]?.stringValue, !sessionID.isEmpty else {
            throw RequestError(.invalidParameters, "sessionID must be a non-empty string")
        }
        guard let token = frame.fields["resumeToken"]?.stringValue, !token.isEmpty else {
            throw RequestError(.invalidParameters, "resumeToken must be a non-empty string")
        }
        var lastSeq: UInt64 = 0
        if let value = frame.fields["lastSeq"], !value.isNull {
            guard let n = value.numberValue?.uint64 else {
                throw RequestError(.invalidParameters, "lastSeq must be a non-negative integer")
            }
            lastSeq = n
        }
        self.sessionID = sessionID
        self.resumeToken = token
        self.lastSeq = lastSeq
    }
}

public struct SendRequest: Sendable, Hashable {
    public var to: String
    public var payload: JSONValue

    public init(_ frame: InboundFrame) throws(RequestError) {
        guard let to = frame.fields["to"]?.stringValue, isValidUserID(to) else {
            throw RequestError(.invalidParameters, "to must be a userID")
        }
        guard let payload = frame.fields["payload"] else {
            throw RequestError(.invalidParameters, "payload is required")
        }
        self.to = to
        self.payload = payload
    }
}

public struct RenewSigRequest: Sendable, Hashable {
    public var userSig: String

    public init(_ frame: InboundFrame) throws(RequestError) {
        var userSig = ""
        if let value = frame.fields["userSig"], !value.isNull {
            guard let s = value.stringValue else {
                throw RequestError(.invalidParameters, "userSig must be a string")
            }
            userSig = s
        }
        guard !userSig.isEmpty else { throw RequestError(.userSigEmpty, "userSig is empty") }
        self.userSig = userSig
    }
}
