import Synchronization

/// Limits per client address (PROTOCOL §8: 70050 / close 4003): open connections, and failed
/// logins per minute. Addresses are keys (`AddressLimits.key(for:)`), sharded by key, each shard
/// behind its own lock; entries go away when they are back to nothing.
public final class AddressLimits: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// Connections one address may hold open at once.
        public var maxConnections: Int
        /// Failed logins one address may make in `failureWindowMillis` before its logins are
        /// refused until the window ends.
        public var maxFailedLogins: Int
        public var failureWindowMillis: Int64

        public init(maxConnections: Int = 1000, maxFailedLogins: Int = 20, failureWindowMillis: Int64 = 60_000) {
            self.maxConnections = maxConnections
            self.maxFailedLogins = maxFailedLogins
            self.failureWindowMillis = failureWindowMillis
        }
    }

    private struct Entry {
        var connections = 0
        var failures = 0
        var windowStart: Int64 = 0
    }

    private struct Shard {
        var entries: [UInt64: Entry] = [:]
        var nextPurge: Int64 = 0

        /// Drops addresses with no connection whose failure window has ended, at most every window.
        mutating func purgeIfDue(now: Int64, window: Int64) {
            guard now >= nextPurge else { return }
            nextPurge = now + window
            entries = entries.filter { $0.value.connections > 0 || now < $0.value.windowStart + window }
        }
    }

    public let configuration: Configuration
    private let clock: any WallClock
    private let shards: [Box]

    public init(configuration: Configuration, clock: any WallClock) {
        self.configuration = configuration
        self.clock = clock
        self.shards = (0..<16).map { _ in Box() }
    }

    /// A compact key for an address: a hash (FNV-1a) of its bytes.
    public static func key(forAddressBytes bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    private final class Box: Sendable {
        let state = Mutex(Shard())
    }

    private func shard(_ key: UInt64) -> Box {
        shards[Int(truncatingIfNeeded: (key ^ (key >> 29)) & 15)]
    }

    /// A new connection from `key`: false when the address already holds its maximum.
    public func acquireConnection(_ key: UInt64) -> Bool {
        let now = clock.nowMillis()
        return shard(key).state.withLock { shard in
            shard.purgeIfDue(now: now, window: configuration.failureWindowMillis)
            var entry = shard.entries[key] ?? Entry()
            guard entry.connections < configuration.maxConnections else { return false }
            entry.connections += 1
            shard.entries[key] = entry
            return true
        }
    }

    public func releaseConnection(_ key: UInt64) {
        let now = clock.nowMillis()
        shard(key).state.withLock { shard in
            guard var entry = shard.entries[key] else { return }
            entry.connections = max(0, entry.connections - 1)
            shard.entries[key] = isIdle(entry, now: now) ? nil : entry
        }
    }

    /// Whether logins from `key` are refused now (too many failures in the current window).
    public func loginsBlocked(_ key: UInt64) -> Bool {
        let now = clock.nowMillis()
        return shard(key).state.withLock { shard in
            guard let entry = shard.entries[key] else { return false }
            return entry.failures >= configuration.maxFailedLogins
                && now < entry.windowStart + configuration.failureWindowMillis
        }
    }

    /// A failed login from `key`. Returns true when this failure reaches the limit.
    @discardableResult
    public func recordFailedLogin(_ key: UInt64) -> Bool {
        let now = clock.nowMillis()
        return shard(key).state.withLock { shard in
            shard.purgeIfDue(now: now, window: configuration.failureWindowMillis)
            var entry = shard.entries[key] ?? Entry()
            if now >= entry.windowStart + configuration.failureWindowMillis {
                entry.windowStart = now
                entry.failures = 0
            }
            entry.failures += 1
            shard.entries[key] = entry
            return entry.failures >= configuration.maxFailedLogins
        }
    }

    /// Open connections from `key` (for tests and stats).
    public func connections(_ key: UInt64) -> Int {
        shard(key).state.withLock { $0.entries[key]?.connections ?? 0 }
    }

    private func isIdle(_ entry: Entry, now: Int64) -> Bool {
        entry.connections == 0 && (entry.failures == 0 || now >= entry.windowStart + configuration.failureWindowMillis)
    }
}
