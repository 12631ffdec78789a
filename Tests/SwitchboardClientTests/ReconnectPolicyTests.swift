import NIOCore
@testable import SwitchboardClient
import Testing

@Suite("Reconnect backoff")
struct ReconnectPolicyTests {
    @Test func firstRetryIsImmediateThenGrowsToTheCap() {
        let policy = ReconnectPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(1), multiplier: 2,
                                     jitter: 0, immediateFirstRetry: true)
        var random = SplitMix64(seed: 1)
        let delays = (0..<8).map { policy.delay(attempt: $0, using: &random) }
        #expect(delays == [.zero, .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                           .seconds(1), .seconds(1), .seconds(1)])
    }

    @Test func withoutImmediateRetryTheFirstAttemptWaitsTheInitialDelay() {
        let policy = ReconnectPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(1), multiplier: 3,
                                     jitter: 0, immediateFirstRetry: false)
        var random = SplitMix64(seed: 1)
        let delays = (0..<4).map { policy.delay(attempt: $0, using: &random) }
        #expect(delays == [.milliseconds(100), .milliseconds(300), .milliseconds(900), .seconds(1)])
    }

    /// Jitter takes a random share of each delay away, never more than `jitter` of it; the same
    /// seed gives the same delays.
    @Test(arguments: [0.25, 0.5, 1.0])
    func jitterStaysInItsBandAndIsReproducible(jitter: Double) {
        let policy = ReconnectPolicy(initialDelay: .milliseconds(200), maxDelay: .seconds(5), multiplier: 2,
                                     jitter: jitter, immediateFirstRetry: true)
        var a = SplitMix64(seed: 42)
        var b = SplitMix64(seed: 42)
        var distinct = Set<Int64>()
        for attempt in 1..<200 {
            let delay = policy.delay(attempt: attempt, using: &a)
            #expect(delay == policy.delay(attempt: attempt, using: &b))
            let base = min(200_000_000 * pow2(min(attempt - 1, 40)), 5_000_000_000)
            #expect(Double(delay.nanoseconds) <= base)
            #expect(Double(delay.nanoseconds) >= base * (1 - jitter) - 1)
            distinct.insert(delay.nanoseconds)
        }
        #expect(distinct.count > 100, "jitter spreads the delays")
    }

    @Test func hugeAttemptCountsDoNotOverflow() {
        let policy = ReconnectPolicy(initialDelay: .seconds(1), maxDelay: .seconds(30), multiplier: 10, jitter: 0)
        var random = SplitMix64(seed: 7)
        #expect(policy.delay(attempt: 1_000_000, using: &random) == .seconds(30))
    }

    private func pow2(_ n: Int) -> Double { Double(Int64(1) << Int64(n)) }
}
