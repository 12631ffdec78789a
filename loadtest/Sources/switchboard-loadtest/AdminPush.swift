import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NIOCore
import UserSig

/// Calls `POST /v4/switchboard/push` on the admin API (PROTOCOL §9), each payload stamped with
/// the tool's monotonic clock as the request is made.
struct AdminPusher: Sendable {
    let url: URL
    let session: URLSession

    init(host: String, adminPort: Int, sdkAppID: UInt64, key: String, adminUser: String = "administrator") {
        let sig = TLSSigAPIv2.issue(sdkAppID: sdkAppID, key: UserSigKey(secret: key), identifier: adminUser,
                                    expire: 86_400, time: Int64(Date().timeIntervalSince1970))
        var components = URLComponents()
        components.scheme = "http"
        components.host = host
        components.port = adminPort
        components.path = "/v4/switchboard/push"
        components.queryItems = [
            URLQueryItem(name: "sdkappid", value: String(sdkAppID)),
            URLQueryItem(name: "identifier", value: adminUser),
            URLQueryItem(name: "usersig", value: sig),
            URLQueryItem(name: "random", value: String(UInt32.random(in: 0...UInt32.max))),
            URLQueryItem(name: "contenttype", value: "json"),
        ]
        url = components.url!
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 4
        session = URLSession(configuration: configuration)
    }

    /// One push to `accounts`. - Returns: the reply's ErrorCode (-1: no usable reply).
    func push(to accounts: ArraySlice<String>) async -> Int {
        let list = accounts.map { "\"\($0)\"" }.joined(separator: ",")
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(#"{"To_Account":[\#(list)],"Payload":{"t":\#(NIODeadline.now().uptimeNanoseconds)}}"#.utf8)
        guard let (data, _) = try? await session.data(for: request),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let code = object["ErrorCode"] as? Int
        else { return -1 }
        return code
    }
}
