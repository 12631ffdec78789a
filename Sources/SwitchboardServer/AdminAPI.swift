import NIOHTTP1
import SwitchboardCore
import SwitchboardProtocol

/// A whole request on the admin port, body read (and capped) by `AdminHTTPHandler`.
struct AdminRequest: Sendable {
    var method: HTTPMethod
    var uri: String
    var body: [UInt8]
}

struct AdminResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    var headers: [(String, String)] = []

    static func text(_ status: HTTPResponseStatus, _ text: String, headers: [(String, String)] = []) -> AdminResponse {
        AdminResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8), headers: headers)
    }
}

/// The admin port's endpoints (PROTOCOL §9): health, readiness and metrics without
/// authentication, and the Tencent-compatible REST API under `/v4/`.
///
/// REST calls authenticate as Tencent's do, by query parameters: `sdkappid`, `identifier` (the
/// app's admin user), `usersig` (a UserSig of that user for that app), `random`, and
/// `contenttype=json` (optional here; any other value is refused). Their replies are JSON with
/// `ActionStatus`, `ErrorCode` and `ErrorInfo` first, and HTTP 200 whatever the `ErrorCode`, as
/// Tencent's are. HTTP statuses are for what is not an API call: 404 unknown path, 405 wrong
/// method, 413 a body over `maxBodyBytes`.
///
/// Codes: a missing or non-numeric `sdkappid`, a missing `identifier`, an `identifier` that is
/// not the app's admin user, a `contenttype` other than `json`, a body that is not a JSON object
/// or a field of the wrong type: 70402. An `sdkappid` not configured: 70020. A missing or empty
/// `usersig`: 70002; otherwise the UserSig's own §4 code (70003, 70014, 70013, 70009, 70001).
/// `kick` of a user who never logged in: 70107.
struct AdminAPI: Sendable {
    let gateway: Gateway

    /// Requests bodies larger than this are answered 413.
    static let maxBodyBytes = 1 << 20
    /// Accounts per `query_online_status` or `push` call, as Tencent's limit.
    static let maxAccounts = 500

    func respond(to request: AdminRequest, ready: Bool) -> AdminResponse {
        let (path, query) = Self.split(request.uri)
        switch path {
        case "/healthz":
            guard request.method == .GET else { return Self.methodNotAllowed("GET") }
            return .text(.ok, "ok\n")
        case "/readyz":
            guard request.method == .GET else { return Self.methodNotAllowed("GET") }
            return ready ? .text(.ok, "ready\n") : .text(.serviceUnavailable, "not ready\n")
        case "/metrics":
            guard request.method == .GET else { return Self.methodNotAllowed("GET") }
            return AdminResponse(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                 body: gateway.metrics.render(gateway: gateway))
        case "/v4/im_open_login_svc/kick":
            guard request.method == .POST else { return Self.methodNotAllowed("POST") }
            return call("kick", query: query, body: request.body, kick)
        case "/v4/openim/query_online_status":
            guard request.method == .POST else { return Self.methodNotAllowed("POST") }
            return call("query_online_status", query: query, body: request.body, queryOnlineStatus)
        case "/v4/switchboard/push":
            guard request.method == .POST else { return Self.methodNotAllowed("POST") }
            return call("push", query: query, body: request.body, push)
        case "/v4/switchboard/stats":
            guard request.method == .GET || request.method == .POST else { return Self.methodNotAllowed("GET, POST") }
            return call("stats", query: query, body: nil, stats)
        default:
            return .text(.notFound, "not found\n")
        }
    }

    // MARK: Calls

    private typealias Call = (AppConfiguration, JSONObject) throws(RequestError) -> [(String, JSONValue)]

    /// Authenticates, parses the body (a JSON object; nil: none needed), runs the call, and
    /// shapes the reply.
    private func call(_ endpoint: String, query: [String: String], body: [UInt8]?, _ call: Call) -> AdminResponse {
        let result: Result<[(String, JSONValue)], RequestError>
        do throws(RequestError) {
            let app = try authenticate(query)
            var object = JSONObject()
            if let body {
                object = try Self.parseObject(body)
            }
            result = .success(try call(app, object))
        } catch {
            result = .failure(error)
        }
        let code: ErrorCode
        let reply: [UInt8]
        switch result {
        case .success(let fields):
            code = .ok
            reply = Self.reply(code: .ok, info: "", fields)
        case .failure(let error):
            code = error.code
            reply = Self.reply(code: error.code, info: error.desc, [])
        }
        gateway.metrics.adminRequest(endpoint: endpoint, code: code)
        return AdminResponse(status: .ok, contentType: "application/json; charset=utf-8", body: reply)
    }

