import Foundation
import NIOCore
import SwitchboardCluster
public import SwitchboardCore
import SwitchboardProtocol
import Yams

/// Everything `switchboard serve` can be told (PROTOCOL §10). Every key is optional but `apps`;
/// the defaults are the embedded default's.
public struct ServerConfiguration: Sendable {
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// WebSocket address (`GET /ws`).
    public var listen = Address(host: "127.0.0.1", port: 8080)
    /// Admin API, health and metrics.
    public var admin = Address(host: "127.0.0.1", port: 9090)
    /// Seconds between server pings; a connection silent for twice this is dead.
    public var heartbeatSeconds: Double = 30
    /// Seconds to wait for the first `login` or `resume`.
    public var loginTimeoutSeconds: Double = 10
    /// Seconds a detached session is kept for a resume.
    public var resumeWindowSeconds: Int64 = 120
    /// Events kept for a detached session.
    public var resumeBuffer: Int = 1000
    /// Largest accepted frame (after reassembly of fragments); larger gets close 1009.
    public var maxFrameBytes: Int = 65536
    /// Seconds SIGTERM may take.
    public var drainTimeoutSeconds: Double = 30
    /// Cluster mode's store; nil: the in-process table.
    public var redis: String?
    public var nodeID: String?
    public var nodeTTLSeconds: Double = 10
    /// PEM files; both set: the WebSocket port speaks `wss://`.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// Event loops (epoll threads); default one per core.
    public var threads: Int = System.coreCount
    /// Bytes a connection may have queued while its client does not read before it is cut off.
    public var maxPendingBytes: Int = 1 << 20
    /// Connections one client address may hold open at once; more get HTTP 429.
    public var maxConnectionsPerAddress: Int = 1000
    /// Failed logins one address may make in a minute; then its logins get 70050 and close 4003
    /// until the minute is over.
    public var maxFailedLogins: Int = 20
    /// Requests one connection may make per second; more get 9506.
    public var maxRequestsPerSecond: Int = 50
    /// Seconds a new connection has to complete the WebSocket upgrade (slow-header defence).
    public var handshakeTimeoutSeconds: Double = 10
    /// Also serve a plain echo on `/echo`, for WebSocket conformance suites. Off by default.
    public var conformanceEcho = false
    /// Every WebSocket-port connection starts with a PROXY protocol header (v1 or v2) naming the
    /// client's address, as HAProxy's `send-proxy-v2` sends it; per-address limits count that.
    public var proxyProtocol = false
    /// State-change callbacks waiting to be posted, at most; more are dropped (and counted).
    public var webhookQueueSize: Int = 10_000
    /// Seconds one callback POST may take.
    public var webhookTimeoutSeconds: Double = 3
    /// Callback POSTs in flight at once (each user's callbacks stay in order).
    public var webhookConcurrency: Int = 4
    public var apps: [AppConfiguration]

    public init(apps: [AppConfiguration]) {
        self.apps = apps
    }

    var heartbeat: TimeAmount { .nanoseconds(Int64(heartbeatSeconds * 1e9)) }
    var loginTimeout: TimeAmount { .nanoseconds(Int64(loginTimeoutSeconds * 1e9)) }
    var handshakeTimeout: TimeAmount { .nanoseconds(Int64(handshakeTimeoutSeconds * 1e9)) }

    /// The sdkAppID of the embedded default's demo app.
    public static let demoSDKAppID: UInt64 = 1_400_000_000

    /// The embedded default: one demo app with a fresh random key.
    public static func embeddedDefault() -> ServerConfiguration {
        var key = ""
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<4 {
            let part = String(rng.next(), radix: 16)
            key += String(repeating: "0", count: 16 - part.count) + part
        }
        return ServerConfiguration(apps: [AppConfiguration(sdkAppID: demoSDKAppID, secretKey: key)])
    }
}

/// A configuration that cannot be used: the key and the reason.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let key: String
    public let reason: String

    public init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }

    public var description: String { "configuration error: \(key): \(reason)" }
}

