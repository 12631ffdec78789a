public import SwitchboardProtocol

/// A session event (`message`, `kickedOffline`, `userSigExpired`) with its per-session `seq`.
/// `data` is the event's JSON, shared by every session the same event goes to.
public struct SessionEvent: Sendable {
    public let seq: UInt64
    public let name: EventName
    public let data: [UInt8]

    public init(seq: UInt64, name: EventName, data: [UInt8]) {
        self.seq = seq
        self.name = name
        self.data = data
    }

    /// The frame as the client receives it.
    public var frame: [UInt8] { OutboundFrame.sessionEvent(seq: seq, name: name, data: data) }
}

/// What the session table hands to a connection that holds a session.
public enum SessionDelivery: Sendable {
    /// A live event: write it.
    case event(sessionID: String, SessionEvent)
    /// The session was kicked: write the `kickedOffline` event, then close with 4002.
    case kicked(sessionID: String, SessionEvent)
    /// A resume moved the session to another connection: close this one with 4005.
    case resumedElsewhere(sessionID: String)
}

/// The connection side of a session. `deliver` is called while a shard lock is held, so it must
/// only hand the delivery over to the connection's own event loop, never do I/O or block. Calls
/// for one session are made in order, and the sink must keep that order.
public protocol SessionSink: AnyObject, Sendable {
    func deliver(_ delivery: SessionDelivery)
}

/// A connection as the table knows it: a process-unique id and where deliveries go.
public struct ConnectionRef: Sendable {
    public let id: UInt64
    public let sink: any SessionSink

    public init(id: UInt64, sink: any SessionSink) {
        self.id = id
        self.sink = sink
    }
}

/// A logged-in session as the connection and the client see it.
public struct SessionInfo: Sendable, Hashable {
    public let sessionID: String
    public internal(set) var resumeToken: String
    public let sdkAppID: UInt64
    public let userID: String
    public let platform: Platform
    /// Unix seconds (TLS.time + TLS.expire of the UserSig in force).
    public var userSigExpireAt: Int64

    public init(sessionID: String, resumeToken: String, sdkAppID: UInt64, userID: String, platform: Platform,
                userSigExpireAt: Int64) {
        self.sessionID = sessionID
        self.resumeToken = resumeToken
        self.sdkAppID = sdkAppID
        self.userID = userID
        self.platform = platform
        self.userSigExpireAt = userSigExpireAt
    }
}
