public import SwitchboardProtocol

/// An app's multi-client login policy (PROTOCOL §5): which platforms exclude each other, and how
/// many instances one user may hold on each platform.
public struct LoginPolicy: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable {
        case single, dual, triple, multi
    }

    public var kind: Kind
    /// Indexed by `Platform.index`.
    private var limits: [Int]

    /// The most instances a configuration may ask for on one platform.
    public static func ceiling(for platform: Platform) -> Int { platform == .web ? 10 : 3 }

    /// - Throws: `LoginPolicyError` when a limit is below 1 or above the platform's ceiling.
    public init(kind: Kind = .dual, maxInstances: [Platform: Int] = [:]) throws(LoginPolicyError) {
        self.kind = kind
        var limits = Array(repeating: 1, count: Platform.allCases.count)
        for (platform, limit) in maxInstances {
            guard limit >= 1, limit <= Self.ceiling(for: platform) else {
                throw LoginPolicyError(platform: platform, limit: limit)
            }
            limits[platform.index] = limit
        }
        self.limits = limits
    }

    public func maxInstances(on platform: Platform) -> Int { limits[platform.index] }

    /// The group a platform belongs to; platforms of one group exclude each other.
    public func group(of platform: Platform) -> Int {
        switch kind {
        case .single:
            return 0
        case .dual:
            return platform == .web ? 1 : 0
        case .triple:
            switch platform {
            case .android, .iPhone, .iPad: return 0
            case .windows, .mac, .linux: return 1
            case .web: return 2
            }
        case .multi:
            return platform.index
        }
    }

    /// Which existing instances a new login on `platform` pushes out: every instance on the other
    /// platforms of its group, then the earliest on `platform` itself until the new one fits.
    /// - Parameter existing: the user's instances' platforms, earliest login first.
    /// - Returns: indices into `existing`, ascending.
    public func evictions(existing: [Platform], newPlatform platform: Platform) -> [Int] {
        let group = group(of: platform)
        var evicted: [Int] = []
        var samePlatform: [Int] = []
        for (i, other) in existing.enumerated() {
            if other == platform {
                samePlatform.append(i)
            } else if self.group(of: other) == group {
                evicted.append(i)
            }
        }
        let overflow = samePlatform.count - (maxInstances(on: platform) - 1)
        if overflow > 0 {
            evicted.append(contentsOf: samePlatform.prefix(overflow))
            evicted.sort()
        }
        return evicted
    }
}

public struct LoginPolicyError: Error, Hashable, Sendable, CustomStringConvertible {
    public let platform: Platform
    public let limit: Int

    public var description: String {
        "maxInstances.\(platform.rawValue) is \(limit); it must be between 1 and \(LoginPolicy.ceiling(for: platform))"
    }
}
