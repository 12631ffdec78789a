public import SwitchboardProtocol
public import UserSig
import Crypto
import Synchronization

/// Settings of the session table.
public struct SessionTableConfiguration: Sendable {
    /// Seconds a detached session is kept for a resume.
    public var resumeWindowSeconds: Int64 = 120
    /// Events kept for a detached session: exactly this many fit, one more ends the session.
    public var resumeBuffer: Int = 1000
    /// A power of two; several per core keeps lock contention low.
    public var shardCount: Int = 64

    public init(resumeWindowSeconds: Int64 = 120, resumeBuffer: Int = 1000, shardCount: Int = 64) {
        self.resumeWindowSeconds = resumeWindowSeconds
        self.resumeBuffer = resumeBuffer
        self.shardCount = shardCount
    }
}

public enum LoginResult: Sendable {
    /// `kicked`: the platforms of the instances the policy pushed out.
    case success(SessionInfo, kicked: [Platform])
    case failure(ErrorCode, String)
}

public enum ResumeResult: Sendable {
    /// The session is attached to the new connection; `replay` are the events to send after the
    /// reply, in order.
    case success(SessionInfo, replay: [SessionEvent])
    case failure(ErrorCode, String)
}

public struct SendResult: Sendable, Hashable {
    public let msgID: String
    /// Attached instances of the recipient the message reached.
    public let online: Int

    public init(msgID: String, online: Int) {
        self.msgID = msgID
        self.online = online
    }
}

/// Counts for the admin API's stats.
public struct SessionCounts: Sendable, Hashable {
    public var attached = 0
    public var detached = 0
    public var usersOnline = 0
    public var dau = 0
    /// Attached sessions by platform.
    public var byPlatform: [Platform: Int] = [:]

    public init() {}
}

/// One instance of a user as the admin API lists it.
public struct InstanceStatus: Sendable, Hashable {
    public let platform: Platform
    public let attached: Bool

    public init(platform: Platform, attached: Bool) {
        self.platform = platform
        self.attached = attached
    }
}

/// Every session of one process, split into shards by user, each behind its own lock.
///
/// A lock is held only to read or change a shard's maps. What a change means for a connection
/// (an event, a kick) is handed to that connection's `SessionSink` while the lock is held, which
/// keeps the order of deliveries to one session the order of the changes; the sink only enqueues
/// the work on the connection's own event loop, so no I/O ever happens under a lock.
public final class SessionTable: Sendable {
    public let configuration: SessionTableConfiguration
    public let clock: any WallClock
    private let shards: [Shard]
    private let shardMask: Int
    private let tokenSecret: [UInt8]
    private let messageCounter = Atomic<UInt64>(0)
    private let messagePrefix: String

