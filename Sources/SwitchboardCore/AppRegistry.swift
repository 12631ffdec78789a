import SwitchboardProtocol
public import UserSig
import Synchronization

/// One app served by the gateway: its UserSig key and login policy.
public struct AppConfiguration: Sendable {
    public var sdkAppID: UInt64
    public var secretKey: String
    public var adminUser: String
    public var policy: LoginPolicy
    public var stateCallbackURL: String
    /// Derived from `secretKey` once, not per login.
    public let key: UserSigKey

    public init(sdkAppID: UInt64, secretKey: String, adminUser: String = "administrator",
                policy: LoginPolicy = try! LoginPolicy(), stateCallbackURL: String = "") {
        self.sdkAppID = sdkAppID
        self.secretKey = secretKey
        self.adminUser = adminUser
        self.policy = policy
        self.stateCallbackURL = stateCallbackURL
        self.key = UserSigKey(secret: secretKey)
    }
}

/// The apps in force. Replaced whole on reload (SIGHUP), read on every login.
public final class AppRegistry: Sendable {
    private let apps: Mutex<[UInt64: AppConfiguration]>

    public init(_ apps: [AppConfiguration]) {
        self.apps = Mutex(Dictionary(apps.map { ($0.sdkAppID, $0) }, uniquingKeysWith: { _, last in last }))
    }

    public func app(_ sdkAppID: UInt64) -> AppConfiguration? {
        apps.withLock { $0[sdkAppID] }
    }

    public var all: [AppConfiguration] {
        apps.withLock { Array($0.values) }.sorted { $0.sdkAppID < $1.sdkAppID }
    }

    public func replace(with newApps: [AppConfiguration]) {
        let table = Dictionary(newApps.map { ($0.sdkAppID, $0) }, uniquingKeysWith: { _, last in last })
        apps.withLock { $0 = table }
    }
}
