/// A request's `id`: a number or a string chosen by the client, echoed verbatim in the reply.
public enum RequestID: Sendable, Hashable {
    case number(JSONNumber)
    case string(String)

    public init?(_ value: JSONValue) {
        switch value {
        case .number(let n): self = .number(n)
        case .string(let s): self = .string(s)
        default: return nil
        }
    }

    func write(into w: inout JSONWriter) {
        switch self {
        case .number(let n): w.writeRaw(n.text)
        case .string(let s): w.writeString(s)
        }
    }
}

/// One decoded client frame: `op`, optional `id`, and the whole object for the op's own fields.
public struct InboundFrame: Sendable, Hashable {
    public var op: String
    public var id: RequestID?
    public var fields: JSONObject

    public init(op: String, id: RequestID?, fields: JSONObject) {
        self.op = op
        self.id = id
        self.fields = fields
    }

    public func string(_ key: String) -> String? { fields[key]?.stringValue }
}

/// What a text frame turned out to be (PROTOCOL §1).
public enum FrameDecodeResult: Sendable {
    case request(InboundFrame)
    /// Not a JSON object with a string `op`, or an `id` that is neither number nor string.
    /// `id` is set when one was usable, so the error can go out as a reply.
    case malformed(id: RequestID?, reason: String)
}

public enum FrameDecoder {
    /// Decodes one text frame's payload, which the caller has already checked is valid UTF-8.
    public static func decode(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 32) -> FrameDecodeResult {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, maxDepth: maxDepth)
        } catch {
            return .malformed(id: nil, reason: "frame is not valid JSON: \(error.reason) at byte \(error.offset)")
        }
        guard case .object(let object) = value else {
            return .malformed(id: nil, reason: "frame must be a JSON object")
        }
        var id: RequestID?
        if let rawID = object["id"] {
            guard let usable = RequestID(rawID) else {
                return .malformed(id: nil, reason: "id must be a number or a string")
            }
            id = usable
        }
        guard let opValue = object["op"] else {
            return .malformed(id: id, reason: "frame has no op")
        }
        guard case .string(let op) = opValue else {
            return .malformed(id: id, reason: "op must be a string")
        }
        return .request(InboundFrame(op: op, id: id, fields: object))
    }

    public static func decode(_ bytes: [UInt8]) -> FrameDecodeResult {
        bytes.withUnsafeBytes { decode($0) }
    }
}

/// Session events carry a `seq`; connection events do not (PROTOCOL §6, §8).
public enum EventName: String, Sendable {
    case message
    case kickedOffline
    case userSigExpired
    case error
    case reconnect
}

/// Builders for every frame the server sends. Frames are built straight into bytes.
public enum OutboundFrame {
    /// `{"op":"reply","id":ID,"code":C,"desc":"...","data":...}`; `desc` omitted when nil.
    public static func reply(id: RequestID, code: ErrorCode, desc: String? = nil, data: JSONValue? = nil) -> [UInt8] {
        var w = JSONWriter(reservingCapacity: 96)
        w.writeRaw("{\"op\":\"reply\",\"id\":")
        id.write(into: &w)
        w.writeRaw(",\"code\":")
        w.writeInt(Int64(code.rawValue))
        if let desc {
            w.writeRaw(",\"desc\":")
            w.writeString(desc)
        }
        if let data {
            w.writeRaw(",\"data\":")
            w.write(data)
        }
        w.writeRaw("}")
        return w.bytes
    }

    /// A session event: `{"op":"event","seq":N,"event":NAME,"data":DATA}` where DATA is already JSON.
    public static func sessionEvent(seq: UInt64, name: EventName, data: [UInt8]) -> [UInt8] {
        var w = JSONWriter(reservingCapacity: data.count + 48)
        w.writeRaw("{\"op\":\"event\",\"seq\":")
        w.writeInt(seq)
        w.writeRaw(",\"event\":\"")
        w.writeRaw(name.rawValue)
        w.writeRaw("\",\"data\":")
        w.bytes.append(contentsOf: data)
        w.writeRaw("}")
        return w.bytes
    }

    /// A connection event (`error`, `reconnect`): no `seq`, never replayed.
    public static func connectionEvent(name: EventName, data: JSONValue) -> [UInt8] {
        var w = JSONWriter(reservingCapacity: 96)
        w.writeRaw("{\"op\":\"event\",\"event\":\"")
        w.writeRaw(name.rawValue)
        w.writeRaw("\",\"data\":")
        w.write(data)
        w.writeRaw("}")
        return w.bytes
    }

    /// The `error` event for a frame that cannot be answered by a reply.
    public static func errorEvent(code: ErrorCode, desc: String) -> [UInt8] {
        connectionEvent(name: .error, data: .object(["code": .number(JSONNumber(Int64(code.rawValue))), "desc": .string(desc)]))
    }

    /// `{"op":"pong","time":MS}`, with the ping's `id` when it had one.
    public static func pong(id: RequestID?, timeMillis: Int64) -> [UInt8] {
        var w = JSONWriter(reservingCapacity: 48)
        w.writeRaw("{\"op\":\"pong\"")
        if let id {
            w.writeRaw(",\"id\":")
            id.write(into: &w)
        }
        w.writeRaw(",\"time\":")
        w.writeInt(timeMillis)
        w.writeRaw("}")
        return w.bytes
    }
}
