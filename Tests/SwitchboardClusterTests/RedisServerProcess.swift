import Foundation
import Logging
import NIOCore
import NIOPosix
import SwitchboardCluster
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway `redis-server` on a free loopback port, with no persistence.
///
/// It is killed when `terminate()` is called or, as a safety net, when the object is released.
/// The tests need a real Redis: when `redis-server` is missing, `start()` throws (so the tests
/// fail, they do not skip). Set `REDIS_SERVER` to use another binary.
final class RedisServerProcess {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static var executable: String {
        ProcessInfo.processInfo.environment["REDIS_SERVER"] ?? "/usr/bin/redis-server"
    }

    let port: Int
    let extraArguments: [String]
    private var process: Process?
    private let directory: URL

    var url: RedisURL { RedisURL(host: "127.0.0.1", port: port) }

    private init(port: Int, extraArguments: [String]) throws {
        self.port = port
        self.extraArguments = extraArguments
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("switchboard-redis-\(port)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Starts a server on a free port and waits until it answers PING.
    static func start(extraArguments: [String] = []) async throws -> RedisServerProcess {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw Failure(description: """
                redis-server not found at \(executable): the Redis tests need a real server. \
                Install it (apt-get install redis-server) or set REDIS_SERVER to its path.
                """)
        }
        var lastError: (any Error)?
        // Another process may grab the port between probing and redis binding it: try a few.
        for _ in 0..<3 {
            let server = try RedisServerProcess(port: try freePort(), extraArguments: extraArguments)
            do {
                try await server.launch()
                return server
            } catch {
                lastError = error
                server.terminate()
            }
        }
        throw lastError ?? Failure(description: "redis-server did not start")
    }

    var isRunning: Bool { process?.isRunning ?? false }

    /// Starts (again) on the same port and waits until it answers PING.
    func launch() async throws {
        precondition(!isRunning, "redis-server is already running")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", directory.path, "--logfile", directory.appendingPathComponent("redis.log").path,
        ] + extraArguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !process.isRunning {
                throw Failure(description: "redis-server on port \(port) exited at start (status \(process.terminationStatus)): \(log)")
            }
            if Self.ping(port: port) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw Failure(description: "redis-server on port \(port) did not answer PING within 10 s: \(log)")
    }

    /// The tail of the server's log, for failure messages.
    var log: String {
        let text = (try? String(contentsOf: directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
        return String(text.suffix(2000))
    }

    /// SIGKILL: the server vanishes at once, as in a crash; its connections are reset.
    func kill() {
        sendSignal(SIGKILL)
        process?.waitUntilExit()
        process = nil
    }

    /// Kills the server and removes its folder.
    func terminate() {
        if let process, process.isRunning {
            kill()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// SIGSTOP: the server hangs; connections stay open and nothing is answered.
    func pause() { sendSignal(SIGSTOP) }

    /// SIGCONT after `pause()`.
    func resume() { sendSignal(SIGCONT) }

    private func sendSignal(_ number: Int32) {
        guard let process, process.isRunning else { return }
        _ = posixKill(process.processIdentifier, number)
    }

    deinit {
        terminate()
    }

    /// A port that was free a moment ago: bind port 0 and ask which port the kernel chose.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw Failure(description: "bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getsockname(fd, $0, &length)
            }
        }
        guard named == 0 else { throw Failure(description: "getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// One blocking PING over a plain socket, independent of the client under test.
    static func ping(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 0, tv_usec: 500_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return false }
        let request = Array("PING\r\n".utf8)
        guard send(fd, request, request.count, 0) == request.count else { return false }
        var reply = [UInt8](repeating: 0, count: 64)
        let count = recv(fd, &reply, reply.count, 0)
        guard count > 0 else { return false }
        // "-LOADING" or "-NOAUTH" also prove the server is up and reading.
        return reply[0] == UInt8(ascii: "+") || reply[0] == UInt8(ascii: "-")
    }
}

private func posixKill(_ pid: pid_t, _ signal: Int32) -> Int32 {
    kill(pid, signal)
}

// MARK: - Helpers shared by the Redis tests

let redisTestGroup = MultiThreadedEventLoopGroup.singleton

func redisTestLogger(_ label: String = "redis-test") -> Logger {
    var logger = Logger(label: label)
    // REDIS_TEST_LOG=debug (or info, warning) shows what the clients do.
    logger.logLevel = ProcessInfo.processInfo.environment["REDIS_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .error
    return logger
}

/// Records what a callback reports, in order.
final class Recorder<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])

    func append(_ item: Element) { items.withLock { $0.append(item) } }

    var values: [Element] { items.withLock { $0 } }

    var count: Int { items.withLock { $0.count } }
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes (then throws).
func waitUntil(_ what: String, timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while !condition() {
        if clock.now >= deadline {
            throw TimedOut(description: "timed out after \(timeout) waiting until \(what)")
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// Waits until `states` has as many reports as `expected` (the callback runs just after the
/// state flips), then checks them.
func expectStates(_ states: Recorder<Bool>, _ expected: [Bool],
                  sourceLocation: SourceLocation = #_sourceLocation) async throws {
    try? await waitUntil("\(expected.count) state changes", timeout: .seconds(2)) { states.count >= expected.count }
    #expect(states.values == expected, sourceLocation: sourceLocation)
}

/// The `RedisError` a future fails with; nil (and a recorded issue) if it succeeds or fails otherwise.
func redisError<T: Sendable>(_ future: EventLoopFuture<T>, sourceLocation: SourceLocation = #_sourceLocation) async -> RedisError? {
    do {
        let value = try await future.get()
        Issue.record("expected a RedisError, got \(value)", sourceLocation: sourceLocation)
        return nil
    } catch let error as RedisError {
        return error
    } catch {
        Issue.record("expected a RedisError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Issues a request and returns how it failed and how long it took, timed by a callback on the
/// event loop (where the future completes), so that a test thread pool kept busy by other tests
/// does not count.
func timedRedisError<T: Sendable>(_ request: () -> EventLoopFuture<T>,
                                  sourceLocation: SourceLocation = #_sourceLocation) async -> (RedisError?, Duration) {
    let started = ContinuousClock.now
    let finished = Recorder<ContinuousClock.Instant>()
    let future = request()
    future.whenComplete { _ in finished.append(ContinuousClock.now) }
    let error = await redisError(future, sourceLocation: sourceLocation)
    let end = finished.values.first ?? ContinuousClock.now
    return (error, end - started)
}

extension RedisError {
    var isUnavailable: Bool {
        if case .unavailable = self { return true }
        return false
    }
}

/// A started client that is connected to `server`.
func connectedClient(_ url: RedisURL, requestTimeout: TimeAmount = .seconds(2),
                     maxPending: Int = RedisClient.defaultMaxPending,
                     states: Recorder<Bool>? = nil) async throws -> RedisClient {
    let client = RedisClient(url: url, group: redisTestGroup, requestTimeout: requestTimeout,
                             logger: redisTestLogger(), maxPending: maxPending,
                             onStateChange: { states?.append($0) })
    client.start()
    do {
        try await waitUntil("the client is connected") { client.isConnected }
    } catch {
        try? await client.close().get()
        throw error
    }
    return client
}