/// Reads a configuration from a YAML or JSON file and `SWITCHBOARD_*` environment variables.
public enum ConfigurationLoader {
    static let topLevelKeys = [
        "listen", "admin", "heartbeat", "loginTimeout", "resumeWindow", "resumeBuffer", "maxFrameBytes",
        "drainTimeout", "redis", "nodeID", "nodeTTL", "tlsCertificate", "tlsKey", "threads", "maxPendingBytes",
        "maxConnectionsPerAddress", "maxFailedLogins", "maxRequestsPerSecond", "handshakeTimeout",
        "conformanceEcho", "proxyProtocol", "webhookQueueSize", "webhookTimeout", "webhookConcurrency", "apps",
    ]
    static let appKeys = ["sdkAppID", "secretKey", "adminUser", "policy", "maxInstances", "stateCallbackURL"]

    /// `loginTimeout` → `SWITCHBOARD_LOGIN_TIMEOUT`, `nodeID` → `SWITCHBOARD_NODE_ID`.
    public static func environmentName(for key: String) -> String {
        var out = "SWITCHBOARD_"
        var previousLower = false
        for ch in key {
            if ch.isUppercase && previousLower { out.append("_") }
            out.append(contentsOf: ch.uppercased())
            previousLower = ch.isLowercase || ch.isNumber
        }
        return out
    }

