import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchboardCore
import SwitchboardProtocol
@testable import SwitchboardServer
import Testing
import UserSig

/// The admin port over real sockets (PROTOCOL §9): Tencent-compatible REST calls, health,
/// readiness, metrics.
@Suite("Admin API over loopback")
struct AdminAPITests {
    let group = MultiThreadedEventLoopGroup.singleton

    static let kick = "/v4/im_open_login_svc/kick"
    static let query = "/v4/openim/query_online_status"
    static let push = "/v4/switchboard/push"
    static let stats = "/v4/switchboard/stats"

    /// `ActionStatus`, `ErrorCode` and `ErrorInfo` of a reply that must be HTTP 200 JSON.
    func expectReply(_ response: HTTPTestResponse, code: Int64, sourceLocation: SourceLocation = #_sourceLocation)
        throws -> JSONValue {
        #expect(response.status == 200, sourceLocation: sourceLocation)
        #expect(response.header("Content-Type")?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
        let json = try response.json()
        #expect(json["ErrorCode"]?.int64Value == code, "\(response.text)", sourceLocation: sourceLocation)
        #expect(json["ActionStatus"]?.stringValue == (code == 0 ? "OK" : "FAIL"), sourceLocation: sourceLocation)
        let info = json["ErrorInfo"]?.stringValue
        #expect(info != nil, sourceLocation: sourceLocation)
        if code != 0 { #expect(info?.isEmpty == false, sourceLocation: sourceLocation) }
        return json
    }

    @Test func healthReadinessAndHTTPErrors() async throws {
        try await withAdminServer(adminTestConfiguration()) { server, _, admin in
            let health = try await HTTPTestClient.request(port: admin, uri: "/healthz")
            #expect(health.status == 200 && health.text == "ok\n")
            let ready = try await HTTPTestClient.request(port: admin, uri: "/readyz")
            #expect(ready.status == 200)
            #expect(try await HTTPTestClient.request(port: admin, uri: "/nope").status == 404)
            #expect(try await HTTPTestClient.request(port: admin, uri: "/v4/openim/nope?\(adminQuery())").status == 404)
            let wrongMethod = try await HTTPTestClient.request(port: admin, uri: "\(Self.kick)?\(adminQuery())")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.header("Allow") == "POST")
            #expect(try await HTTPTestClient.request(port: admin, method: .POST, uri: "/healthz", body: []).status == 405)
            #expect(try await HTTPTestClient.request(port: admin, method: .DELETE, uri: Self.stats).status == 405)

            // A body over 1 MiB: 413, with a Tencent-shaped 70402 reply; the port still serves.
            let big = [UInt8](repeating: UInt8(ascii: " "), count: (1 << 20) + 1)
            let tooLarge = try await HTTPTestClient.request(port: admin, method: .POST, uri: "\(Self.push)?\(adminQuery())",
                                                            body: big)
            #expect(tooLarge.status == 413)
            #expect(try tooLarge.json()["ErrorCode"]?.int64Value == 70402)
            #expect(try await HTTPTestClient.request(port: admin, uri: "/healthz").status == 200)

            // Not ready (draining): 503, while health stays 200.
            let api = AdminAPI(gateway: server.gateway)
            #expect(api.respond(to: AdminRequest(method: .GET, uri: "/readyz", body: []), ready: false).status
                == .serviceUnavailable)
            #expect(api.respond(to: AdminRequest(method: .GET, uri: "/healthz", body: []), ready: false).status == .ok)
        }
    }