    public init(configuration: SessionTableConfiguration = .init(), clock: any WallClock = SystemClock(),
                tokenSecret: [UInt8]? = nil) {
        precondition(configuration.shardCount > 0 && configuration.shardCount & (configuration.shardCount - 1) == 0,
                     "shardCount must be a power of two")
        precondition(configuration.shardCount <= 4096, "shardCount must fit in two base64url digits")
        self.configuration = configuration
        self.clock = clock
        self.shards = (0..<configuration.shardCount).map { _ in Shard() }
        self.shardMask = configuration.shardCount - 1
        var rng = SystemRandomNumberGenerator()
        self.tokenSecret = tokenSecret ?? (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        self.messagePrefix = String(rng.next() & 0xFFFF_FFFF, radix: 16)
    }

    // MARK: Login and logout

    /// Registers a new session for a verified UserSig, applying the app's policy. The caller has
    /// checked the UserSig's signature; revocation is checked here, where the user's state is.
    public func login(app: AppConfiguration, userID: String, platform: Platform, ticket: UserSigTicket,
                      connection: ConnectionRef) -> LoginResult {
        let now = clock.nowMillis()
        let key = UserKey(app: app.sdkAppID, userID: userID)
        let shardIndex = shardIndex(for: key)
        var sessionID = makeSessionID(shard: shardIndex)
        let day = Int32(truncatingIfNeeded: now / 86_400_000)
        let result = shards[shardIndex].state.withLock { state -> LoginResult in
            state.purgeTombstonesIfDue(now: now)
            // 72 random bits make a clash unlikely; the shard knows every live ID, so make it impossible.
            while state.sessionUsers[sessionID] != nil || state.tombstones[sessionID] != nil {
                sessionID = makeSessionID(shard: shardIndex)
            }
            var entry = state.users[key] ?? UserEntry()
            if let revoked = entry.revokedThrough, ticket.time <= revoked {
                return .failure(.userSigRevoked, "UserSig was revoked by an admin kick; make a new one")
            }
            prune(&entry, key: key, state: &state, now: now)
            let evicted = app.policy.evictions(existing: entry.sessions.map(\.platform), newPlatform: platform)
            let kickedPlatforms = evicted.map { entry.sessions[$0].platform }
            let kickData = Self.kickData(reason: "multiDevice", byPlatform: platform)
            for index in evicted.reversed() {
                let victim = entry.sessions.remove(at: index)
                kick(victim, data: kickData, state: &state, now: now)
            }
            state.loginCounter &+= 1
            let record = SessionRecord(id: sessionID, platform: platform, loginOrder: state.loginCounter,
                                       connection: connection, userSigTime: ticket.time,
                                       userSigExpireAt: ticket.expiresAt)
            entry.sessions.append(record)
            if entry.lastLoginDay != day {
                entry.lastLoginDay = day
                state.countActive(app: app.sdkAppID, day: day)
            }
            state.users[key] = entry
            state.sessionUsers[sessionID] = key
            let info = SessionInfo(sessionID: sessionID, resumeToken: "", sdkAppID: app.sdkAppID,
                                   userID: userID, platform: platform, userSigExpireAt: ticket.expiresAt)
            return .success(info, kicked: kickedPlatforms)
        }
        guard case .success(var info, let kicked) = result else { return result }
        info.resumeToken = resumeToken(for: info.sessionID)  // a MAC: computed outside the lock
        return .success(info, kicked: kicked)
    }

    /// Ends a session at its client's request: instance freed, buffer dropped.
    @discardableResult
    public func logout(sessionID: String, connectionID: UInt64) -> Bool {
        end(sessionID: sessionID, connectionID: connectionID, tombstone: .notLoggedIn) != nil
    }

    /// Ends a session whose UserSig lapsed while it was attached. Returns the `userSigExpired`
    /// event for the connection to write, or nil when the session is no longer this connection's.
    public func expireUserSig(sessionID: String, connectionID: UInt64) -> SessionEvent? {
        guard let record = end(sessionID: sessionID, connectionID: connectionID, tombstone: .userSigExpired) else {
            return nil
        }
        return SessionEvent(seq: record.lastSeq + 1, name: .userSigExpired, data: Array("{}".utf8))
    }

    private func end(sessionID: String, connectionID: UInt64, tombstone: ErrorCode) -> SessionRecord? {
        guard let (shard, key) = locate(sessionID) else { return nil }
        let now = clock.nowMillis()
        return shard.state.withLock { state -> SessionRecord? in
            guard var entry = state.users[key],
                  let index = entry.sessions.firstIndex(where: { $0.id == sessionID }),
                  entry.sessions[index].connection?.id == connectionID
            else { return nil }
            let record = entry.sessions.remove(at: index)
            state.users[key] = entry
            state.sessionUsers[sessionID] = nil
            state.bury(sessionID, code: tombstone, until: now + configuration.resumeWindowSeconds * 1000)
            return record
        }
    }

    /// Replaces the UserSig of a session (renewSig): same app and user, checked by the caller.
    public func renewUserSig(sessionID: String, connectionID: UInt64, ticket: UserSigTicket) -> ErrorCode {
        guard let (shard, key) = locate(sessionID) else { return .notLoggedIn }
        return shard.state.withLock { state -> ErrorCode in
            guard var entry = state.users[key],
                  let index = entry.sessions.firstIndex(where: { $0.id == sessionID }),
                  entry.sessions[index].connection?.id == connectionID
            else { return .notLoggedIn }
            if let revoked = entry.revokedThrough, ticket.time <= revoked { return .userSigRevoked }
            entry.sessions[index].userSigTime = ticket.time
            entry.sessions[index].userSigExpireAt = ticket.expiresAt
            state.users[key] = entry
            return .ok
        }
    }

    // MARK: Detach and resume

    /// The session's connection dropped without logout: keep the session for a resume.
    /// - Returns: when the resume window ends (ms), for the caller to schedule `reap`; nil when the
    ///   session is not attached to this connection any more.
    public func detach(sessionID: String, connectionID: UInt64) -> Int64? {
        guard let (shard, key) = locate(sessionID) else { return nil }
        let now = clock.nowMillis()
        return shard.state.withLock { state -> Int64? in
            guard var entry = state.users[key],
                  let index = entry.sessions.firstIndex(where: { $0.id == sessionID }),
                  entry.sessions[index].connection?.id == connectionID
            else { return nil }
            entry.sessions[index].connection = nil
            entry.sessions[index].detachedAt = now
            entry.sessions[index].eventsWhileDetached = 0
            state.users[key] = entry
            return now + configuration.resumeWindowSeconds * 1000
        }
    }

    /// Drops a detached session whose resume window has passed. Safe to call at any time.
    public func reap(sessionID: String) {
        guard let (shard, key) = locate(sessionID) else { return }
        let now = clock.nowMillis()
        shard.state.withLock { state in
            guard var entry = state.users[key] else { return }
            prune(&entry, key: key, state: &state, now: now)
            state.users[key] = entry
        }
    }

    /// Re-attaches a session to a new connection (PROTOCOL §6).
    public func resume(sessionID: String, resumeToken: String, lastSeq: UInt64, connection: ConnectionRef) -> ResumeResult {
        guard constantTimeEquals(resumeToken, self.resumeToken(for: sessionID)) else {
            return .failure(.noSessionToResume, "unknown session")
        }
        guard let (shard, key) = locate(sessionID) else {
            return .failure(.noSessionToResume, "unknown session")
        }
        let now = clock.nowMillis()
        return shard.state.withLock { state -> ResumeResult in
            state.purgeTombstonesIfDue(now: now)
            if var entry = state.users[key] {
                prune(&entry, key: key, state: &state, now: now)
                state.users[key] = entry
            }
            if let tomb = state.tombstones[sessionID], tomb.until >= now {
                return .failure(tomb.code, Self.tombstoneReason(tomb.code))
            }
            guard var entry = state.users[key],
                  let index = entry.sessions.firstIndex(where: { $0.id == sessionID })
            else { return .failure(.noSessionToResume, "unknown session, or its resume window has passed") }
            var record = entry.sessions[index]
            guard lastSeq <= record.lastSeq else {
                return .failure(.invalidParameters, "lastSeq \(lastSeq) is beyond the session's last event \(record.lastSeq)")
            }
            guard lastSeq >= record.droppedThrough else {
                return .failure(.notLoggedIn, "events after lastSeq are no longer buffered; log in again")
            }
            if let old = record.connection, old.id != connection.id {
                old.sink.deliver(.resumedElsewhere(sessionID: sessionID))
            }
            let replay = record.buffer.events(after: lastSeq)
            record.buffer.drop(through: lastSeq)
            record.droppedThrough = max(record.droppedThrough, lastSeq)
            record.connection = connection
            record.eventsWhileDetached = 0
            entry.sessions[index] = record
            state.users[key] = entry
            let info = SessionInfo(sessionID: sessionID, resumeToken: resumeToken, sdkAppID: key.app,
                                   userID: key.userID, platform: record.platform,
                                   userSigExpireAt: record.userSigExpireAt)
            return .success(info, replay: replay)
        }
    }

    /// The client has read every event up to `seq`: they leave the buffer, and a resume from
    /// before `seq` fails with 6014 instead of silently missing them.
    public func acknowledge(sessionID: String, connectionID: UInt64, through seq: UInt64) {
        guard let (shard, key) = locate(sessionID) else { return }
        shard.state.withLock { state in
            guard var entry = state.users[key],
                  let index = entry.sessions.firstIndex(where: { $0.id == sessionID }),
                  entry.sessions[index].connection?.id == connectionID,
                  entry.sessions[index].droppedThrough < seq
            else { return }
            entry.sessions[index].droppedThrough = seq
            entry.sessions[index].buffer.drop(through: seq)
            state.users[key] = entry
        }
    }

    /// The highest seq handed out so far on a session (0 before any event).
    public func lastSeq(sessionID: String) -> UInt64? {
        guard let (shard, key) = locate(sessionID) else { return nil }
        return shard.state.withLock { state in
            state.users[key]?.sessions.first(where: { $0.id == sessionID })?.lastSeq
        }
    }

    // MARK: Messages

    /// Sends `payload` from a session to every instance of `to`, with a copy to the sender's other
    /// instances (when `to` is the sender, every instance of the sender gets it).
    public func send(from sender: SessionInfo, to recipient: String, payload: JSONValue) -> SendResult {
        let (msgID, data, now) = messageEvent(from: sender.userID, to: recipient, payload: payload)
        let online = deliver(app: sender.sdkAppID, userID: recipient, name: .message, data: data,
                             except: nil, now: now)
        if recipient != sender.userID {
            _ = deliver(app: sender.sdkAppID, userID: sender.userID, name: .message, data: data,
                        except: sender.sessionID, now: now)
        }
        return SendResult(msgID: msgID, online: online)
    }

    /// Delivers an event to every session of a user; returns how many were attached.
    @discardableResult
    public func deliver(app: UInt64, userID: String, name: EventName, data: [UInt8], except: String? = nil,
                        now: Int64? = nil) -> Int {
        let now = now ?? clock.nowMillis()
        let key = UserKey(app: app, userID: userID)
        let limit = configuration.resumeBuffer
        return shards[shardIndex(for: key)].state.withLock { state -> Int in
            guard var entry = state.users[key], !entry.sessions.isEmpty else { return 0 }
            prune(&entry, key: key, state: &state, now: now)
            var attached = 0
            var overflowed: [Int] = []
            for i in entry.sessions.indices where entry.sessions[i].id != except {
                entry.sessions[i].lastSeq += 1
                let event = SessionEvent(seq: entry.sessions[i].lastSeq, name: name, data: data)
                entry.sessions[i].buffer.append(event)
                if let connection = entry.sessions[i].connection {
                    attached += 1
                    if entry.sessions[i].buffer.count > limit {
                        // Unacknowledged for too long: the client cannot resume from before this.
                        entry.sessions[i].droppedThrough = entry.sessions[i].buffer.removeFirst().seq
                    }
                    connection.sink.deliver(.event(sessionID: entry.sessions[i].id, event))
                } else {
                    entry.sessions[i].eventsWhileDetached += 1
                    if entry.sessions[i].eventsWhileDetached > limit {
                        overflowed.append(i)
                    }
                }
            }
            for i in overflowed.reversed() {
                let record = entry.sessions.remove(at: i)
                state.sessionUsers[record.id] = nil
                state.bury(record.id, code: .notLoggedIn, until: now + configuration.resumeWindowSeconds * 1000)
            }
            state.users[key] = entry
            return attached
        }
    }

    // MARK: Admin

    /// Kicks every instance of a user (reason `admin`) and revokes every UserSig issued at or
    /// before `revokeThrough` (unix seconds). Returns nil for a user who never logged in.
    public func adminKick(app: UInt64, userID: String, revokeThrough: Int64) -> Int? {
        let now = clock.nowMillis()
        let key = UserKey(app: app, userID: userID)
        return shards[shardIndex(for: key)].state.withLock { state -> Int? in
            guard var entry = state.users[key] else { return nil }
            entry.revokedThrough = max(entry.revokedThrough ?? .min, revokeThrough)
            let data = Self.kickData(reason: "admin", byPlatform: nil)
            let victims = entry.sessions
            entry.sessions = []
            for victim in victims {
                kick(victim, data: data, state: &state, now: now)
            }
            state.users[key] = entry
            return victims.count
        }
    }

    /// The instances of a user, or nil for a user who never logged in.
    public func instances(app: UInt64, userID: String) -> [InstanceStatus]? {
        let now = clock.nowMillis()
        let key = UserKey(app: app, userID: userID)
        return shards[shardIndex(for: key)].state.withLock { state -> [InstanceStatus]? in
            guard var entry = state.users[key] else { return nil }
            prune(&entry, key: key, state: &state, now: now)
            state.users[key] = entry
            return entry.sessions.map { InstanceStatus(platform: $0.platform, attached: $0.connection != nil) }
        }
    }

    /// Session counts of one app, shard by shard.
    public func counts(app: UInt64) -> SessionCounts {
        let now = clock.nowMillis()
        let day = Int32(truncatingIfNeeded: now / 86_400_000)
        var counts = SessionCounts()
        for shard in shards {
            shard.state.withLock { state in
                if let active = state.dau[app], active.day == day { counts.dau += active.count }
                for (key, entry) in state.users where key.app == app && !entry.sessions.isEmpty {
                    var online = false
                    for session in entry.sessions {
                        if session.connection != nil {
                            counts.attached += 1
                            counts.byPlatform[session.platform, default: 0] += 1
                            online = true
                        } else if session.detachedAt + configuration.resumeWindowSeconds * 1000 >= now,
                                  session.userSigExpireAt * 1000 >= now {
                            counts.detached += 1
                        }
                    }
                    if online { counts.usersOnline += 1 }
                }
            }
        }
        return counts
    }

    // MARK: Internals

    /// A new message's ID and its event data `{"from","to","msgID","payload","time"}`, built once
    /// for every session it goes to.
    func messageEvent(from sender: String, to recipient: String, payload: JSONValue)
        -> (msgID: String, data: [UInt8], now: Int64) {
        let now = clock.nowMillis()
        let msgID = "\(messagePrefix)-\(messageCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
        return (msgID, Self.messageData(from: sender, to: recipient, msgID: msgID, payload: payload, time: now), now)
    }

    /// A `message` event's data: `{"from","to","msgID","payload","time"}`.
    public static func messageData(from sender: String, to recipient: String, msgID: String, payload: JSONValue,
                                   time: Int64) -> [UInt8] {
        var w = JSONWriter(reservingCapacity: 128)
        w.writeRaw("{\"from\":")
        w.writeString(sender)
        w.writeRaw(",\"to\":")
        w.writeString(recipient)
        w.writeRaw(",\"msgID\":")
        w.writeString(msgID)
        w.writeRaw(",\"payload\":")
        w.write(payload)
        w.writeRaw(",\"time\":")
        w.writeInt(time)
        w.writeRaw("}")
        return w.bytes
    }

    /// Under the shard lock: drops the user's detached sessions whose window passed (silently) or
    /// whose UserSig lapsed while away (resume then fails with 70001).
    private func prune(_ entry: inout UserEntry, key: UserKey, state: inout ShardState, now: Int64) {
        let window = configuration.resumeWindowSeconds * 1000
        entry.sessions.removeAll { record in
            guard record.connection == nil else { return false }
            if now > record.detachedAt + window {
                state.sessionUsers[record.id] = nil
                return true
            }
            if now > record.userSigExpireAt * 1000 {
                state.sessionUsers[record.id] = nil
                state.bury(record.id, code: .userSigExpired, until: record.detachedAt + window)
                return true
            }
            return false
        }
    }

    /// Under the shard lock: ends a session that a login or an admin pushed out.
    private func kick(_ victim: SessionRecord, data: [UInt8], state: inout ShardState, now: Int64) {
        state.sessionUsers[victim.id] = nil
        state.bury(victim.id, code: .kickedOffline, until: now + configuration.resumeWindowSeconds * 1000)
        if let connection = victim.connection {
            let event = SessionEvent(seq: victim.lastSeq + 1, name: .kickedOffline, data: data)
            connection.sink.deliver(.kicked(sessionID: victim.id, event))
        }
    }

    /// A `kickedOffline` event's data: `{"reason"[,"byPlatform"]}`.
    public static func kickData(reason: String, byPlatform: Platform?) -> [UInt8] {
        var w = JSONWriter(reservingCapacity: 64)
        w.writeRaw("{\"reason\":")
        w.writeString(reason)
        if let byPlatform {
            w.writeRaw(",\"byPlatform\":")
            w.writeString(byPlatform.rawValue)
        }
        w.writeRaw("}")
        return w.bytes
    }

    private static func tombstoneReason(_ code: ErrorCode) -> String {
        switch code {
        case .kickedOffline: "the session was kicked offline while away; log in again"
        case .userSigExpired: "the UserSig expired while away; log in with a new one"
        default: "the session ended (logged out or its buffer overflowed); log in again"
        }
    }

    private func shardIndex(for key: UserKey) -> Int {
        // FNV-1a: stable across runs, so a session ID's shard stays meaningful.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var app = key.app
        for _ in 0..<8 {
            hash = (hash ^ (app & 0xFF)) &* 0x100_0000_01b3
            app >>= 8
        }
        for byte in key.userID.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return Int(truncatingIfNeeded: hash ^ (hash >> 32)) & shardMask
    }

    /// 72 random bits (12 base64url digits), then the shard in two digits: the shard is found
    /// without a global index, and at 14 bytes the ID is a small string (no heap storage).
    private func makeSessionID(shard: Int) -> String {
        var rng = SystemRandomNumberGenerator()  // one getrandom call per 8 bytes: two, not nine
        let (a, b) = (rng.next(), rng.next())
        var bytes = (0..<8).map { UInt8(truncatingIfNeeded: a >> ($0 * 8)) }
        bytes.append(UInt8(truncatingIfNeeded: b))
        bytes.append(UInt8(shard >> 4))
        bytes.append(UInt8(shard & 0xF) << 4)
        bytes.append(0)
        return String(Base64URL.encode(bytes).prefix(14))
    }

    private func locate(_ sessionID: String) -> (Shard, UserKey)? {
        let utf8 = Array(sessionID.utf8)
        guard utf8.count == 14, let high = Base64URL.value(of: utf8[12]), let low = Base64URL.value(of: utf8[13]) else {
            return nil
        }
        let shard = Int(high) << 6 | Int(low)
        guard shard <= shardMask else { return nil }
        let s = shards[shard]
        guard let key = s.state.withLock({ $0.sessionUsers[sessionID] }) else {
            return (s, UserKey(app: 0, userID: ""))  // still lets resume find a tombstone
        }
        return (s, key)
    }

    /// A keyed MAC of the session ID: unforgeable without the table's secret, stable for the
    /// session's life. 90 bits in 15 base64url digits: a small string, no heap storage.
    private func resumeToken(for sessionID: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(sessionID.utf8), using: SymmetricKey(data: tokenSecret))
        return String(Base64URL.encode(Array(mac.prefix(12))).prefix(15))
    }
}

