/// The platforms a client may log in from (PROTOCOL §3). The raw values are the wire names.
public enum Platform: String, CaseIterable, Sendable, Hashable {
    case android = "Android"
    case iPhone = "iPhone"
    case iPad = "iPad"
    case windows = "Windows"
    case mac = "Mac"
    case linux = "Linux"
    case web = "Web"

    /// A small dense index, for per-platform arrays instead of dictionaries.
    public var index: Int {
        switch self {
        case .android: 0
        case .iPhone: 1
        case .iPad: 2
        case .windows: 3
        case .mac: 4
        case .linux: 5
        case .web: 6
        }
    }
}

/// A connection's login status as `getLoginStatus` reports it (the Chat SDK's numbers).
public enum LoginStatus: Int, Sendable, Hashable {
    case logined = 1
    case logining = 2
    case logout = 3
}
