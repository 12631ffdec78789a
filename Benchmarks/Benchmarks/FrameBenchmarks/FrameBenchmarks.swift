// Per-text-frame work of the connection handler before the session table, on three realistic
// frames: UTF-8 validation and FrameDecoder.decode ("decode"), then also the connection state
// machine's verdict and the op's typed request ("decode+dispatch"), as
// ClientConnectionHandler.textFrame → dispatch → login/send do it.
import Benchmark
import SwitchboardCore
import SwitchboardProtocol
import UserSig

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let sdkAppID: UInt64 = 1_400_000_000

private func unixNow() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec)
}

/// What ClientConnectionHandler.textFrame does before `dispatch`: validate, then decode.
@inline(__always)
private func decode(_ payload: [UInt8]) -> FrameDecodeResult? {
    payload.withUnsafeBytes { bytes in
        guard UTF8Validator.isValid(bytes) else { return nil }
        return FrameDecoder.decode(bytes)
    }
}

/// Decode, the state machine's verdict, then what the op's handler parses first. A ping has no
/// fields to parse: its dispatch ends at the verdict.
@inline(__always)
private func decodeAndDispatch(_ payload: [UInt8], machine: inout ConnectionStateMachine) -> Bool {
    guard let decoded = decode(payload) else { return false }
    guard case .dispatch(let request) = machine.received(decoded) else { return false }
    switch request.op {
    case "login":
        guard let login = try? LoginRequest(request) else { return false }
        blackHole(login)
    case "send":
        guard let send = try? SendRequest(request) else { return false }
        blackHole(send)
    default:
        blackHole(request)
    }
    return true
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal, .mallocBytesCount],
        timeUnits: .nanoseconds,
        units: [.mallocBytesCount: .count],  // exact figures, no K/M rounding
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    let key = UserSigKey(secret: "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e")
    let sig = TLSSigAPIv2.issue(sdkAppID: sdkAppID, key: key, identifier: "alice", time: unixNow())
    let frames: [(name: String, bytes: [UInt8], loggedIn: Bool)] = [
        // The first frame of every connection: a real 180-day UserSig (about 200 bytes of the frame).
        ("login", Array(#"{"op":"login","id":1,"sdkAppID":\#(sdkAppID),"userID":"alice","userSig":"\#(sig)","platform":"iPhone"}"#.utf8), false),
        // A chat message with a small JSON payload, from a logged-in connection.
        ("send", Array(#"{"op":"send","id":2,"to":"bob","payload":{"text":"see you at 7? bring the slides","ts":1764176400123,"reply":null}}"#.utf8), true),
        // The application-level heartbeat.
        ("ping", Array(#"{"op":"ping","id":3}"#.utf8), true),
    ]
    let session = SessionInfo(sessionID: "AAAAAAAAAAAAAA", resumeToken: "BBBBBBBBBBBBBBB", sdkAppID: sdkAppID,
                              userID: "alice", platform: .iPhone, userSigExpireAt: .max)

    for frame in frames {
        var machine = ConnectionStateMachine()
        if frame.loggedIn { machine.loginSucceeded(session) }
        // Fail loudly rather than time a rejection.
        guard decodeAndDispatch(frame.bytes, machine: &machine) else {
            fatalError("the \(frame.name) frame does not decode and dispatch")
        }
        let bytes = frame.bytes
        let template = machine

        Benchmark("Frame decode: \(frame.name)") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(decode(bytes))
            }
        }

        Benchmark("Frame decode+dispatch: \(frame.name)") { benchmark in
            var machine = template
            for _ in benchmark.scaledIterations {
                blackHole(decodeAndDispatch(bytes, machine: &machine))
            }
        }
    }
}