/// Compares secrets (resume tokens) in time that does not depend on where they differ.
public func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    guard x.count == y.count else { return false }
    var diff: UInt8 = 0
    for i in x.indices { diff |= x[i] ^ y[i] }
    return diff == 0
}

/// Base64url digits: session IDs, resume tokens and the cluster's random names.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// `length` random base64url digits (6 bits each from the system's generator).
    public static func random(_ length: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        var out: [UInt8] = []
        out.reserveCapacity(length)
        var bits: UInt64 = 0
        var left = 0
        for _ in 0..<length {
            if left < 6 {
                bits = rng.next()
                left = 64
            }
            out.append(alphabet[Int(bits & 63)])
            bits >>= 6
            left -= 6
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `text` is exactly `length` base64url digits.
    public static func isDigits(_ text: String, length: Int) -> Bool {
        text.utf8.count == length && text.utf8.allSatisfy { value(of: $0) != nil }
    }

    static func value(of digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): digit - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): digit - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }

    /// Unpadded base64url; used for tokens whose length is a multiple of three bytes.
    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

struct UserKey: Hashable, Sendable {
    let app: UInt64
    let userID: String
}

struct SessionRecord: Sendable {
    let id: String
    let platform: Platform
    let loginOrder: UInt64
    /// nil while detached.
    var connection: ConnectionRef?
    var userSigTime: Int64
    var userSigExpireAt: Int64
    var detachedAt: Int64 = 0
    var lastSeq: UInt64 = 0
    /// Events up to this seq were dropped unacknowledged: a resume from before it fails.
    var droppedThrough: UInt64 = 0
    var eventsWhileDetached = 0
    var buffer = ResumeBuffer()

