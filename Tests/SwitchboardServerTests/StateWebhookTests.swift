import Foundation
import NIOCore
import NIOPosix
import SwitchboardCore
import SwitchboardProtocol
@testable import SwitchboardServer
import Testing
import UserSig

/// The `State.StateChange` webhook against real HTTP receivers on loopback.
@Suite("State-change webhook")
struct StateWebhookTests {
    let group = MultiThreadedEventLoopGroup.singleton

    /// (Action, Reason) of each callback for `user`, in arrival order.
    func actions(_ received: [WebhookReceiver.Received], user: String) -> [String] {
        received.compactMap { item in
            guard let info = item.body?["Info"], info["To_Account"]?.stringValue == user else { return nil }
            return "\(info["Action"]?.stringValue ?? "?")/\(info["Reason"]?.stringValue ?? "?")"
        }
    }

    @Test func everyStateChangeIsPostedAsTencentShapesIt() async throws {
        let receiver = try await WebhookReceiver.start(mode: .answer(200))
        defer { Task { await receiver.stop() } }
        let config = adminTestConfiguration(policy: .dual, callbackURL: receiver.url + "?token=abc", heartbeat: 0.25)
        try await withAdminServer(config) { _, port, admin in
            let before = Int64(Date().timeIntervalSince1970 * 1000)
            // Login, then a login on another native platform that kicks the first.
            let phone = try await TestClient.connect(port: port, group: group)
            #expect(try await phone.request(loginFrame("alice", platform: .iPhone)).code == 0)
            let android = try await TestClient.connect(port: port, group: group)
            #expect(try await android.request(loginFrame("alice", platform: .android)).code == 0)
            #expect(try await phone.closeCode() == 4002)
            // Logout; then log in again and lose the connection (LinkClose).
            #expect(try await android.request(#"{"op":"logout","id":7}"#).code == 0)
            #expect(try await android.request(loginFrame("alice", platform: .android, id: 8)).code == 0)
            await android.abort()

            let received = try await receiver.wait(for: 5)
            #expect(actions(received, user: "alice") == [
                "Login/Register", "Login/Register", "Logout/Unregister", "Login/Register", "Disconnect/LinkClose",
            ])
            let first = try #require(received.first)
            #expect(first.body?["CallbackCommand"]?.stringValue == "State.StateChange")
            let eventTime = first.body?["EventTime"]?.int64Value ?? 0
            #expect(eventTime >= before && eventTime <= Int64(Date().timeIntervalSince1970 * 1000))
            #expect(first.body?["KickedDevice"] == [])
            #expect(first.body?.objectValue?.keys == ["CallbackCommand", "EventTime", "Info", "KickedDevice"])
            #expect(first.body?["Info"]?.objectValue?.keys == ["Action", "To_Account", "Reason"])
            #expect(received[1].body?["KickedDevice"] == [["Platform": "iPhone"]])
            #expect(received[2].body?["KickedDevice"] == nil)
            #expect(received[2].body?.objectValue?.keys == ["CallbackCommand", "EventTime", "Info"])
            // Tencent's callback URL convention, after the configured query.
            #expect(first.uri.hasPrefix("/state?token=abc&"))
            #expect(first.query["SdkAppid"] == String(testAppID))
            #expect(first.query["CallbackCommand"] == "State.StateChange")
            #expect(first.query["contenttype"] == "json")
            #expect(first.query["OptPlatform"] == "iOS")
            #expect(received[1].query["OptPlatform"] == "Android")

            // A peer that goes silent: Disconnect/TimeOut after two heartbeats.
            let silent = try await TestClient.connect(port: port, group: group, answerPings: false)
            #expect(try await silent.request(loginFrame("bob", platform: .web)).code == 0)
            let afterTimeout = try await receiver.wait(for: 7)
            #expect(actions(afterTimeout, user: "bob") == ["Login/Register", "Disconnect/TimeOut"])

