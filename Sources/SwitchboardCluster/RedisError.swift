/// How a Redis request failed.
public enum RedisError: Error, Sendable, Equatable {
    /// Not connected now (never connected, refused, reconnecting, closed, too many pending
    /// requests): requests fail at once rather than queue.
    case unavailable(String)
    /// No reply within the request timeout. The connection is then closed and reconnected;
    /// every other request pending on it fails with `.unavailable` (or `.timeout` if it had
    /// reached its own deadline too).
    case timeout
    /// A `-` error reply; the text includes the code, e.g. `"ERR syntax error"`.
    case server(String)
    /// The bytes received are not RESP2, or a reply arrived that no request was waiting for.
    case protocolError(String)
}

extension RedisError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .unavailable(let reason): return "Redis unavailable: \(reason)"
        case .timeout: return "Redis request timed out"
        case .server(let message): return "Redis error reply: \(message)"
        case .protocolError(let reason): return "Redis protocol error: \(reason)"
        }
    }
}
