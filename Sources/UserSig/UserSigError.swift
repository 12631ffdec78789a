/// A UserSig verification failure, carrying Tencent's numeric error code.
///
/// `==` compares the kind of failure (and therefore the code).
public struct UserSigError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Kind: Hashable, Sendable {
        case empty
        case malformed
        case sdkAppIDMismatch
        case identifierMismatch
        case signatureMismatch
        case expired
    }

    private let kind: Kind

    private init(_ kind: Kind) {
        self.kind = kind
    }

    /// The sig is empty (70002).
    public static let empty = UserSigError(.empty)
    /// Undecodable base64, uninflatable data, unparsable JSON or a missing/wrong-typed field (70003).
    public static let malformed = UserSigError(.malformed)
    /// `TLS.sdkappid` differs from the requested app (70014).
    public static let sdkAppIDMismatch = UserSigError(.sdkAppIDMismatch)
    /// `TLS.identifier` differs from the requested user (70013).
    public static let identifierMismatch = UserSigError(.identifierMismatch)
    /// `TLS.sig` does not match the HMAC of the fields (70009).
    public static let signatureMismatch = UserSigError(.signatureMismatch)
    /// The sig is past `TLS.time + TLS.expire` (70001).
    public static let expired = UserSigError(.expired)

    /// The Tencent error code.
    public var code: Int {
        switch kind {
        case .empty: 70002
        case .malformed: 70003
        case .sdkAppIDMismatch: 70014
        case .identifierMismatch: 70013
        case .signatureMismatch: 70009
        case .expired: 70001
        }
    }

    /// A short English explanation, suitable for an error `desc`.
    public var reason: String {
        switch kind {
        case .empty: "UserSig is empty"
        case .malformed: "UserSig is malformed"
        case .sdkAppIDMismatch: "UserSig sdkappid does not match"
        case .identifierMismatch: "UserSig identifier does not match the user"
        case .signatureMismatch: "UserSig signature verification failed"
        case .expired: "UserSig has expired"
        }
    }

    public var description: String {
        "\(code) \(reason)"
    }
}