    @Test func authenticationFailuresAreCleanTencentReplies() async throws {
        try await withAdminServer(adminTestConfiguration()) { _, _, admin in
            func stats(_ query: String) async throws -> HTTPTestResponse {
                try await HTTPTestClient.request(port: admin, uri: "\(Self.stats)?\(query)")
            }
            let now = Int64(Date().timeIntervalSince1970)
            let adminSig = makeSig("administrator")
            let cases: [(String, Int64)] = [
                ("", 70402),                                                         // nothing at all
                ("identifier=administrator&usersig=\(adminSig)", 70402),             // no sdkappid
                ("sdkappid=abc&identifier=administrator&usersig=\(adminSig)", 70402),
                ("sdkappid=1400000777&identifier=administrator&usersig=\(adminSig)", 70020),
                ("sdkappid=\(testAppID)&usersig=\(adminSig)", 70402),                 // no identifier
                ("sdkappid=\(testAppID)&identifier=alice&usersig=\(makeSig("alice"))", 70402),  // not the admin
                ("sdkappid=\(testAppID)&identifier=administrator", 70002),           // no usersig
                ("sdkappid=\(testAppID)&identifier=administrator&usersig=", 70002),
                ("sdkappid=\(testAppID)&identifier=administrator&usersig=garbage", 70003),
                (adminQuery(sig: makeSig("alice")), 70013),                          // a UserSig of another user
                (adminQuery(sig: makeSig("administrator", app: otherAppID)), 70014), // of another app
                (adminQuery(sig: TLSSigAPIv2.issue(sdkAppID: testAppID, key: UserSigKey(secret: "wrong"),
                                                   identifier: "administrator", time: now)), 70009),
                (adminQuery(sig: makeSig("administrator", expire: 10, time: now - 100)), 70001),
                ("\(adminQuery())&contenttype=xml".replacingOccurrences(of: "contenttype=json&", with: ""), 70402),
            ]
            for (query, code) in cases {
                let response = try await stats(query)
                let json = try expectReply(response, code: code)
                #expect(json["Node"] == nil, "no data on failure: \(query)")
            }
            // The other app's admin user is its own.
            let other = TLSSigAPIv2.issue(sdkAppID: otherAppID, key: UserSigKey(secret: otherAppKey), identifier: "boss",
                                          time: now)
            _ = try expectReply(try await stats("sdkappid=\(otherAppID)&identifier=boss&usersig=\(other)"), code: 0)
            _ = try expectReply(try await stats(adminQuery(app: otherAppID, identifier: "administrator",
                                                           sig: makeSig("administrator", app: otherAppID))), code: 70402)
            // Percent-encoded parameters are decoded.
            let encoded = adminQuery().replacingOccurrences(of: "identifier=administrator", with: "identifier=%61dministrator")
            _ = try expectReply(try await stats(encoded), code: 0)
        }
    }

