import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time in milliseconds since the Unix epoch. Everything in SwitchboardCore reads
/// time from one of these, so expiry, resume windows and DAU rollover are tested without sleeping.
public protocol WallClock: Sendable {
    func nowMillis() -> Int64
}

/// The real clock.
public struct SystemClock: WallClock {
    public init() {}

    public func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// A clock that moves only when told to: for tests.
public final class ManualClock: WallClock {
    private let now: Mutex<Int64>

    public init(millis: Int64 = 1_700_000_000_000) {
        now = Mutex(millis)
    }

    public func nowMillis() -> Int64 { now.withLock { $0 } }

    public func advance(millis: Int64) { now.withLock { $0 += millis } }

    public func advance(seconds: Int64) { advance(millis: seconds * 1000) }

    public func set(millis: Int64) { now.withLock { $0 = millis } }
}
