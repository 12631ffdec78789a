import Foundation
import NIOCore
import NIOPosix
import SwitchboardCore
import SwitchboardProtocol
@testable import SwitchboardServer
import Testing
import UserSig

/// `/metrics` after real traffic over loopback.
@Suite("Metrics over loopback")
struct MetricsTests {
    let group = MultiThreadedEventLoopGroup.singleton

    @Test func metricsCountLoginsKicksResumesSessionsAndDAU() async throws {
        try await withAdminServer(adminTestConfiguration(policy: .dual)) { _, port, admin in
            let empty = try await HTTPTestClient.request(port: admin, uri: "/metrics")
            #expect(empty.status == 200)
            #expect(empty.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(metricValue(empty.text, #"switchboard_logins_total{code="0"}"#) == 0)
            #expect(metricValue(empty.text, #"switchboard_kicks_total{reason="admin"}"#) == 0)
            #expect(metricValue(empty.text, "switchboard_connections") == 0)

            let phone = try await TestClient.connect(port: port, group: group)
            #expect(try await phone.request(loginFrame("alice", platform: .iPhone)).code == 0)
            let android = try await TestClient.connect(port: port, group: group)
            #expect(try await android.request(loginFrame("alice", platform: .android)).code == 0)  // kicks the iPhone
            #expect(try await phone.closeCode() == 4002)
            let wrong = try await TestClient.connect(port: port, group: group)
            let badSig = TLSSigAPIv2.issue(sdkAppID: testAppID, key: UserSigKey(secret: "nope"), identifier: "bob",
                                           time: Int64(Date().timeIntervalSince1970))
            #expect(try await wrong.request(loginFrame("bob", platform: .web, sig: badSig)).code == 70009)
            let bob = try await TestClient.connect(port: port, group: group)
            let login = try await bob.request(loginFrame("bob", platform: .web))
            #expect(login.code == 0)
            #expect(try await bob.request(#"{"op":"send","id":2,"to":"alice","payload":1}"#).code == 0)
            await bob.abort()
            // A resume that works, and one that does not.
            let sessionID = login.dataObject?.string("sessionID") ?? ""
            let token = login.dataObject?.string("resumeToken") ?? ""
            try await Task.sleep(for: .milliseconds(100))
            let back = try await TestClient.connect(port: port, group: group)
            #expect(try await back.request(#"{"op":"resume","id":1,"sessionID":"\#(sessionID)","resumeToken":"\#(token)","lastSeq":0}"#).code == 0)
            let bogus = try await TestClient.connect(port: port, group: group)
            #expect(try await bogus.request(#"{"op":"resume","id":1,"sessionID":"AAAAAAAAAAAAAA","resumeToken":"x","lastSeq":0}"#).code == 6026)
            // An admin kick of alice's one instance.
            let kick = try await HTTPTestClient.post(port: admin, uri: "/v4/im_open_login_svc/kick?\(adminQuery())",
                                                     json: #"{"UserID":"alice"}"#)
            #expect(try kick.json()["ErrorCode"]?.int64Value == 0)
            #expect(try await android.closeCode() == 4002)
            let dropped = try await TestClient.connect(port: port, group: group)
            #expect(try await dropped.request(loginFrame("carol", platform: .mac)).code == 0)
            await dropped.abort()

            var text = ""
            try await eventually("carol detached, connections settled") {
                text = try await scrapeMetrics(adminPort: admin)
                return metricValue(text, #"switchboard_sessions{app="\#(testAppID)",state="detached"}"#) == 1
                    && metricValue(text, "switchboard_connections") == 3
            }
            let app = String(testAppID)
            #expect(metricValue(text, #"switchboard_logins_total{code="0"}"#) == 4)
            #expect(metricValue(text, #"switchboard_logins_total{code="70009"}"#) == 1)
            #expect(metricValue(text, "switchboard_login_duration_seconds_count") == 5)
            #expect((metricValue(text, "switchboard_login_duration_seconds_sum") ?? -1) > 0)
            #expect(metricValue(text, #"switchboard_login_duration_seconds_bucket{le="+Inf"}"#) == 5)
            #expect(metricValue(text, #"switchboard_kicks_total{reason="multiDevice"}"#) == 1)
            #expect(metricValue(text, #"switchboard_kicks_total{reason="admin"}"#) == 1)
            #expect(metricValue(text, #"switchboard_resumes_total{result="success"}"#) == 1)
            #expect(metricValue(text, #"switchboard_resumes_total{result="failure"}"#) == 1)
            #expect(metricValue(text, "switchboard_messages_total") == 1)
            #expect(metricValue(text, #"switchboard_sessions{app="\#(app)",state="attached"}"#) == 1)
            #expect(metricValue(text, #"switchboard_users_online{app="\#(app)"}"#) == 1)
            #expect(metricValue(text, #"switchboard_dau{app="\#(app)"}"#) == 3)
            #expect(metricValue(text, #"switchboard_dau{app="\#(otherAppID)"}"#) == 0)
            #expect(metricValue(text, #"switchboard_admin_requests_total{endpoint="kick",code="0"}"#) == 1)
            #expect(text.contains("# TYPE switchboard_logins_total counter"))
            #expect(text.contains("# TYPE switchboard_login_duration_seconds histogram"))
            #expect(text.contains("# TYPE switchboard_sessions gauge"))
            // No label names a user or a session.
            for secret in ["alice", "bob", "carol", sessionID] {
                #expect(!text.contains(secret), "\(secret) appears in /metrics")
            }
            for client in [back, bogus, wrong] { await client.abort() }
        }
    }

    /// Two servers in one process keep separate metrics (no process-wide bootstrap).
    @Test func eachServerHasItsOwnRegistry() async throws {
        try await withAdminServer(adminTestConfiguration()) { _, port, admin in
            try await withAdminServer(adminTestConfiguration()) { _, _, otherAdmin in
                let client = try await TestClient.connect(port: port, group: group)
                #expect(try await client.request(loginFrame("alice", platform: .web)).code == 0)
                let mine = try await scrapeMetrics(adminPort: admin)
                let theirs = try await scrapeMetrics(adminPort: otherAdmin)
                #expect(metricValue(mine, #"switchboard_logins_total{code="0"}"#) == 1)
                #expect(metricValue(theirs, #"switchboard_logins_total{code="0"}"#) == 0)
                await client.abort()
            }
        }
    }
}
