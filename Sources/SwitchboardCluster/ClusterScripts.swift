/// The Lua scripts of the cluster directory. Each runs atomically in Redis and touches the keys of
/// one user only, all under the user's hash tag `{app:user}`:
///
/// - `sb:{app:user}:u`, a hash: `s:<sessionID>` → the session as JSON (see `record` below),
///   `t:<sessionID>` → a tombstone `code|untilMillis` (why a recently ended session ended, so a
///   resume gets the precise code), `order` → the login counter. It expires when nothing in it
///   is attached and every detached session and tombstone has run out.
/// - `sb:{app:user}:k`: the user exists (has logged in once); its value is the second through
///   which UserSigs are revoked, or `-`.
/// - `sb:{app:user}:b:<sessionID>`, a list: the session's events not yet acknowledged, each
///   `seq\ndata`.
///
/// A session record: `p` platform, `o` login order, `n` node holding it (empty: detached), `c`
/// its connection there, `st` UserSig time, `se` UserSig expiry (s), `d` detached at (ms), `q`
/// last seq, `x` dropped through (a resume from below fails with 6014), `w` events while detached.
///
/// Times come from the store's clock (`TIME`), so every node agrees on windows and revocations.
/// Events for attached sessions are published, from inside the script, on the holding node's
/// channel `sb:node:<nodeID>`, so their order on the channel is the order of the seqs.
enum ClusterScripts {
    /// Shared helpers, prepended to every script. KEYS[1] is the user hash, KEYS[3] (when given)
    /// the buffer key prefix.
    static let prelude = #"""
    local U = KEYS[1]
    local BP = KEYS[3]
    local function nowms()
      local t = redis.call('TIME')
      return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local function save(r)
      local id = r.id
      r.id = nil
      redis.call('HSET', U, 's:' .. id, cjson.encode(r))
      r.id = id
    end
    local function bury(id, code, untilms)
      redis.call('HDEL', U, 's:' .. id)
      redis.call('DEL', BP .. id)
      redis.call('HSET', U, 't:' .. id, code .. '|' .. string.format('%d', untilms))
    end
    -- Live sessions, earliest login first; drops the detached ones whose window passed
    -- (silently) or whose UserSig lapsed while away (a resume then gets 70001).
    local function load(now, window)
      local flat = redis.call('HGETALL', U)
      local live = {}
      for i = 1, #flat, 2 do
        local f, v = flat[i], flat[i + 1]
        local kind, id = string.sub(f, 1, 2), string.sub(f, 3)
        if kind == 's:' then
          local r = cjson.decode(v)
          r.id = id
          if r.n == '' and now > r.d + window then
            redis.call('HDEL', U, f)
            redis.call('DEL', BP .. id)
          elseif r.n == '' and now > r.se * 1000 then
            bury(id, 70001, r.d + window)
          else
            live[#live + 1] = r
          end
        elseif kind == 't:' then
          local untilms = tonumber(string.match(v, '|(%d+)$'))
          if untilms < now then redis.call('HDEL', U, f) end
        end
      end
      table.sort(live, function(a, b) return a.o < b.o end)
      return live
    end
    -- Key lifetimes: nothing expires while a session is attached; otherwise the user hash lives
    -- as long as its longest detached session or tombstone, and each buffer as its session.
    local function settle(now, window)
      local flat = redis.call('HGETALL', U)
      local attached, last = false, 0
      for i = 1, #flat, 2 do
        local f, v = flat[i], flat[i + 1]
        local kind, id = string.sub(f, 1, 2), string.sub(f, 3)
        if kind == 's:' then
          local r = cjson.decode(v)
          if r.n ~= '' then
            attached = true
            redis.call('PERSIST', BP .. id)
          else
            local untilms = math.min(r.d + window, r.se * 1000)
            if untilms > last then last = untilms end
            redis.call('PEXPIREAT', BP .. id, untilms + 1000)
          end
        elseif kind == 't:' then
          local untilms = tonumber(string.match(v, '|(%d+)$'))
          if untilms > last then last = untilms end
        end
      end
      if attached then
        redis.call('PERSIST', U)
      elseif last > 0 then
        redis.call('PEXPIREAT', U, last + 1000)
      else
        redis.call('DEL', U)
      end
    end
    local function find(live, id)
      for i, r in ipairs(live) do
        if r.id == id then return r, i end
      end
      return nil
    end
    local function publish(node, kind, r, seq, data)
      local head = kind .. ' ' .. r.id .. ' ' .. r.c .. ' ' .. string.format('%d', seq)
      if data then head = head .. '\n' .. data end
      redis.call('PUBLISH', 'sb:node:' .. node, head)
    end
    -- Drops buffered events through seq from the head of a session's buffer.
    local function trim(id, seq)
      local key = BP .. id
      while true do
        local head = redis.call('LINDEX', key, 0)
        if not head then return end
        local s = tonumber(string.match(head, '^(%d+)'))
        if s > seq then return end
        redis.call('LPOP', key)
      end
    end
    """#

    private static func script(_ body: String) -> RedisScript { RedisScript(prelude + "\n" + body) }

    /// KEYS: user hash, user key, buffer prefix. ARGV: sessionID, node, connection, platform,
    /// UserSig time, UserSig expiry, window (ms), groups (`Platform:group,...`), the most
    /// instances on the platform, kick data.
    /// Returns `{0, kicked platform...}` or `{code}`.
    static let login = script(#"""
    local id, node, conn, platform = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
    local sigTime, sigExpire, window = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
    local limit, kickData = tonumber(ARGV[9]), ARGV[10]
    local now = nowms()
    local revoked = redis.call('GET', KEYS[2])
    if revoked and revoked ~= '-' and sigTime <= tonumber(revoked) then return {70052} end
    local groups = {}
    for p, g in string.gmatch(ARGV[8], '([^:,]+):(%d+)') do groups[p] = tonumber(g) end
    local live = load(now, window)
    local group = groups[platform]
    local evict, same = {}, {}
    for i, r in ipairs(live) do
      if r.p == platform then
        same[#same + 1] = i
      elseif groups[r.p] == group then
        evict[i] = true
      end
    end
    for j = 1, #same - (limit - 1) do evict[same[j]] = true end
    local out = {0}
    for i, r in ipairs(live) do
      if evict[i] then
        bury(r.id, 6208, now + window)
        if r.n ~= '' then publish(r.n, 'K', r, r.q + 1, kickData) end
        out[#out + 1] = r.p
      end
    end
    local order = redis.call('HINCRBY', U, 'order', 1)
    save({id = id, p = platform, o = order, n = node, c = conn, st = sigTime, se = sigExpire,
          d = 0, q = 0, x = 0, w = 0})
    if not revoked then redis.call('SET', KEYS[2], '-') end
    settle(now, window)
    return out
    """#)

    /// KEYS: user hash, user key, buffer prefix. ARGV: sessionID, node, connection, lastSeq, window.
    /// Returns `{0, platform, UserSig expiry, event...}` (the events after lastSeq, each
    /// `seq\ndata`) or `{code}`; `{6017, lastSeq}` when lastSeq is beyond the session.
    static let resume = script(#"""
    local id, node, conn, lastSeq, window = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
    local now = nowms()
    local live = load(now, window)
    local tomb = redis.call('HGET', U, 't:' .. id)
    if tomb then
      local code, untilms = string.match(tomb, '^(%d+)|(%d+)$')
      if tonumber(untilms) >= now then return {tonumber(code)} end
    end
    local r = find(live, id)
    if not r then return {6026} end
    if lastSeq > r.q then return {6017, r.q} end
    if lastSeq < r.x then return {6014} end
    if r.n ~= '' and not (r.n == node and r.c == conn) then publish(r.n, 'R', r, r.q, nil) end
    trim(id, lastSeq)
    local out = {0, r.p, r.se}
    for _, e in ipairs(redis.call('LRANGE', BP .. id, 0, -1)) do out[#out + 1] = e end
    if lastSeq > r.x then r.x = lastSeq end
    r.n, r.c, r.w = node, conn, 0
    save(r)
    settle(now, window)
    return out
    """#)

    /// KEYS: user hash, (unused), buffer prefix. ARGV: sessionID to skip (or ""), event data,
    /// window, buffer limit. Appends the event to every other session of the user, publishes it
    /// to the attached ones' nodes. Returns how many were attached.
    static let deliver = script(#"""
    local except, data, window, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
    local now = nowms()
    local live = load(now, window)
    local attached = 0
    for _, r in ipairs(live) do
      if r.id ~= except then
        r.q = r.q + 1
        local key = BP .. r.id
        redis.call('RPUSH', key, string.format('%d', r.q) .. '\n' .. data)
        if r.n ~= '' then
          attached = attached + 1
          if redis.call('LLEN', key) > limit then
            -- Unacknowledged for too long: a resume from before this fails with 6014.
            local dropped = redis.call('LPOP', key)
            r.x = tonumber(string.match(dropped, '^(%d+)'))
          end
          publish(r.n, 'E', r, r.q, data)
          save(r)
        else
          r.w = r.w + 1
          if r.w > limit then
            bury(r.id, 6014, now + window)
          else
            save(r)
          end
        end
      end
    end
    settle(now, window)
    return attached
    """#)

    /// KEYS: user hash, (unused), buffer prefix. ARGV: sessionID, node, connection, window.
    /// Detaches the session if that connection holds it. Returns 1 or 0.
    static let detach = script(#"""
    local id, node, conn, window = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
    local now = nowms()
    local r = find(load(now, window), id)
    if not r or r.n ~= node or r.c ~= conn then return 0 end
    r.n, r.c, r.d, r.w = '', '', now, 0
    save(r)
    settle(now, window)
    return 1
    """#)

    /// KEYS: user hash, (unused), buffer prefix. ARGV: sessionID, node, connection prefix (the
    /// dead incarnation, or "" for any), incarnation to keep (or ""), window. Detaches a session
    /// the node held when it died. Returns 1 or 0.
    static let detachDead = script(#"""
    local id, node, keep, window = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
    local now = nowms()
    local r = find(load(now, window), id)
    if not r or r.n ~= node then return 0 end
    if keep ~= '' and string.sub(r.c, 1, #keep) == keep then return 0 end
    r.n, r.c, r.d, r.w = '', '', now, 0
    save(r)
    settle(now, window)
    return 1
    """#)

    /// KEYS: user hash, (unused), buffer prefix. ARGV: sessionID, node, connection, tombstone
    /// code, window. Ends the session if that connection holds it (logout, UserSig expiry).
    /// Returns `{1, lastSeq}` or `{0}`.
    static let end = script(#"""
    local id, node, conn, code, window = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
    local now = nowms()
    local r = find(load(now, window), id)
    if not r or r.n ~= node or r.c ~= conn then
      settle(now, window)
      return {0}
    end
    bury(id, code, now + window)
    settle(now, window)
    return {1, r.q}
    """#)

    /// KEYS: user hash, user key, buffer prefix. ARGV: sessionID, node, connection, UserSig time,
    /// UserSig expiry, window. Returns 0, 70052 (revoked) or 6014 (not this connection's).
    static let renew = script(#"""
    local id, node, conn = ARGV[1], ARGV[2], ARGV[3]
    local sigTime, sigExpire, window = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
    local now = nowms()
    local r = find(load(now, window), id)
    if not r or r.n ~= node or r.c ~= conn then return 6014 end
    local revoked = redis.call('GET', KEYS[2])
    if revoked and revoked ~= '-' and sigTime <= tonumber(revoked) then return 70052 end
    r.st, r.se = sigTime, sigExpire
    save(r)
    return 0
    """#)

    /// KEYS: user hash, (unused), buffer prefix. ARGV: sessionID, node, connection, seq.
    /// The client read everything through seq: those events leave the buffer.
    static let acknowledge = script(#"""
    local id, node, conn, seq = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
    local v = redis.call('HGET', U, 's:' .. id)
    if not v then return 0 end
    local r = cjson.decode(v)
    r.id = id
    if r.n ~= node or r.c ~= conn or r.x >= seq or seq > r.q then return 0 end
    r.x = seq
    trim(id, seq)
    save(r)
    return 1
    """#)

    /// KEYS: user hash, user key, buffer prefix. ARGV: kick data, window. Kicks every instance
    /// and revokes the UserSigs issued through this second. Returns the count, or -1 for a user
    /// who never logged in.
    static let adminKick = script(#"""
    local kickData, window = ARGV[1], tonumber(ARGV[2])
    local now = nowms()
    local revoked = redis.call('GET', KEYS[2])
    if not revoked then return -1 end
    local second = math.floor(now / 1000)
    if revoked == '-' or tonumber(revoked) < second then
      redis.call('SET', KEYS[2], string.format('%d', second))
    end
    local live = load(now, window)
    for _, r in ipairs(live) do
      bury(r.id, 6208, now + window)
      if r.n ~= '' then publish(r.n, 'K', r, r.q + 1, kickData) end
    end
    settle(now, window)
    return #live
    """#)

    /// KEYS: user hash, user key, buffer prefix. ARGV: window. Returns `{platform, attached
    /// (1/0), ...}` for each instance, or -1 for a user who never logged in.
    static let instances = script(#"""
    local window = tonumber(ARGV[1])
    if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
    local now = nowms()
    local out = {}
    for _, r in ipairs(load(now, window)) do
      out[#out + 1] = r.p
      out[#out + 1] = (r.n ~= '') and 1 or 0
    end
    settle(now, window)
    return out
    """#)

    /// KEYS: user hash, user key, buffer prefix. ARGV: sessionID, node, connection, platform,
    /// UserSig time, UserSig expiry, last seq written, window. A node registers a session it
    /// holds again (after the store came back, possibly empty, or after its pub/sub gap).
    /// Returns `{0, event...}` (the events after the last seq written) or `{code}` when the
    /// session is not this connection's any more (6208 kicked, 6014 ended, 4005 taken over).
    static let reregister = script(#"""
    local id, node, conn, platform = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
    local sigTime, sigExpire, lastSeq, window = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
    local now = nowms()
    local live = load(now, window)
    local r = find(live, id)
    if r then
      if r.n ~= '' and not (r.n == node and r.c == conn) then return {4005} end
      r.n, r.c, r.w = node, conn, 0
      if lastSeq > r.x then r.x = lastSeq end
      trim(id, lastSeq)
      save(r)
      settle(now, window)
      local out = {0}
      for _, e in ipairs(redis.call('LRANGE', BP .. id, 0, -1)) do out[#out + 1] = e end
      return out
    end
    local tomb = redis.call('HGET', U, 't:' .. id)
    if tomb then
      local code, untilms = string.match(tomb, '^(%d+)|(%d+)$')
      if tonumber(untilms) >= now then return {tonumber(code)} end
    end
    local order = redis.call('HINCRBY', U, 'order', 1)
    save({id = id, p = platform, o = order, n = node, c = conn, st = sigTime, se = sigExpire,
          d = 0, q = lastSeq, x = lastSeq, w = 0})
    if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], '-') end
    settle(now, window)
    return {0}
    """#)
}