    private func authenticate(_ query: [String: String]) throws(RequestError) -> AppConfiguration {
        guard let text = query["sdkappid"], !text.isEmpty else {
            throw RequestError(.adminInvalidParameter, "the query parameter sdkappid is missing")
        }
        guard let sdkAppID = UInt64(text), sdkAppID > 0 else {
            throw RequestError(.adminInvalidParameter, "sdkappid must be a positive integer")
        }
        guard let app = gateway.apps.app(sdkAppID) else {
            throw RequestError(.unknownSDKAppID, "sdkappid \(sdkAppID) is not configured on this server")
        }
        if let contentType = query["contenttype"], contentType != "json" {
            throw RequestError(.adminInvalidParameter, "contenttype must be json")
        }
        guard let identifier = query["identifier"], !identifier.isEmpty else {
            throw RequestError(.adminInvalidParameter, "the query parameter identifier is missing")
        }
        guard identifier == app.adminUser else {
            throw RequestError(.adminInvalidParameter, "identifier must be the app's admin user")
        }
        guard let userSig = query["usersig"], !userSig.isEmpty else {
            throw RequestError(.userSigEmpty, "the query parameter usersig is missing or empty")
        }
        _ = try gateway.authenticator.verify(sdkAppID: sdkAppID, userID: identifier, userSig: userSig)
        return app
    }

    /// `{"UserID":"bob"}`: kicks every instance of bob (`reason: admin`) and revokes every
    /// UserSig of bob issued at or before this second.
    private func kick(_ app: AppConfiguration, _ body: JSONObject) throws(RequestError) -> [(String, JSONValue)] {
        guard let value = body["UserID"] else {
            throw RequestError(.adminInvalidParameter, "UserID is missing")
        }
        guard let userID = value.stringValue else {
            throw RequestError(.adminInvalidParameter, "UserID must be a string")
        }
        guard isValidUserID(userID) else {
            throw RequestError(.adminInvalidParameter, "UserID is not a valid userID")
        }
        guard let count = try gateway.directory.adminKick(app: app.sdkAppID, userID: userID) else {
            throw RequestError(.noSuchUser, "UserID \(userID) has never logged in")
        }
        gateway.adminKicked(app: app.sdkAppID, userID: userID, instances: count)
        return []
    }

    /// `{"To_Account":[...],"IsNeedDetail":0|1}`.
    private func queryOnlineStatus(_ app: AppConfiguration, _ body: JSONObject) throws(RequestError) -> [(String, JSONValue)] {
        let accounts = try Self.accounts(body)
        var detail = false
        if let value = body["IsNeedDetail"] {
            switch value.numberValue?.int64 {
            case 0?: detail = false
            case 1?: detail = true
            default: throw RequestError(.adminInvalidParameter, "IsNeedDetail must be 0 or 1")
            }
        }
        var results: [JSONValue] = []
        results.reserveCapacity(accounts.count)
        let found = try gateway.directory.instances(app: app.sdkAppID, userIDs: accounts)
        for (account, instances) in zip(accounts, found) {
            let instances = instances ?? []
            var fields: [(String, JSONValue)] = [
                ("To_Account", .string(account)),
                ("Status", .string(instances.contains(where: \.attached) ? "Online" : "Offline")),
            ]
            if detail {
                fields.append(("Detail", .array(instances.map { instance in
                    .object(JSONObject([
                        ("Platform", .string(instance.platform.rawValue)),
                        ("Status", .string(instance.attached ? "Online" : "Disconnected")),
                    ]))
                })))
            }
            results.append(.object(JSONObject(fields)))
        }
        return [("QueryResult", .array(results))]
    }

