// UserSig (TLSSigAPIv2) micro-benchmarks: what one login pays to check its UserSig, and, for
// reference, what an app server pays to issue one.
import Benchmark
import UserSig

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let sdkAppID: UInt64 = 1_400_000_000
private let secret = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
private let userID = "alice"

private func unixNow() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal, .mallocBytesCount],
        timeUnits: .nanoseconds,
        units: [.mallocBytesCount: .count],  // exact figures, no K/M rounding
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 1_000_000
    )

    // Made once, outside every measured region: the key (HMAC pads precomputed, as AppConfiguration
    // does at load) and a real sig as a client would present it (180 days, zlib level 6).
    let key = UserSigKey(secret: secret)
    let issuedAt = unixNow()
    let sig = TLSSigAPIv2.issue(sdkAppID: sdkAppID, key: key, identifier: userID, time: issuedAt)
    // Fail loudly rather than time the error path.
    do {
        _ = try TLSSigAPIv2.verify(sig, sdkAppID: sdkAppID, identifier: userID, key: key, now: issuedAt)
    } catch {
        fatalError("the benchmark's own UserSig does not verify: \(error)")
    }

    // Per op: base64 decode, zlib inflate, JSONDecoder of the ticket, HMAC-SHA256, compare.
    Benchmark("UserSig verify") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? TLSSigAPIv2.verify(sig, sdkAppID: sdkAppID, identifier: userID, key: key, now: issuedAt))
        }
    }

    // Per op: HMAC-SHA256, the ticket's JSON, zlib deflate (level 6), base64.
    Benchmark("UserSig issue") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(TLSSigAPIv2.issue(sdkAppID: sdkAppID, key: key, identifier: userID, time: issuedAt))
        }
    }
}
