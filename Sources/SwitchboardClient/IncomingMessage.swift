public import SwitchboardProtocol

/// A `message` event as the app receives it (PROTOCOL §8): each one once, in the order the
/// server numbered them, across reconnects.
public struct IncomingMessage: Sendable, Hashable {
    /// The event's number in the session. It restarts at 1 when the SDK had to log in afresh
    /// (the old session could not be resumed).
    public let seq: UInt64
    public let msgID: String
    public let from: String
    public let to: String
    /// Whatever JSON the sender sent.
    public let payload: JSONValue
    /// Server time when it was sent (ms since the Unix epoch).
    public let time: Int64

    public init(seq: UInt64, msgID: String, from: String, to: String, payload: JSONValue, time: Int64) {
        self.seq = seq
        self.msgID = msgID
        self.from = from
        self.to = to
        self.payload = payload
        self.time = time
    }

    /// From an event's `data` object; fields that are missing read as empty.
    init(seq: UInt64, data: JSONValue?) {
        self.init(seq: seq, msgID: data?["msgID"]?.stringValue ?? "", from: data?["from"]?.stringValue ?? "",
                  to: data?["to"]?.stringValue ?? "", payload: data?["payload"] ?? .null,
                  time: data?["time"]?.int64Value ?? 0)
    }
}

/// The reply to `send(to:payload:)`.
public struct SendReceipt: Sendable, Hashable {
    public let msgID: String
    /// How many of the recipient's attached instances it reached (detached ones buffer it).
    public let online: Int

    public init(msgID: String, online: Int) {
        self.msgID = msgID
        self.online = online
    }
}