    @Test func kickKicksEveryInstanceAndRevokesEarlierUserSigs() async throws {
        try await withAdminServer(adminTestConfiguration()) { _, port, admin in
            let oldSig = makeSig("bob")
            let phone = try await TestClient.connect(port: port, group: group)
            #expect(try await phone.request(loginFrame("bob", platform: .iPhone, sig: oldSig)).code == 0)
            let web = try await TestClient.connect(port: port, group: group)
            #expect(try await web.request(loginFrame("bob", platform: .web, sig: oldSig)).code == 0)
            let other = try await TestClient.connect(port: port, group: group)
            #expect(try await other.request(loginFrame("carol", platform: .iPhone)).code == 0)

            let response = try await HTTPTestClient.post(port: admin, uri: "\(Self.kick)?\(adminQuery())",
                                                         json: #"{"UserID":"bob"}"#)
            let kickSecond = Int64(Date().timeIntervalSince1970)
            let json = try expectReply(response, code: 0)
            #expect(json["ErrorInfo"]?.stringValue == "")
            for client in [phone, web] {
                let event = try await client.nextJSON()
                #expect(event.string("event") == "kickedOffline")
                #expect(event.dataObject?.string("reason") == "admin")
                #expect(event["seq"]?.numberValue?.int64 == 1)
                #expect(try await client.closeCode() == 4002)
            }
            // carol is untouched.
            #expect(try await other.request(#"{"op":"getLoginStatus","id":5}"#).dataObject?.numberValue?.int64 == 1)

            // The old UserSig is revoked, and so is any issued up to the kick's second.
            let again = try await TestClient.connect(port: port, group: group)
            #expect(try await again.request(loginFrame("bob", platform: .iPhone, id: 2, sig: oldSig)).code == 70052)
            #expect(try await again.request(loginFrame("bob", platform: .iPhone, id: 3,
                                                       sig: makeSig("bob", time: kickSecond - 1))).code == 70052)
            // One issued after it works, and renewSig to a revoked one fails.
            let fresh = makeSig("bob", time: kickSecond + 1)
            #expect(try await again.request(loginFrame("bob", platform: .iPhone, id: 4, sig: fresh)).code == 0)
            let renew = try await again.request(#"{"op":"renewSig","id":5,"userSig":"\#(oldSig)"}"#)
            #expect(renew.code == 70052)

            // Errors: unknown user, missing or non-string UserID, a body that is not an object.
            let failures: [(String, Int64)] = [
                (#"{"UserID":"nobody"}"#, 70107),
                (#"{}"#, 70402),
                (#"{"UserID":42}"#, 70402),
                (#"{"UserID":["bob"]}"#, 70402),
                (#"{"UserID":"not a user id!"}"#, 70402),
                (#"["bob"]"#, 70402),
                (#"{"UserID":"bob""#, 70402),
                ("", 70402),
            ]
            for (body, code) in failures {
                _ = try expectReply(try await HTTPTestClient.post(port: admin, uri: "\(Self.kick)?\(adminQuery())",
                                                                  json: body), code: code)
            }
            // A bad admin UserSig kicks nothing.
            _ = try expectReply(try await HTTPTestClient.post(port: admin, uri: "\(Self.kick)?\(adminQuery(sig: "x"))",
                                                              json: #"{"UserID":"carol"}"#), code: 70003)
            #expect(try await other.request(#"{"op":"getLoginStatus","id":6}"#).dataObject?.numberValue?.int64 == 1)
            await other.abort()
            await again.abort()
        }
    }

    @Test func kickOfADetachedSessionMakesItsResumeFail() async throws {
        try await withAdminServer(adminTestConfiguration()) { _, port, admin in
            let client = try await TestClient.connect(port: port, group: group)
            let login = try await client.request(loginFrame("dora", platform: .android))
            let sessionID = login.dataObject?.string("sessionID") ?? ""
            let token = login.dataObject?.string("resumeToken") ?? ""
            await client.abort()
            try await eventually("dora detached") {
                let json = try await HTTPTestClient.post(port: admin, uri: "\(Self.query)?\(adminQuery())",
                                                         json: #"{"To_Account":["dora"],"IsNeedDetail":1}"#).json()
                return json["QueryResult"]?[0]?["Detail"]?[0]?["Status"]?.stringValue == "Disconnected"
            }
            _ = try expectReply(try await HTTPTestClient.post(port: admin, uri: "\(Self.kick)?\(adminQuery())",
                                                              json: #"{"UserID":"dora"}"#), code: 0)
            let back = try await TestClient.connect(port: port, group: group)
            let resume = try await back.request(
                #"{"op":"resume","id":1,"sessionID":"\#(sessionID)","resumeToken":"\#(token)","lastSeq":0}"#)
            #expect(resume.code == 6208)
            await back.abort()
        }
    }

    @Test func queryOnlineStatusWithAndWithoutDetail() async throws {
        try await withAdminServer(adminTestConfiguration(policy: .multi)) { _, port, admin in
            let phone = try await TestClient.connect(port: port, group: group)
            #expect(try await phone.request(loginFrame("alice", platform: .iPhone)).code == 0)
            let mac = try await TestClient.connect(port: port, group: group)
            #expect(try await mac.request(loginFrame("alice", platform: .mac)).code == 0)
            let gone = try await TestClient.connect(port: port, group: group)
            #expect(try await gone.request(loginFrame("bob", platform: .web)).code == 0)
            await gone.abort()
            // alice's Mac drops: one instance attached, one detached.
            await mac.abort()

            let uri = "\(Self.query)?\(adminQuery())"
            try await eventually("both drops noticed") {
                let json = try await HTTPTestClient.post(port: admin, uri: uri,
                                                         json: #"{"To_Account":["alice","bob"],"IsNeedDetail":1}"#).json()
                return json["QueryResult"]?[1]?["Status"]?.stringValue == "Offline"
                    && json["QueryResult"]?[0]?["Detail"]?.arrayValue?.contains { $0["Status"]?.stringValue == "Disconnected" } == true
            }
            let plain = try expectReply(try await HTTPTestClient.post(port: admin, uri: uri,
                                                                      json: #"{"To_Account":["alice","bob","nobody"]}"#),
                                        code: 0)
            let expected: JSONValue = [
                ["To_Account": "alice", "Status": "Online"],
                ["To_Account": "bob", "Status": "Offline"],
                ["To_Account": "nobody", "Status": "Offline"],
            ]
            #expect(plain["QueryResult"] == expected)

            let detailed = try expectReply(try await HTTPTestClient.post(
                port: admin, uri: uri, json: #"{"To_Account":["alice","bob","nobody"],"IsNeedDetail":1}"#), code: 0)
            let results = detailed["QueryResult"]?.arrayValue ?? []
            #expect(results.count == 3)
            #expect(results[0]["Status"]?.stringValue == "Online")
            let alice = Set((results[0]["Detail"]?.arrayValue ?? []).map {
                "\($0["Platform"]?.stringValue ?? "?")=\($0["Status"]?.stringValue ?? "?")"
            })
            #expect(alice == ["iPhone=Online", "Mac=Disconnected"])
            #expect(results[1]["Detail"] == [["Platform": "Web", "Status": "Disconnected"]])
            #expect(results[2]["Detail"] == [])

            let tooMany = "[" + (0...500).map { "\"u\($0)\"" }.joined(separator: ",") + "]"
            let failures: [String] = [
                #"{}"#, #"{"To_Account":"alice"}"#, #"{"To_Account":[]}"#, #"{"To_Account":[1]}"#,
                #"{"To_Account":["bad id"]}"#, #"{"To_Account":["alice"],"IsNeedDetail":2}"#,
                #"{"To_Account":["alice"],"IsNeedDetail":"1"}"#, #"{"To_Account":\#(tooMany)}"#, "nope",
            ]
            for body in failures {
                _ = try expectReply(try await HTTPTestClient.post(port: admin, uri: uri, json: body), code: 70402)
            }
            let atLimit = "[" + (0..<500).map { "\"u\($0)\"" }.joined(separator: ",") + "]"
            let big = try expectReply(try await HTTPTestClient.post(port: admin, uri: uri,
                                                                    json: #"{"To_Account":\#(atLimit)}"#), code: 0)
            #expect(big["QueryResult"]?.arrayValue?.count == 500)
            await phone.abort()
        }
    }

    @Test func pushDeliversAMessageFromTheAdminToEveryInstance() async throws {
        try await withAdminServer(adminTestConfiguration()) { _, port, admin in
            let phone = try await TestClient.connect(port: port, group: group)
            #expect(try await phone.request(loginFrame("alice", platform: .iPhone)).code == 0)
            let web = try await TestClient.connect(port: port, group: group)
            #expect(try await web.request(loginFrame("alice", platform: .web)).code == 0)
            let away = try await TestClient.connect(port: port, group: group)
            let awayLogin = try await away.request(loginFrame("bob", platform: .web))
            await away.abort()
            try await Task.sleep(for: .milliseconds(100))

            let uri = "\(Self.push)?\(adminQuery())"
            let response = try expectReply(try await HTTPTestClient.post(
                port: admin, uri: uri,
                json: #"{"To_Account":["alice","bob","nobody"],"Payload":{"text":"maintenance at 2","n":1.50}}"#), code: 0)
            let results = response["Results"]?.arrayValue ?? []
            #expect(results.map { $0["To_Account"]?.stringValue ?? "" } == ["alice", "bob", "nobody"])
            #expect(results.map { $0["Online"]?.int64Value ?? -1 } == [2, 0, 0])
            let msgID = results.first?["MsgID"]?.stringValue
            #expect(msgID?.isEmpty == false)
            for client in [phone, web] {
                let event = try await client.nextJSON()
                #expect(event.string("event") == "message")
                #expect(event["seq"]?.numberValue?.int64 == 1)
                let data = event.dataObject
                #expect(data?.string("from") == "administrator")
                #expect(data?.string("to") == "alice")
                #expect(data?.string("msgID") == msgID)
                #expect(data?["payload"] == ["text": "maintenance at 2", "n": .number(JSONNumber(text: "1.50")!)])
                #expect(data?["time"]?.int64Value != nil)
            }
            // bob was away: the push waits in his session and comes back with the resume.
            let back = try await TestClient.connect(port: port, group: group)
            let sessionID = awayLogin.dataObject?.string("sessionID") ?? ""
            let token = awayLogin.dataObject?.string("resumeToken") ?? ""
            let resume = try await back.request(
                #"{"op":"resume","id":1,"sessionID":"\#(sessionID)","resumeToken":"\#(token)","lastSeq":0}"#)
            #expect(resume.code == 0)
            #expect(resume.dataObject?["replayed"]?.int64Value == 1)
            let replayed = try await back.nextJSON()
            #expect(replayed.dataObject?.string("from") == "administrator")
            #expect(replayed.dataObject?["payload"]?["text"]?.stringValue == "maintenance at 2")

            let oversized = String(repeating: "x", count: 70_000)
            for body in [#"{"To_Account":["alice"]}"#, #"{"Payload":1}"#, #"{"To_Account":[],"Payload":1}"#,
                         #"{"To_Account":["alice"],"Payload":"\#(oversized)"}"#] {
                _ = try expectReply(try await HTTPTestClient.post(port: admin, uri: uri, json: body), code: 70402)
            }
            _ = try expectReply(try await HTTPTestClient.post(port: admin, uri: "\(Self.push)?\(adminQuery(sig: ""))",
                                                              json: #"{"To_Account":["alice"],"Payload":1}"#), code: 70002)
            for client in [phone, web, back] { await client.abort() }
        }
    }

    @Test func statsCountsConnectionsSessionsUsersAndDAU() async throws {
        var config = adminTestConfiguration(policy: .multi)
        config.nodeID = "node-7"
        try await withAdminServer(config) { server, port, admin in
            let idle = try await TestClient.connect(port: port, group: group)  // connected, not logged in
            var clients: [TestClient] = []
            for (user, platform) in [("alice", Platform.iPhone), ("alice", .web), ("bob", .android)] {
                let client = try await TestClient.connect(port: port, group: group)
                #expect(try await client.request(loginFrame(user, platform: platform)).code == 0)
                clients.append(client)
            }
            let dropped = try await TestClient.connect(port: port, group: group)
            #expect(try await dropped.request(loginFrame("carol", platform: .mac)).code == 0)
            await dropped.abort()

            let uri = "\(Self.stats)?\(adminQuery())"
            try await eventually("carol detached") {
                try await HTTPTestClient.request(port: admin, uri: uri).json()["Sessions"]?["Detached"]?.int64Value == 1
            }
            let json = try expectReply(try await HTTPTestClient.request(port: admin, uri: uri), code: 0)
            #expect(json["Node"]?.stringValue == "node-7")
            #expect(json["Connections"]?.int64Value == 4)
            #expect(json["Sessions"] == ["Attached": 3, "Detached": 1])
            #expect(json["UsersOnline"]?.int64Value == 2)
            #expect(json["DAU"]?.int64Value == 3)
            let byPlatform = json["ByPlatform"]?.objectValue
            #expect(byPlatform?.keys.sorted() == Platform.allCases.map(\.rawValue).sorted())
            #expect(byPlatform?["iPhone"]?.int64Value == 1)
            #expect(byPlatform?["Web"]?.int64Value == 1)
            #expect(byPlatform?["Android"]?.int64Value == 1)
            #expect(byPlatform?["Mac"]?.int64Value == 0)
            // POST works too (Tencent's REST calls are all POST), and the other app sees nothing.
            _ = try expectReply(try await HTTPTestClient.post(port: admin, uri: uri, json: "{}"), code: 0)
            let otherSig = TLSSigAPIv2.issue(sdkAppID: otherAppID, key: UserSigKey(secret: otherAppKey),
                                             identifier: "boss", time: Int64(Date().timeIntervalSince1970))
            let other = try expectReply(try await HTTPTestClient.request(
                port: admin, uri: "\(Self.stats)?sdkappid=\(otherAppID)&identifier=boss&usersig=\(otherSig)"), code: 0)
            #expect(other["Sessions"] == ["Attached": 0, "Detached": 0])
            #expect(other["DAU"]?.int64Value == 0)
            #expect(other["Connections"]?.int64Value == 4)
            #expect(server.gateway.nodeID == "node-7")
            for client in clients + [idle] { await client.abort() }
        }
    }

    @Test func nodeIDDefaultsToHostAndWebSocketPort() async throws {
        var config = adminTestConfiguration()
        config.listen = .init(host: "127.0.0.1", port: 0)
        try await withAdminServer(config) { server, port, admin in
            server.gateway.webSocketListening(port: port)
            let json = try expectReply(try await HTTPTestClient.request(port: admin, uri: "\(Self.stats)?\(adminQuery())"),
                                       code: 0)
            let node = json["Node"]?.stringValue ?? ""
            #expect(node.hasSuffix(":\(port)"))
            #expect(node.count > ":\(port)".count)
        }
    }

    /// DAU: the first successful login of a user in a UTC day counts once, per app; a new day
    /// starts again from zero.
    @Test func dauCountsEachUserOncePerUTCDay() async throws {
        // 10:00 UTC, so that a few seconds more stay within the day.
        let start: Int64 = (Int64(Date().timeIntervalSince1970) / 86_400) * 86_400 + 36_000
        let clock = ManualClock(millis: start * 1000)
        try await withAdminServer(adminTestConfiguration(), clock: clock) { _, port, admin in
            func sig(_ user: String, app: UInt64 = testAppID) -> String {
                let key = app == testAppID ? testUserSigKey : UserSigKey(secret: otherAppKey)
                return TLSSigAPIv2.issue(sdkAppID: app, key: key, identifier: user, time: clock.nowMillis() / 1000)
            }
            func dau() async throws -> (stats: Int64?, metric: Double?) {
                let stats = try await HTTPTestClient.request(
                    port: admin, uri: "\(Self.stats)?\(adminQuery(sig: sig("administrator")))").json()
                let metrics = try await scrapeMetrics(adminPort: admin)
                return (stats["DAU"]?.int64Value, metricValue(metrics, #"switchboard_dau{app="\#(testAppID)"}"#))
            }
            var clients: [TestClient] = []
            func login(_ user: String, _ platform: Platform, expect code: Int64 = 0, sigOverride: String? = nil) async throws {
                let client = try await TestClient.connect(port: port, group: group)
                #expect(try await client.request(loginFrame(user, platform: platform, sig: sigOverride ?? sig(user))).code == code)
                clients.append(client)
            }
            try await login("alice", .iPhone)
            try await login("alice", .web)
            try await login("alice", .android)       // kicks the iPhone: still one user
            try await login("bob", .web, expect: 70009, sigOverride: TLSSigAPIv2.issue(
                sdkAppID: testAppID, key: UserSigKey(secret: "wrong"), identifier: "bob", time: clock.nowMillis() / 1000))
            let first = try await dau()
            #expect(first.stats == 1)
            #expect(first.metric == 1)
            try await login("bob", .web)
            #expect(try await dau().stats == 2)
            // A failed login counts nothing; nor does the other app's admin looking.
            let client = try await TestClient.connect(port: port, group: group)
            #expect(try await client.request(loginFrame("carol", platform: .web, sig: "AAAA")).code == 70003)
            #expect(try await dau().stats == 2)

            // The next UTC day: nobody yet, then alice again once.
            clock.advance(seconds: 86_400)
            #expect(try await dau().stats == 0)
            try await login("alice", .mac)
            try await login("alice", .web)
            let nextDay = try await dau()
            #expect(nextDay.stats == 1)
            #expect(nextDay.metric == 1)
            for client in clients + [client] { await client.abort() }
        }
    }
}