    /// - Parameters:
    ///   - path: a YAML or JSON file; nil: the embedded default (whose apps the environment may replace).
    ///   - environment: usually `ProcessInfo.processInfo.environment`.
    public static func load(path: String?, environment: [String: String]) throws(ConfigurationError) -> ServerConfiguration {
        var document: [String: Any] = [:]
        if let path {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ConfigurationError(key: "--config", reason: "cannot read \(path): \(error.localizedDescription)")
            }
            let parsed: Any?
            do {
                parsed = try Yams.load(yaml: text)
            } catch {
                throw ConfigurationError(key: "--config", reason: "\(path) is not valid YAML or JSON: \(error)")
            }
            guard let object = parsed as? [String: Any] else {
                throw ConfigurationError(key: "--config", reason: "\(path) must hold a mapping of keys")
            }
            document = object
        }
        var fromEnvironment = Set<String>()
        for key in topLevelKeys {
            guard let raw = environment[environmentName(for: key)] else { continue }
            fromEnvironment.insert(key)
            let value: Any?
            do {
                value = try Yams.load(yaml: raw)
            } catch {
                throw ConfigurationError(key: environmentName(for: key), reason: "not a valid value: \(error)")
            }
            document[key] = value ?? raw
        }
        do {
            return try build(document, requireApps: path != nil)
        } catch {
            // Name the variable when the bad value came from the environment.
            let top = String(error.key.prefix { $0 != "." && $0 != "[" })
            guard fromEnvironment.contains(top) else { throw error }
            throw ConfigurationError(key: "\(environmentName(for: top)) (\(error.key))", reason: error.reason)
        }
    }

    static func build(_ document: [String: Any], requireApps: Bool) throws(ConfigurationError) -> ServerConfiguration {
        for key in document.keys where !topLevelKeys.contains(key) {
            throw ConfigurationError(key: key, reason: "unknown key (known: \(topLevelKeys.joined(separator: ", ")))")
        }
        var config: ServerConfiguration
        if let apps = document["apps"] {
            config = ServerConfiguration(apps: try parseApps(apps))
        } else if requireApps {
            throw ConfigurationError(key: "apps", reason: "required: at least one app")
        } else {
            config = .embeddedDefault()
        }
        if let v = document["listen"] { config.listen = try address(v, key: "listen") }
        if let v = document["admin"] { config.admin = try address(v, key: "admin") }
        if let v = document["heartbeat"] { config.heartbeatSeconds = try seconds(v, key: "heartbeat") }
        if let v = document["loginTimeout"] { config.loginTimeoutSeconds = try seconds(v, key: "loginTimeout") }
        if let v = document["resumeWindow"] {
            config.resumeWindowSeconds = Int64(try integer(v, key: "resumeWindow", in: 0...86_400))
        }
        if let v = document["resumeBuffer"] { config.resumeBuffer = try integer(v, key: "resumeBuffer", in: 1...1_000_000) }
        if let v = document["maxFrameBytes"] {
            config.maxFrameBytes = try integer(v, key: "maxFrameBytes", in: 256...(16 << 20))
        }
        if let v = document["drainTimeout"] { config.drainTimeoutSeconds = try seconds(v, key: "drainTimeout") }
        if let v = document["redis"] {
            let url = try string(v, key: "redis")
            config.redis = url.isEmpty ? nil : try redisURL(url, key: "redis")
        }
        if let v = document["nodeID"] {
            let id = try string(v, key: "nodeID")
            guard !id.isEmpty, id.utf8.count <= 64 else {
                throw ConfigurationError(key: "nodeID", reason: "must be 1 to 64 characters")
            }
            config.nodeID = id
        }
        if let v = document["nodeTTL"] {
            config.nodeTTLSeconds = try seconds(v, key: "nodeTTL")
            guard config.nodeTTLSeconds >= 0.3 else {
                throw ConfigurationError(key: "nodeTTL", reason: "must be at least 0.3 seconds")
            }
        }
        if let v = document["tlsCertificate"] { config.tlsCertificate = try string(v, key: "tlsCertificate") }
        if let v = document["tlsKey"] { config.tlsKey = try string(v, key: "tlsKey") }
        if (config.tlsCertificate == nil) != (config.tlsKey == nil) {
            throw ConfigurationError(key: config.tlsKey == nil ? "tlsKey" : "tlsCertificate",
                                     reason: "tlsCertificate and tlsKey go together")
        }
        if let v = document["threads"] { config.threads = try integer(v, key: "threads", in: 1...256) }
        if let v = document["maxPendingBytes"] {
            config.maxPendingBytes = try integer(v, key: "maxPendingBytes", in: 4096...(1 << 30))
        }
        if let v = document["maxConnectionsPerAddress"] {
            config.maxConnectionsPerAddress = try integer(v, key: "maxConnectionsPerAddress", in: 1...10_000_000)
        }
        if let v = document["maxFailedLogins"] {
            config.maxFailedLogins = try integer(v, key: "maxFailedLogins", in: 1...1_000_000)
        }
        if let v = document["maxRequestsPerSecond"] {
            config.maxRequestsPerSecond = try integer(v, key: "maxRequestsPerSecond", in: 1...1_000_000)
        }
        if let v = document["handshakeTimeout"] { config.handshakeTimeoutSeconds = try seconds(v, key: "handshakeTimeout") }
        if let v = document["webhookQueueSize"] {
            config.webhookQueueSize = try integer(v, key: "webhookQueueSize", in: 1...1_000_000)
        }
        if let v = document["webhookTimeout"] { config.webhookTimeoutSeconds = try seconds(v, key: "webhookTimeout") }
        if let v = document["webhookConcurrency"] {
            config.webhookConcurrency = try integer(v, key: "webhookConcurrency", in: 1...64)
        }
        if let v = document["conformanceEcho"] {
            guard let flag = v as? Bool else { throw ConfigurationError(key: "conformanceEcho", reason: "must be true or false") }
            config.conformanceEcho = flag
        }
        if let v = document["proxyProtocol"] {
            guard let flag = v as? Bool else { throw ConfigurationError(key: "proxyProtocol", reason: "must be true or false") }
            config.proxyProtocol = flag
        }
        return config
    }

    static func parseApps(_ value: Any) throws(ConfigurationError) -> [AppConfiguration] {
        guard let list = value as? [Any], !list.isEmpty else {
            throw ConfigurationError(key: "apps", reason: "must be a non-empty list of apps")
        }
        var apps: [AppConfiguration] = []
        var seen = Set<UInt64>()
        for (i, item) in list.enumerated() {
            let prefix = "apps[\(i)]"
            guard let app = item as? [String: Any] else {
                throw ConfigurationError(key: prefix, reason: "must be a mapping")
            }
            for key in app.keys where !appKeys.contains(key) {
                throw ConfigurationError(key: "\(prefix).\(key)", reason: "unknown key (known: \(appKeys.joined(separator: ", ")))")
            }
            guard let rawID = app["sdkAppID"] else {
                throw ConfigurationError(key: "\(prefix).sdkAppID", reason: "required")
            }
            let sdkAppID = UInt64(try integer(rawID, key: "\(prefix).sdkAppID", in: 1...Int.max))
            guard seen.insert(sdkAppID).inserted else {
                throw ConfigurationError(key: "\(prefix).sdkAppID", reason: "\(sdkAppID) is configured twice")
            }
            guard let rawKey = app["secretKey"] else {
                throw ConfigurationError(key: "\(prefix).secretKey", reason: "required")
            }
            let secretKey = try string(rawKey, key: "\(prefix).secretKey")
            guard !secretKey.isEmpty else {
                throw ConfigurationError(key: "\(prefix).secretKey", reason: "must not be empty")
            }
            var adminUser = "administrator"
            if let v = app["adminUser"] {
                adminUser = try string(v, key: "\(prefix).adminUser")
                guard isValidUserID(adminUser) else {
                    throw ConfigurationError(key: "\(prefix).adminUser", reason: "must be a valid userID")
                }
            }
            var kind = LoginPolicy.Kind.dual
            if let v = app["policy"] {
                let name = try string(v, key: "\(prefix).policy")
                guard let k = LoginPolicy.Kind(rawValue: name) else {
                    throw ConfigurationError(key: "\(prefix).policy", reason: "must be one of single, dual, triple, multi")
                }
                kind = k
            }
            var limits: [Platform: Int] = [:]
            if let v = app["maxInstances"] {
                guard let map = v as? [String: Any] else {
                    throw ConfigurationError(key: "\(prefix).maxInstances", reason: "must map platforms to numbers")
                }
                for (name, raw) in map {
                    guard let platform = Platform(rawValue: name) else {
                        throw ConfigurationError(key: "\(prefix).maxInstances.\(name)",
                                                 reason: "unknown platform (Android, iPhone, iPad, Windows, Mac, Linux, Web)")
                    }
                    let ceiling = LoginPolicy.ceiling(for: platform)
                    limits[platform] = try integer(raw, key: "\(prefix).maxInstances.\(name)", in: 1...ceiling)
                }
            }
            var callback = ""
            if let v = app["stateCallbackURL"] {
                callback = try string(v, key: "\(prefix).stateCallbackURL")
                guard callback.isEmpty || callback.hasPrefix("http://") || callback.hasPrefix("https://") else {
                    throw ConfigurationError(key: "\(prefix).stateCallbackURL", reason: "must be an http:// or https:// URL")
                }
            }
            let policy: LoginPolicy
            do {
                policy = try LoginPolicy(kind: kind, maxInstances: limits)
            } catch {
                throw ConfigurationError(key: "\(prefix).maxInstances", reason: error.description)
            }
            apps.append(AppConfiguration(sdkAppID: sdkAppID, secretKey: secretKey, adminUser: adminUser,
                                         policy: policy, stateCallbackURL: callback))
        }
        return apps
    }

    /// A `redis://[user:password@]host[:port][/db]` URL, checked now so a node never starts on one
    /// it cannot use.
    public static func redisURL(_ text: String, key: String) throws(ConfigurationError) -> String {
        do {
            _ = try RedisURL(text)
        } catch {
            throw ConfigurationError(key: key, reason: "must be a redis://[user:password@]host[:port][/db] URL (\(error))")
        }
        return text
    }

    static func string(_ value: Any, key: String) throws(ConfigurationError) -> String {
        if let s = value as? String { return s }
        if let i = value as? Int { return String(i) }
        throw ConfigurationError(key: key, reason: "must be a string")
    }

    static func integer(_ value: Any, key: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        let n: Int
        if value is Bool {
            throw ConfigurationError(key: key, reason: "must be a whole number")
        } else if let i = value as? Int {
            n = i
        } else if let s = value as? String, let i = Int(s) {
            n = i
        } else {
            throw ConfigurationError(key: key, reason: "must be a whole number")
        }
        guard range.contains(n) else {
            let upper = range.upperBound == Int.max ? "" : " and \(range.upperBound)"
            throw ConfigurationError(key: key, reason: "\(n) is out of range: must be at least \(range.lowerBound)\(upper)")
        }
        return n
    }

    static func seconds(_ value: Any, key: String) throws(ConfigurationError) -> Double {
        let d: Double
        if value is Bool {
            throw ConfigurationError(key: key, reason: "must be a number of seconds")
        } else if let i = value as? Int {
            d = Double(i)
        } else if let x = value as? Double {
            d = x
        } else if let s = value as? String, let x = Double(s) {
            d = x
        } else {
            throw ConfigurationError(key: key, reason: "must be a number of seconds")
        }
        guard d > 0, d <= 86_400, d.isFinite else {
            throw ConfigurationError(key: key, reason: "\(d) is out of range: must be above 0 and at most 86400")
        }
        return d
    }

    static func address(_ value: Any, key: String) throws(ConfigurationError) -> ServerConfiguration.Address {
        let text = try string(value, key: key)
        guard let colon = text.lastIndex(of: ":") else {
            throw ConfigurationError(key: key, reason: "must be host:port, e.g. 127.0.0.1:8080")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError(key: key, reason: "must be host:port with a port from 0 to 65535")
        }
        return .init(host: host, port: port)
    }
}
