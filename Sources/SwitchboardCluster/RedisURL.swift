/// Where a Redis server is and how to log in: `redis://[user:password@]host[:port][/db]`.
///
/// `user` and `password` may be percent-encoded (`%40` for `@`); the user may be empty
/// (`redis://:secret@host`, the classic `requirepass` form). An IPv6 host goes in brackets
/// (`redis://[::1]:6380`). Anything else (another scheme, `rediss://`, query parameters,
/// credentials without a colon, a bad port or database) throws `RedisURLError`.
public struct RedisURL: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var database: Int
    public var password: String?
    public var user: String?

    public static let defaultPort = 6379

    public init(host: String, port: Int = RedisURL.defaultPort, database: Int = 0,
                password: String? = nil, user: String? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.password = password
        self.user = user
    }

    public init(_ text: String) throws(RedisURLError) {
        func fail(_ reason: String) -> RedisURLError {
            RedisURLError(url: RedisURL.redacted(text), reason: reason)
        }
        let scheme = "redis://"
        guard text.lowercased().hasPrefix(scheme) else {
            if text.lowercased().hasPrefix("rediss://") {
                throw fail("TLS (rediss://) is not supported")
            }
            throw fail("expected redis://[user:password@]host[:port][/db]")
        }
        var rest = Substring(text.dropFirst(scheme.count))
        if rest.contains("?") || rest.contains("#") {
            throw fail("query parameters and fragments are not supported")
        }
        let authority: Substring
        let path: Substring
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[rest.index(after: slash)...]
        } else {
            authority = rest
            path = ""
        }
        rest = authority

        // Credentials.
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = userinfo.firstIndex(of: ":") else {
                throw fail("credentials must be user:password or :password (no colon found)")
            }
            guard let decodedUser = RedisURL.percentDecode(userinfo[..<colon]),
                  let decodedPassword = RedisURL.percentDecode(userinfo[userinfo.index(after: colon)...]) else {
                throw fail("malformed percent-encoding in the credentials")
            }
            user = decodedUser.isEmpty ? nil : decodedUser
            password = decodedPassword.isEmpty ? nil : decodedPassword
            if user != nil, password == nil {
                throw fail("a user needs a password")
            }
        }

        // Host and port.
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw fail("unterminated [IPv6] host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after the [IPv6] host") }
                portText = after.dropFirst()
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw fail("malformed IPv6 host")
            }
        } else {
            if let colon = rest.firstIndex(of: ":") {
                host = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
            } else {
                host = rest
            }
            guard !host.isEmpty else { throw fail("missing host") }
            guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }) else {
                throw fail("malformed host \"\(host)\"")
            }
        }
        var port = RedisURL.defaultPort
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = Int(portText), (1...65535).contains(value) else {
                throw fail("port must be 1...65535, got \"\(portText)\"")
            }
            port = value
        }

        // Database.
        var database = 0
        if !path.isEmpty {
            guard path.count <= 9, path.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(path) else {
                throw fail("database must be a non-negative number, got \"\(path)\"")
            }
            database = value
        }

        self.init(host: String(host), port: port, database: database, password: password, user: user)
    }

    private static func percentDecode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var utf8 = text.utf8[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%") {
                guard utf8.count >= 2,
                      let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) else {
                    return nil
                }
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The text with anything between `://` and the last `@` replaced, for error messages.
    private static func redacted(_ text: String) -> String {
        guard let schemeEnd = text.firstRange(of: "://"), let at = text.lastIndex(of: "@"),
              at > schemeEnd.upperBound else { return text }
        return String(text[..<schemeEnd.upperBound]) + "***" + String(text[at...])
    }
}

extension RedisURL: CustomStringConvertible {
    /// The URL with the password hidden, for logs.
    public var description: String {
        var text = "redis://"
        if password != nil {
            text += (user ?? "") + ":***@"
        }
        text += host.contains(":") ? "[\(host)]" : host
        text += ":\(port)"
        if database != 0 { text += "/\(database)" }
        return text
    }
}

/// A Redis URL that could not be parsed; the URL in it has its credentials hidden.
public struct RedisURLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var url: String
    public var reason: String

    public var description: String { "invalid Redis URL \"\(url)\": \(reason)" }
}