    init(id: String, platform: Platform, loginOrder: UInt64, connection: ConnectionRef,
         userSigTime: Int64, userSigExpireAt: Int64) {
        self.id = id
        self.platform = platform
        self.loginOrder = loginOrder
        self.connection = connection
        self.userSigTime = userSigTime
        self.userSigExpireAt = userSigExpireAt
    }
}

struct UserEntry: Sendable {
    /// Earliest login first.
    var sessions: [SessionRecord] = []
    var lastLoginDay: Int32 = .min
    var revokedThrough: Int64?
}

struct Tombstone: Sendable {
    let code: ErrorCode
    let until: Int64
}

struct ShardState: Sendable {
    /// Every user who ever logged in (a user exists from the first login on).
    var users: [UserKey: UserEntry] = [:]
    var sessionUsers: [String: UserKey] = [:]
    /// Why recently ended sessions ended, so a resume gets the precise code.
    var tombstones: [String: Tombstone] = [:]
    var nextTombstonePurge: Int64 = 0
    var dau: [UInt64: (day: Int32, count: Int)] = [:]
    var loginCounter: UInt64 = 0

    mutating func bury(_ sessionID: String, code: ErrorCode, until: Int64) {
        tombstones[sessionID] = Tombstone(code: code, until: until)
    }

    mutating func purgeTombstonesIfDue(now: Int64) {
        guard now >= nextTombstonePurge else { return }
        nextTombstonePurge = now + 10_000
        if !tombstones.isEmpty {
            tombstones = tombstones.filter { $0.value.until >= now }
        }
    }

    mutating func countActive(app: UInt64, day: Int32) {
        if let current = dau[app], current.day == day {
            dau[app] = (day, current.count + 1)
        } else {
            dau[app] = (day, 1)
        }
    }
}

final class Shard: Sendable {
    let state = Mutex(ShardState())
}

// MARK: Admin push

extension SessionTable {
    /// Sends `payload` from an app's admin user to every instance of `recipient`: a `message`
    /// event `{"from","to","msgID","payload","time"}` with the session's next `seq`, as `send`
    /// does (attached instances get it now, detached ones buffer it for their resume).
    public func push(app: UInt64, from adminUser: String, to recipient: String, payload: JSONValue) -> SendResult {
        let (msgID, data, now) = messageEvent(from: adminUser, to: recipient, payload: payload)
        let online = deliver(app: app, userID: recipient, name: .message, data: data, except: nil, now: now)
        return SendResult(msgID: msgID, online: online)
    }
}
