import ArgumentParser
import Dispatch
import Foundation
import Logging
import NIOCore
import SwitchboardCluster
import SwitchboardCore
import SwitchboardServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway (no --config: the embedded default, one demo app).")

    @Option(name: .long, help: "A YAML or JSON configuration file.")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Cluster mode: a redis:// URL (overrides the configuration's redis key).")
    var redis: String?

    @Flag(name: .long, help: "Also echo WebSocket messages on /echo, for conformance suites (Autobahn).")
    var conformanceEcho = false

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "switchboard")
        var configuration: ServerConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: config, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("switchboard: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
        if conformanceEcho { configuration.conformanceEcho = true }
        if let redis {
            do {
                configuration.redis = try ConfigurationLoader.redisURL(redis, key: "--redis")
            } catch {
                FileHandle.standardError.write(Data("switchboard: \(error.description)\n".utf8))
                throw ExitCode(2)
            }
        }
        // Signals are trapped before the ready line: a SIGTERM right after it must stop us cleanly.
        let (signals, continuation) = AsyncStream<Int32>.makeStream()
        let trap = SignalTrap(signals: [SIGTERM, SIGINT, SIGHUP]) { continuation.yield($0) }
        let server = SwitchboardServer(configuration: configuration, logger: logger)
        do {
            try await server.start()
        } catch {
            FileHandle.standardError.write(Data("switchboard: cannot start: \(error)\n".utf8))
            throw ExitCode(1)
        }
        printBanner(server, embedded: config == nil)

        for await sig in signals {
            if sig == SIGHUP {
                reload(server, logger: logger)
                continue
            }
            logger.info("draining", metadata: ["signal": "\(sig == SIGTERM ? "SIGTERM" : "SIGINT")"])
            break
        }
        trap.cancel()
        try await server.drain()
        logger.info("stopped")
    }

    /// SIGHUP: read the configuration again and put its apps (keys, policies, limits) in force
    /// for the next logins; connections and sessions stay as they are. A configuration that does
    /// not load is refused and the running one kept.
    private func reload(_ server: SwitchboardServer, logger: Logger) {
        let environment = ProcessInfo.processInfo.environment
        guard config != nil || environment[ConfigurationLoader.environmentName(for: "apps")] != nil else {
            logger.notice("SIGHUP: nothing to reload (embedded default, no --config)")
            return
        }
        do {
            let fresh = try ConfigurationLoader.load(path: config, environment: environment)
            server.gateway.apps.replace(with: fresh.apps)
            let ids = fresh.apps.map { String($0.sdkAppID) }.joined(separator: ",")
            logger.notice("SIGHUP: apps reloaded", metadata: ["apps": "\(ids)"])
        } catch {
            logger.error("SIGHUP: configuration refused, keeping the running one", metadata: ["error": "\(error.description)"])
        }
    }

    private func printBanner(_ server: SwitchboardServer, embedded: Bool) {
        let ws = server.webSocketAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let admin = server.adminAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let scheme = server.configuration.tlsCertificate == nil ? "ws" : "wss"
        var lines = ["Switchboard listening on \(scheme)://\(ws)/ws (admin http://\(admin))"]
        if embedded, let app = server.configuration.apps.first {
            lines.append("Embedded default: demo app sdkAppID \(app.sdkAppID), policy \(app.policy.kind.rawValue)")
            lines.append("Demo app secret key: \(app.secretKey)")
            lines.append("Issue a UserSig:")
            lines.append("  swift run switchboard usersig issue --sdkappid \(app.sdkAppID) --key \(app.secretKey) --user alice")
        } else {
            for app in server.configuration.apps {
                lines.append("app \(app.sdkAppID): policy \(app.policy.kind.rawValue)")
            }
        }
        if let cluster = server.gateway.cluster {
            lines.append("Cluster node \(server.gateway.nodeID) on \(cluster.storeDescription) (ready, /readyz 200, once the store answers)")
        }
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }
}

/// Signals turned into calls of `handler`, none ever lost.
///
/// A Dispatch signal source alone can lose a signal: its handler is installed asynchronously,
/// after `resume()`, and a SIGTERM that arrives before (a supervisor stopping a server it has just
/// seen start) meets SIG_IGN. So the process handler is installed here, synchronously, with
/// `sigaction`; it only writes the signal number to a pipe (async-signal-safe), and a Dispatch read
/// source on the other end calls `handler` off the signal context, whenever it gets to it.
final class SignalTrap: @unchecked Sendable {
    // Written once in init, read in cancel: Dispatch sources are themselves thread-safe.
    private let source: any DispatchSourceRead

    init(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        var fds: [Int32] = [-1, -1]
        precondition(pipe(&fds) == 0, "cannot create the signal pipe")
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        signalPipeWriteEnd = fds[1]
        for sig in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signo in
                var byte = UInt8(truncatingIfNeeded: signo)
                _ = write(signalPipeWriteEnd, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(sig, &action, nil)
        }
        let readEnd = fds[0]
        source = DispatchSource.makeReadSource(fileDescriptor: readEnd, queue: DispatchQueue(label: "switchboard.signals"))
        source.setEventHandler {
            var buffer = [UInt8](repeating: 0, count: 16)
            let count = read(readEnd, &buffer, buffer.count)
            for byte in buffer.prefix(max(0, count)) { handler(Int32(byte)) }
        }
        source.resume()
    }

    func cancel() {
        source.cancel()
    }
}

/// The signal pipe's write end, for the async-signal-safe handler (which can capture nothing).
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1
