import ArgumentParser
import Foundation
import UserSig

/// `switchboard usersig issue|verify`: Tencent TLSSigAPIv2 UserSigs from the command line.
struct UserSigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usersig",
        abstract: "Issue or verify Tencent TLSSigAPIv2 UserSigs.",
        subcommands: [Issue.self, Verify.self]
    )

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a UserSig (same output as Tencent's TLSSigAPIv2 libraries) and print it on one line."
        )

        @Option(name: .customLong("sdkappid"), help: "The SDKAppID.")
        var sdkAppID: UInt64

        @Option(help: "The app's secret key.")
        var key: String

        @Option(help: "The user ID (TLS.identifier).")
        var user: String

        @Option(help: "Validity in seconds.")
        var expire: Int64 = 15_552_000

        @Option(help: "Optional userbuf text (its UTF-8 bytes are embedded).")
        var userbuf: String?

        @Option(help: "Issue time in unix seconds (default: now).")
        var time: Int64?

        @Option(help: "zlib compression level, 0-9.")
        var level: Int32 = 6

        func validate() throws {
            guard (0...9).contains(level) else {
                throw ValidationError("--level must be between 0 and 9.")
            }
        }

        func run() throws {
            let sig = TLSSigAPIv2.issue(
                sdkAppID: sdkAppID, key: UserSigKey(secret: key), identifier: user, expire: expire,
                userbuf: userbuf.map { Array($0.utf8) }, time: time ?? unixNow(), compressionLevel: level
            )
            print(sig)
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a UserSig.",
            discussion: """
                Prints "OK <identifier> expires <unix> (<ISO8601 UTC>)" and exits 0, \
                or prints "FAIL <code> <reason>" to stderr and exits 1.
                """
        )

        @Option(name: .customLong("sdkappid"), help: "The expected SDKAppID.")
        var sdkAppID: UInt64

        @Option(help: "The app's secret key.")
        var key: String

        @Option(help: "The expected user ID.")
        var user: String

        @Option(help: "The UserSig to check.")
        var sig: String

        @Option(help: "Current time in unix seconds (default: now).")
        var now: Int64?

        func run() throws {
            do {
                let ticket = try TLSSigAPIv2.verify(
                    sig, sdkAppID: sdkAppID, identifier: user, key: UserSigKey(secret: key), now: now ?? unixNow()
                )
                print("OK \(ticket.identifier) expires \(ticket.expiresAt) (\(iso8601UTC(ticket.expiresAt)))")
            } catch {
                FileHandle.standardError.write(Data("FAIL \(error.code) \(error.reason)\n".utf8))
                throw ExitCode.failure
            }
        }
    }
}

private func unixNow() -> Int64 {
    Int64(Date().timeIntervalSince1970.rounded(.down))
}

/// `2023-11-15T22:13:20Z`; out-of-range instants (years outside 0001–9999) are shown as such.
private func iso8601UTC(_ unix: Int64) -> String {
    guard (-62_135_596_800...253_402_300_799).contains(unix) else { return "out of range" }
    let formatter = ISO8601DateFormatter()
    formatter.timeZone = TimeZone(identifier: "UTC")
    return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(unix)))
}