            // An admin kick: one Logout/Unregister from the REST API.
            let carol = try await TestClient.connect(port: port, group: group)
            #expect(try await carol.request(loginFrame("carol", platform: .mac)).code == 0)
            let kick = try await HTTPTestClient.post(port: admin, uri: "/v4/im_open_login_svc/kick?\(adminQuery())",
                                                     json: #"{"UserID":"carol"}"#)
            #expect(try kick.json()["ErrorCode"]?.int64Value == 0)
            let afterKick = try await receiver.wait(for: 9)
            #expect(actions(afterKick, user: "carol") == ["Login/Register", "Logout/Unregister"])
            #expect(afterKick.last?.query["OptPlatform"] == "RESTAPI")

            let metrics = try await scrapeMetrics(adminPort: admin)
            #expect(metricValue(metrics, #"switchboard_webhook_posts_total{result="ok"}"#) == 9)
            #expect(metricValue(metrics, "switchboard_webhook_dropped_total") == 0)
            // The other app has no URL: nothing is posted for it.
            let otherSig = TLSSigAPIv2.issue(sdkAppID: otherAppID, key: UserSigKey(secret: otherAppKey),
                                             identifier: "dave", time: Int64(Date().timeIntervalSince1970))
            let dave = try await TestClient.connect(port: port, group: group)
            let login = #"{"op":"login","id":1,"sdkAppID":\#(otherAppID),"userID":"dave","userSig":"\#(otherSig)","platform":"Web"}"#
            #expect(try await dave.request(login).code == 0)
            try await Task.sleep(for: .milliseconds(200))
            #expect(receiver.requests.count == 9)
            await dave.abort()
        }
    }

    @Test func userSigExpiryIsALogout() async throws {
        let receiver = try await WebhookReceiver.start(mode: .answer(200))
        defer { Task { await receiver.stop() } }
        try await withAdminServer(adminTestConfiguration(callbackURL: receiver.url)) { _, port, _ in
            let client = try await TestClient.connect(port: port, group: group)
            let sig = makeSig("erin", expire: 1)
            #expect(try await client.request(loginFrame("erin", platform: .web, sig: sig)).code == 0)
            let event = try await client.nextJSON(timeout: .seconds(4))
            #expect(event.string("event") == "userSigExpired")
            let received = try await receiver.wait(for: 2)
            #expect(actions(received, user: "erin") == ["Login/Register", "Logout/Unregister"])
            await client.abort()
        }
    }

    /// A receiver that never answers: logins stay fast, the gateway stays responsive, the
    /// bounded queue drops what does not fit and counts it, and each stuck POST times out.
    @Test func aReceiverThatNeverAnswersNeverSlowsTheGateway() async throws {
        let receiver = try await WebhookReceiver.start(mode: .silent)
        defer { Task { await receiver.stop() } }
        // Long enough that no POST ends while the logins run: exactly one in flight, four waiting.
        let webhook = StateWebhook.Configuration(queueCapacity: 4, timeoutSeconds: 2.5, lanes: 1)
        try await withAdminServer(adminTestConfiguration(callbackURL: receiver.url), webhook: webhook) { _, port, admin in
            let clock = ContinuousClock()
            var clients: [TestClient] = []
            let started = clock.now
            for i in 0..<30 {
                let client = try await TestClient.connect(port: port, group: group)
                let loginStart = clock.now
                #expect(try await client.request(loginFrame("user\(i)", platform: .web)).code == 0)
                #expect(clock.now - loginStart < .milliseconds(400), "login \(i) was slowed down")
                clients.append(client)
            }
            #expect(clock.now - started < .seconds(2))
            #expect(try await HTTPTestClient.request(port: admin, uri: "/healthz").status == 200)
            // One POST in flight, four waiting: the other 25 Login events were dropped.
            let metrics = try await scrapeMetrics(adminPort: admin)
            #expect(metricValue(metrics, "switchboard_webhook_dropped_total") == 25)
            #expect(metricValue(metrics, "switchboard_webhook_queued") == 4)
            #expect(metricValue(metrics, #"switchboard_webhook_posts_total{result="timeout"}"#) == 0)
            // The stuck POST times out, and the next one goes.
            try await eventually(timeout: .seconds(6), "a webhook timeout counted") {
                let text = try await scrapeMetrics(adminPort: admin)
                return metricValue(text, #"switchboard_webhook_posts_total{result="timeout"}"#) == 1
                    && metricValue(text, "switchboard_webhook_queued") == 3
            }
            try await eventually("the next POST reached the receiver") { receiver.requests.count == 2 }
            // Still serving logins and messages meanwhile.
            let late = try await TestClient.connect(port: port, group: group)
            #expect(try await late.request(loginFrame("late", platform: .web)).code == 0)
            for client in clients + [late] { await client.abort() }
        }
    }

    @Test func aDeadOrFailingReceiverIsCountedAndHarmless() async throws {
        // Nothing listens on this port: every POST is refused.
        let closed = try await WebhookReceiver.start(mode: .answer(200))
        let deadURL = closed.url
        await closed.stop()
        let failing = try await WebhookReceiver.start(mode: .answer(500))
        defer { Task { await failing.stop() } }
        var config = adminTestConfiguration(callbackURL: deadURL)
        config.apps[1] = AppConfiguration(sdkAppID: otherAppID, secretKey: otherAppKey, adminUser: "boss",
                                          stateCallbackURL: failing.url)
        try await withAdminServer(config) { _, port, admin in
            let client = try await TestClient.connect(port: port, group: group)
            #expect(try await client.request(loginFrame("frank", platform: .web)).code == 0)
            let otherSig = TLSSigAPIv2.issue(sdkAppID: otherAppID, key: UserSigKey(secret: otherAppKey),
                                             identifier: "gina", time: Int64(Date().timeIntervalSince1970))
            let other = try await TestClient.connect(port: port, group: group)
            let login = #"{"op":"login","id":1,"sdkAppID":\#(otherAppID),"userID":"gina","userSig":"\#(otherSig)","platform":"Web"}"#
            #expect(try await other.request(login).code == 0)
            try await eventually("both failures counted") {
                let text = try await scrapeMetrics(adminPort: admin)
                return metricValue(text, #"switchboard_webhook_posts_total{result="failed"}"#) == 2
            }
            #expect(failing.requests.count == 1)
            #expect(try await client.request(#"{"op":"getLoginStatus","id":3}"#).dataObject?.numberValue?.int64 == 1)
            await client.abort()
            await other.abort()
        }
    }

    /// After `Gateway.close()` (shutdown), nothing more is posted: events are dropped and counted.
    @Test func closingTheGatewayStopsPosting() async throws {
        let receiver = try await WebhookReceiver.start(mode: .answer(200))
        defer { Task { await receiver.stop() } }
        try await withAdminServer(adminTestConfiguration(callbackURL: receiver.url)) { server, port, admin in
            let client = try await TestClient.connect(port: port, group: group)
            #expect(try await client.request(loginFrame("hana", platform: .web)).code == 0)
            try await receiver.wait(for: 1)
            server.gateway.close()
            #expect(try await client.request(#"{"op":"logout","id":2}"#).code == 0)
            try await eventually("the Logout dropped") {
                metricValue(try await scrapeMetrics(adminPort: admin), "switchboard_webhook_dropped_total") == 1
            }
            try await Task.sleep(for: .milliseconds(100))
            #expect(receiver.requests.count == 1)
            await client.abort()
        }
    }

    @Test func callbackURLsParse() {
        let plain = WebhookTarget("http://example.com/cb")
        #expect(plain == WebhookTarget(tls: false, host: "example.com", port: 80, pathAndQuery: "/cb"))
        #expect(plain?.hostHeader == "example.com")
        #expect(plain?.requestURI(sdkAppID: 7, optPlatform: "Web")
            == "/cb?SdkAppid=7&CallbackCommand=State.StateChange&contenttype=json&OptPlatform=Web")
        let full = WebhookTarget("https://user@[::1]:8443?x=1#frag")
        #expect(full == WebhookTarget(tls: true, host: "::1", port: 8443, pathAndQuery: "/?x=1"))
        #expect(full?.hostHeader == "[::1]:8443")
        #expect(full?.requestURI(sdkAppID: 7, optPlatform: "iOS")
            == "/?x=1&SdkAppid=7&CallbackCommand=State.StateChange&contenttype=json&OptPlatform=iOS")
        #expect(WebhookTarget("https://h")?.port == 443)
        for bad in ["", "ftp://h/", "http://", "http://:80/", "http://h:0/", "http://h:99999/", "http://[::1/"] {
            #expect(WebhookTarget(bad) == nil, "\(bad)")
        }
    }

    @Test func eventBodyIsExactlyTencents() {
        let login = StateWebhook.Event(sdkAppID: 1, url: "", action: .login, reason: .register, userID: "a\"b",
                                       optPlatform: "Web", kicked: [.iPhone, .web], time: 1_629_883_332_497)
        #expect(String(decoding: login.body, as: UTF8.self) == #"{"CallbackCommand":"State.StateChange","EventTime":1629883332497,"Info":{"Action":"Login","To_Account":"a\"b","Reason":"Register"},"KickedDevice":[{"Platform":"iPhone"},{"Platform":"Web"}]}"#)
        let disconnect = StateWebhook.Event(sdkAppID: 1, url: "", action: .disconnect, reason: .timeOut, userID: "x",
                                            optPlatform: "Web", kicked: nil, time: 5)
        #expect(String(decoding: disconnect.body, as: UTF8.self) == #"{"CallbackCommand":"State.StateChange","EventTime":5,"Info":{"Action":"Disconnect","To_Account":"x","Reason":"TimeOut"}}"#)
    }
}