    /// `{"To_Account":[...],"Payload":any}`: a `message` event from the admin user to every
    /// instance of each account.
    private func push(_ app: AppConfiguration, _ body: JSONObject) throws(RequestError) -> [(String, JSONValue)] {
        let accounts = try Self.accounts(body)
        guard let payload = body["Payload"] else {
            throw RequestError(.adminInvalidParameter, "Payload is missing")
        }
        var size = JSONWriter(reservingCapacity: 256)
        size.write(payload)
        guard size.bytes.count <= gateway.configuration.maxFrameBytes else {
            throw RequestError(.adminInvalidParameter,
                               "Payload is larger than \(gateway.configuration.maxFrameBytes) bytes")
        }
        var results: [JSONValue] = []
        results.reserveCapacity(accounts.count)
        let sends = try gateway.directory.push(app: app.sdkAppID, from: app.adminUser, to: accounts, payload: payload)
        for (account, sent) in zip(accounts, sends) {
            gateway.messageSent()
            results.append(.object(JSONObject([
                ("To_Account", .string(account)),
                ("MsgID", .string(sent.msgID)),
                ("Online", .number(JSONNumber(sent.online))),
            ])))
        }
        return [("Results", .array(results))]
    }

    private func stats(_ app: AppConfiguration, _ body: JSONObject) throws(RequestError) -> [(String, JSONValue)] {
        let counts = try gateway.directory.counts(app: app.sdkAppID)
        return [
            ("Node", .string(gateway.nodeID)),
            ("Connections", .number(JSONNumber(gateway.connections))),
            ("Sessions", .object(JSONObject([
                ("Attached", .number(JSONNumber(counts.attached))),
                ("Detached", .number(JSONNumber(counts.detached))),
            ]))),
            ("UsersOnline", .number(JSONNumber(counts.usersOnline))),
            ("DAU", .number(JSONNumber(counts.dau))),
            ("ByPlatform", .object(JSONObject(Platform.allCases.map { platform in
                (platform.rawValue, .number(JSONNumber(counts.byPlatform[platform] ?? 0)))
            }))),
        ]
    }

    // MARK: Helpers

    /// `To_Account`: 1 to `maxAccounts` valid userIDs.
    private static func accounts(_ body: JSONObject) throws(RequestError) -> [String] {
        guard let list = body["To_Account"]?.arrayValue else {
            throw RequestError(.adminInvalidParameter, "To_Account must be an array of userIDs")
        }
        guard (1...maxAccounts).contains(list.count) else {
            throw RequestError(.adminInvalidParameter, "To_Account must hold 1 to \(maxAccounts) userIDs")
        }
        var accounts: [String] = []
        accounts.reserveCapacity(list.count)
        for (i, item) in list.enumerated() {
            guard let account = item.stringValue, isValidUserID(account) else {
                throw RequestError(.adminInvalidParameter, "To_Account[\(i)] is not a valid userID")
            }
            accounts.append(account)
        }
        return accounts
    }

    private static func parseObject(_ body: [UInt8]) throws(RequestError) -> JSONObject {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            throw RequestError(.adminInvalidParameter, "the body is not valid JSON: \(error)")
        }
        guard let object = value.objectValue else {
            throw RequestError(.adminInvalidParameter, "the body must be a JSON object")
        }
        return object
    }

    static func reply(code: ErrorCode, info: String, _ fields: [(String, JSONValue)]) -> [UInt8] {
        var pairs: [(String, JSONValue)] = [
            ("ActionStatus", .string(code == .ok ? "OK" : "FAIL")),
            ("ErrorCode", .number(JSONNumber(code.rawValue))),
            ("ErrorInfo", .string(info)),
        ]
        pairs.append(contentsOf: fields)
        var w = JSONWriter(reservingCapacity: 256)
        w.write(.object(JSONObject(pairs)))
        return w.bytes
    }

    /// The answer to a body over `maxBodyBytes`: 413, with a 70402 reply for Tencent clients.
    static let bodyTooLarge = AdminResponse(
        status: .payloadTooLarge, contentType: "application/json; charset=utf-8",
        body: reply(code: .adminInvalidParameter, info: "the request body is larger than \(maxBodyBytes) bytes", []))

    private static func methodNotAllowed(_ allow: String) -> AdminResponse {
        .text(.methodNotAllowed, "method not allowed\n", headers: [("Allow", allow)])
    }

    /// Path and query parameters (percent-decoded; the first of a repeated name wins).
    static func split(_ uri: String) -> (path: String, query: [String: String]) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = percentDecoded(parts[0])
            guard query[name] == nil else { continue }
            query[name] = parts.count > 1 ? percentDecoded(parts[1]) : ""
        }
        return (String(uri[..<mark]), query)
    }

    private static func percentDecoded(_ text: Substring) -> String {
        guard text.contains("%") else { return String(text) }
        var out: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
               let high = hexValue(bytes[i + 1]), let low = hexValue(bytes[i + 2]) {
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
