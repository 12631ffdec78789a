import Testing
import SwitchboardCore
import SwitchboardProtocol

@Suite struct SessionIDParsingTests {
    /// IDs that are not the table's own must be harmless to every method that takes one.
    static let oddIDs = [
        // Regression: at commit 3330cf7, `locate` read the shard from the last four characters
        // with `Int(_:radix: 16)`, which accepts a sign; "-001" gave shard -1, which passed the
        // `shard <= shardMask` guard, and `shards[-1]` trapped (SIGILL).
        "0000000000000000-001", "0000000000000000-fff", "000000000000-1", "000000000000-_",
        "00000000000000000000", "0000000000000000+003", "000000000000000000ff", "0000000000000000zzzz",
        "AAAAAAAAAAAA__", "AAAAAAAAAAAA//", "AAAAAAAAAAAA==", "AAAAAAAAAAAA\u{e9}", "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        "short", "", "0000000000000000000000",
    ]

    /// Run in a child process, so a trap fails this test instead of killing the whole run. The
    /// child also checks that each ID is unknown (a failed precondition there fails the test too).
    @Test func oddSessionIDsDoNotTrapAndAreUnknown() async {
        await #expect(processExitsWith: .success) {
            let table = SessionTable(configuration: SessionTableConfiguration(shardCount: 4))
            for id in SessionIDParsingTests.oddIDs {
                precondition(table.lastSeq(sessionID: id) == nil, "lastSeq of \(id)")
                precondition(!table.logout(sessionID: id, connectionID: 1), "logout of \(id)")
                precondition(table.detach(sessionID: id, connectionID: 1) == nil, "detach of \(id)")
                precondition(table.expireUserSig(sessionID: id, connectionID: 1) == nil, "expireUserSig of \(id)")
                table.reap(sessionID: id)
                table.acknowledge(sessionID: id, connectionID: 1, through: 1)
            }
        }
    }

    /// `resume` checks the resume token before it reads the ID, so this is safe in-process.
    @Test func resumeOfOddSessionIDsIs6026() throws {
        let h = Harness(shardCount: 4)
        let alice = try h.login("alice", .iPhone)
        for id in Self.oddIDs {
            #expect(h.table.resume(sessionID: id, resumeToken: alice.info.resumeToken, lastSeq: 0,
                                   connection: newConnection()).failureCode == .noSessionToResume, "\(id)")
        }
        #expect(h.platforms(of: "alice") == [.iPhone])
    }
}
