public import NIOCore
import NIOPosix
public import NIOSSL
public import SwitchboardProtocol

extension SwitchboardManager {
    /// Everything the SDK is told once, before the first login (the Chat SDK's `initSDK`).
    public struct Configuration: Sendable {
        /// The gateway: `ws://host:port/ws` or `wss://host:port/ws`. The path defaults to `/ws`.
        public var url: String
        public var sdkAppID: UInt64
        /// The platform this client logs in as; the app's multi-client policy applies to it.
        public var platform: Platform
        /// Optional opaque device identifier sent with each login.
        public var deviceID: String?
        /// Backoff between reconnection attempts.
        public var reconnect = ReconnectPolicy()
        /// Bound on each attempt's TCP connect, TLS and WebSocket upgrade, and again on the wait
        /// for the login or resume reply.
        public var connectTimeout: TimeAmount = .seconds(10)
        /// How long a request (`send`, `renewSig`, `logout`) waits for its reply, including any
        /// wait for a connection.
        public var requestTimeout: TimeAmount = .seconds(15)
        /// A connection from which nothing arrives for this long is dead and replaced. nil: two and
        /// a half of the server's heartbeats (it pings every heartbeat, and itself gives up on a
        /// silent client after two).
        public var deadConnectionTimeout: TimeAmount?
        /// TLS settings for `wss://`; nil: the system's trust roots and full verification.
        public var tls: TLSConfiguration?
        /// The largest frame accepted from the server.
        public var maxFrameSize: Int = 1 << 20
        /// Where the SDK's connections and timers run; each manager uses one loop of it.
        public var eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
        /// Seeds the backoff jitter, for reproducible tests; nil: a random seed.
        public var randomSeed: UInt64?

        public init(url: String, sdkAppID: UInt64, platform: Platform) {
            self.url = url
            self.sdkAppID = sdkAppID
            self.platform = platform
        }
    }
}

/// A parsed `ws://` or `wss://` URL.
struct Endpoint: Sendable, Hashable {
    var host: String
    var port: Int
    var path: String
    var secure: Bool
}

extension Endpoint {
    init(_ url: String) throws(SwitchboardError) {
        let bad = SwitchboardError.invalidParameters.with(desc: "not a ws:// or wss:// URL: \(url)")
        let scheme = url.prefix { $0 != ":" }
        guard url[scheme.endIndex...].hasPrefix("://") else { throw bad }
        switch scheme.lowercased() {
        case "ws": secure = false
        case "wss": secure = true
        default: throw bad
        }
        let rest = url[scheme.endIndex...].dropFirst(3)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        let tail = rest[authority.endIndex...]
        path = tail.isEmpty ? "/ws" : (tail.first == "?" ? "/ws" + tail : String(tail))
        var hostPart = Substring(authority)
        var portText: Substring?
        if hostPart.first == "[" {
            // [IPv6]:port
            guard let close = hostPart.firstIndex(of: "]") else { throw bad }
            let afterClose = hostPart[hostPart.index(after: close)...]
            if afterClose.first == ":" { portText = afterClose.dropFirst() } else if !afterClose.isEmpty { throw bad }
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
        } else if let colon = hostPart.lastIndex(of: ":") {
            portText = hostPart[hostPart.index(after: colon)...]
            hostPart = hostPart[..<colon]
        }
        guard !hostPart.isEmpty else { throw bad }
        host = String(hostPart)
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else { throw bad }
            port = value
        } else {
            port = secure ? 443 : 80
        }
    }
}
