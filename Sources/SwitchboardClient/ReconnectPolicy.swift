public import NIOCore

/// How long the SDK waits before each reconnection attempt: capped exponential backoff with
/// jitter. Attempts are counted from the last connection that stayed up for `resetAfter`, so a
/// connection that keeps dropping the moment it is made backs off instead of hammering the server.
public struct ReconnectPolicy: Sendable, Hashable {
    /// The base delay of the first delayed attempt.
    public var initialDelay: TimeAmount
    /// No delay grows beyond this (before jitter).
    public var maxDelay: TimeAmount
    /// Each failed attempt multiplies the base delay by this.
    public var multiplier: Double
    /// The fraction of each delay drawn at random: a delay `d` becomes uniform in
    /// `[d × (1 − jitter), d]`. 0 is no jitter, 1 is "full jitter". Spreads a crowd of clients
    /// that all lost the same server.
    public var jitter: Double
    /// The first attempt after a drop is made at once: a drop from a healthy connection is most
    /// often a path that failed, and a prompt resume is what keeps the app's stream live.
    public var immediateFirstRetry: Bool
    /// A connection that stays up this long resets the attempt count.
    public var resetAfter: TimeAmount

    public init(initialDelay: TimeAmount = .milliseconds(250), maxDelay: TimeAmount = .seconds(30),
                multiplier: Double = 2, jitter: Double = 0.5, immediateFirstRetry: Bool = true,
                resetAfter: TimeAmount = .seconds(5)) {
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.multiplier = multiplier
        self.jitter = jitter
        self.immediateFirstRetry = immediateFirstRetry
        self.resetAfter = resetAfter
    }

    /// The delay before attempt `attempt` (0 for the first after a drop), drawn with `random`.
    public func delay(attempt: Int, using random: inout some RandomNumberGenerator) -> TimeAmount {
        var exponent = attempt
        if immediateFirstRetry {
            if attempt == 0 { return .zero }
            exponent -= 1
        }
        let cap = Double(max(maxDelay.nanoseconds, 0))
        var base = Double(max(initialDelay.nanoseconds, 0))
        // Stop multiplying once the cap is reached: no overflow however long the outage.
        var step = 0
        while step < exponent, base < cap {
            base *= max(multiplier, 1)
            step += 1
        }
        base = min(base, cap)
        let spread = min(max(jitter, 0), 1)
        let unit = Double(random.next() >> 11) / Double(1 << 53)  // uniform in [0, 1)
        return .nanoseconds(Int64(base * (1 - spread * unit)))
    }
}

/// A small seedable generator (SplitMix64): the jitter is reproducible in tests and cheap in use.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
