import ArgumentParser
import Foundation
import SwitchboardClient
import SwitchboardProtocol
import UserSig

/// A terminal chat client on the Swift SDK: logs in, shows every status change the SDK reports,
/// sends what you type and prints what arrives. Drop the network under it and watch it resume.
@main
struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard-chat",
        abstract: "A terminal chat client on the Switchboard Swift SDK.",
        discussion: """
            Type a line to send it to the current recipient, or "bob: hello" to send to bob.
            Commands: /to USER, /status, /login, /logout, /renew, /quit.
            """)

    @Option(help: "The gateway's WebSocket URL (ws:// or wss://).") var url = "ws://127.0.0.1:8080/ws"
    @Option(help: "The app's sdkAppID.") var sdkappid: UInt64 = 1_400_000_000
    @Option(help: "Your userID.") var user: String
    @Option(help: "A UserSig for --user (from `switchboard usersig issue`).") var sig: String?
    @Option(help: "Or the app's secret key: the client issues its own UserSig (demo apps only).") var key: String?
    @Option(help: "Seconds the self-issued UserSig is valid.") var expire: Int64 = 86_400
    @Option(help: "Platform to log in as: Android, iPhone, iPad, Windows, Mac, Linux or Web.") var platform = "Linux"
    @Option(help: "Who plain lines go to.") var to: String?

    func validate() throws {
        guard sig != nil || key != nil else { throw ValidationError("give --sig or --key") }
        guard Platform(rawValue: platform) != nil else { throw ValidationError("unknown platform \(platform)") }
    }

    func run() async throws {
        var configuration = SwitchboardManager.Configuration(url: url, sdkAppID: sdkappid,
                                                             platform: Platform(rawValue: platform)!)
        configuration.deviceID = "switchboard-chat"
        let manager = try SwitchboardManager(configuration: configuration)
        manager.addListener(StatusPrinter())
        let printer = Task {
            for await message in manager.messages {
                say("\(message.from) → \(message.to == user ? "you" : message.to): \(Self.text(of: message.payload))")
            }
        }

        do {
            try await manager.login(userID: user, userSig: userSig())
            say("logged in as \(user) on \(platform); type /quit to leave")
        } catch {
            say("login failed: \(error)")
            throw ExitCode(1)
        }

        var recipient = to
        for await line in Self.standardInputLines() {
            let line = line.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty else { continue }
            do {
                switch line.split(separator: " ", maxSplits: 1).first.map(String.init) {
                case "/quit":
                    printer.cancel()
                    await manager.shutdown()
                    return
                case "/to":
                    recipient = line.split(separator: " ", maxSplits: 1).dropFirst().first.map(String.init)
                    say("sending to \(recipient ?? "nobody")")
                case "/status":
                    say("status \(Self.name(of: manager.getLoginStatus())), user \(manager.getLoginUser() ?? "none")")
                case "/login":
                    try await manager.login(userID: user, userSig: userSig())
                    say("logged in as \(user)")
                case "/logout":
                    try await manager.logout()
                    say("logged out")
                case "/renew":
                    let expiry = try await manager.renewSig(userSig())
                    say("UserSig renewed; it expires at \(Date(timeIntervalSince1970: TimeInterval(expiry)))")
                default:
                    var target = recipient
                    var text = line
                    if let colon = line.firstIndex(of: ":"), !line[..<colon].contains(" ") {
                        target = String(line[..<colon])
                        text = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    }
                    guard let target else {
                        say("no recipient: write \"USER: text\" or /to USER")
                        continue
                    }
                    let receipt = try await manager.send(to: target, payload: ["text": .string(text)])
                    say("sent \(receipt.msgID) to \(target) (\(receipt.online) online)")
                }
            } catch {
                say("failed: \(error)")
            }
        }
        printer.cancel()
        await manager.shutdown()
    }

    private func userSig() throws -> String {
        if let sig { return sig }
        return TLSSigAPIv2.issue(sdkAppID: sdkappid, key: UserSigKey(secret: key!), identifier: user, expire: expire,
                                 time: Int64(Date().timeIntervalSince1970))
    }

    static func text(of payload: JSONValue) -> String {
        payload["text"]?.stringValue ?? payload.description
    }

    static func name(of status: LoginStatus) -> String {
        switch status {
        case .logined: "LOGINED"
        case .logining: "LOGINING"
        case .logout: "LOGOUT"
        }
    }

    /// Lines typed (or piped) in; a thread blocks on the terminal so no task does.
    static func standardInputLines() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        let reader = Thread {
            while let line = readLine() {
                continuation.yield(line)
            }
            continuation.finish()
        }
        reader.start()
        return stream
    }
}

/// Prints what the SDK reports about the connection and the session.
final class StatusPrinter: SwitchboardSDKListener {
    func onConnecting() { say("[connecting]") }
    func onConnectSuccess() { say("[online]") }
    func onConnectFailed(code: Int, desc: String) { say("[connection failed \(code): \(desc)]") }
    func onKickedOffline() { say("[kicked offline by another login; /login to come back]") }
    func onUserSigExpired() { say("[UserSig expired; /login with a new one]") }
}

/// One line to the terminal at once (unbuffered, so piped output is in step too).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
