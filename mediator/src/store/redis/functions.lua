#!lua name=didmpc_mediator_v1
-- The didmpc mediator's Redis functions (specs/mediator.md, "Cluster"). Every step that must
-- not interleave with another instance's runs here, inside one function call. The first
-- argument of every function is the key prefix (default "didmpc:"); times are the caller's
-- Unix seconds, so all instances judge expiry by the same rule.
--
-- Keys (P = prefix):
--   P g            zset  client -> last use (a grant exists while the member does)
--   P own          hash  recipient DID -> client
--   P rid          hash  recipient DID -> its queue number (a fresh one at each registration)
--   P rids         int   queue numbers handed out
--   P rr / P rc    hash  queue number -> recipient DID / client
--   P rcp:<client> zset  the client's recipient DIDs (score 0: lexical order)
--   P qs:<client>  set   the client's queue numbers (registered, or still holding messages)
--   P q:<rid>      stream one queue; entry id "<n>-0" with n from P seq; fields b s t e
--   P qb           hash  queue number -> bytes queued
--   P sm:<rid> / P sb:<rid>  hash  source -> messages / bytes queued in that queue
--   P cb           hash  client -> bytes queued over its queues
--   P tb           int   bytes queued in all
--   P seq          int   message numbers handed out
--   P exp          zset  "<rid>.<n>" -> expiry
--   P live:<client> set  instances holding a live WebSocket of the client
--   P oob          hash  short link id -> invitation; P oobx zset id -> expiry;
--   P oobc:<client> zset its link ids -> expiry
--   P rt:<route>   hash  c (client) k (key) e (expiry); P rtx zset route -> expiry;
--   P rtc:<client> zset  its routes -> expiry
--   P rd:<route>   hash  slot -> instance holding it (the route directory)
-- A message id is "<rid>.<n>".

local function num(v)
  return tonumber(v) or 0
end

local function fields(flat)
  local f = {}
  for i = 1, #flat, 2 do
    f[flat[i]] = flat[i + 1]
  end
  return f
end

-- Adds delta to a hash counter, deleting the field when it reaches zero.
local function hadd(key, field, delta)
  local v = redis.call('HINCRBY', key, field, delta)
  if v <= 0 then
    redis.call('HDEL', key, field)
  end
end

local function uncount(P, rid, client, source, size)
  hadd(P .. 'sm:' .. rid, source, -1)
  hadd(P .. 'sb:' .. rid, source, -size)
  hadd(P .. 'qb', rid, -size)
  if client then
    hadd(P .. 'cb', client, -size)
  end
  redis.call('DECRBY', P .. 'tb', size)
end

-- Forgets a queue number entirely (its messages, counters and names).
local function drop_queue(P, rid, client)
  local bytes = num(redis.call('HGET', P .. 'qb', rid))
  if bytes > 0 then
    redis.call('DECRBY', P .. 'tb', bytes)
    if client then
      hadd(P .. 'cb', client, -bytes)
    end
  end
  redis.call('HDEL', P .. 'qb', rid)
  redis.call('DEL', P .. 'q:' .. rid, P .. 'sm:' .. rid, P .. 'sb:' .. rid)
  redis.call('HDEL', P .. 'rr', rid)
  redis.call('HDEL', P .. 'rc', rid)
  if client then
    redis.call('SREM', P .. 'qs:' .. client, rid)
  end
end

-- An emptied queue whose recipient DID is no longer registered under it goes.
local function tidy_queue(P, rid, client)
  if redis.call('XLEN', P .. 'q:' .. rid) > 0 then
    return
  end
  local recipient = redis.call('HGET', P .. 'rr', rid)
  if recipient and redis.call('HGET', P .. 'rid', recipient) == rid then
    return
  end
  drop_queue(P, rid, client)
end

-- Removes a client's grant, recipient DIDs and queues. Their entries in P exp stay until
-- they fall due (purge then finds nothing to delete).
local function expire_client(P, client)
  for _, r in ipairs(redis.call('ZRANGE', P .. 'rcp:' .. client, 0, -1)) do
    redis.call('HDEL', P .. 'own', r)
    redis.call('HDEL', P .. 'rid', r)
  end
  redis.call('DEL', P .. 'rcp:' .. client)
  for _, rid in ipairs(redis.call('SMEMBERS', P .. 'qs:' .. client)) do
    drop_queue(P, rid, nil)
  end
  redis.call('DEL', P .. 'qs:' .. client)
  redis.call('HDEL', P .. 'cb', client)
  redis.call('ZREM', P .. 'g', client)
end

local function expired(P, client, now, ttl)
  if ttl <= 0 then
    return false
  end
  local used = redis.call('ZSCORE', P .. 'g', client)
  return used and num(used) + ttl <= now
end

-- Reads one message "<rid>.<n>": its fields, or nil.
local function entry(P, rid, n)
  local found = redis.call('XRANGE', P .. 'q:' .. rid, n .. '-0', n .. '-0')
  if #found == 0 then
    return nil
  end
  return fields(found[1][2])
end

local function split_id(id)
  local rid, n = string.match(id, '^(%d+)%.(%d+)$')
  return rid, n
end

-- Deletes message <rid>.<n> (if it is there) and uncounts it; true when it was.
local function delete(P, rid, n, client)
  local f = entry(P, rid, n)
  if not f then
    return false
  end
  redis.call('XDEL', P .. 'q:' .. rid, n .. '-0')
  uncount(P, rid, client, f.s, #f.b)
  redis.call('ZREM', P .. 'exp', rid .. '.' .. n)
  return true
end

-- Deletes up to `max` messages due by `now`; returns how many existed, and whether more may.
local function purge_due(P, now, max)
  local due = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', now, 'LIMIT', 0, max)
  local n = 0
  for _, id in ipairs(due) do
    local rid, seq = split_id(id)
    redis.call('ZREM', P .. 'exp', id)
    if rid then
      local client = redis.call('HGET', P .. 'rc', rid) or nil
      if delete(P, rid, seq, client) then
        n = n + 1
        tidy_queue(P, rid, client)
      end
    end
  end
  return n, #due == max
end

-- The client's queue numbers, only those of `recipient` unless it is "".
local function queues(P, client, recipient)
  local all = redis.call('SMEMBERS', P .. 'qs:' .. client)
  if recipient == '' then
    return all
  end
  local out = {}
  for _, rid in ipairs(all) do
    if redis.call('HGET', P .. 'rr', rid) == recipient then
      table.insert(out, rid)
    end
  end
  return out
end

-- grant(P, client, now): records or refreshes a grant.
redis.register_function('didmpc_grant', function(_, a)
  redis.call('ZADD', a[1] .. 'g', 'GT', a[3], a[2])
  return 1
end)

-- touch(P, client, now, ttl, persist_every) -> "none" | "expired" | "active"
redis.register_function('didmpc_touch', function(_, a)
  local P, client, now, ttl, every = a[1], a[2], num(a[3]), num(a[4]), num(a[5])
  local used = redis.call('ZSCORE', P .. 'g', client)
  if not used then
    return 'none'
  end
  if expired(P, client, now, ttl) then
    expire_client(P, client)
    return 'expired'
  end
  if now >= num(used) + every then
    redis.call('ZADD', P .. 'g', 'GT', now, client)
  end
  return 'active'
end)

-- expire_grants(P, now, ttl, max) -> grants removed (at most max)
redis.register_function('didmpc_expire_grants', function(_, a)
  local P, now, ttl, max = a[1], num(a[2]), num(a[3]), num(a[4])
  if ttl <= 0 then
    return 0
  end
  local due = redis.call('ZRANGEBYSCORE', P .. 'g', '-inf', now - ttl, 'LIMIT', 0, max)
  for _, c in ipairs(due) do
    expire_client(P, c)
  end
  return #due
end)

-- rotate(P, old, new) -> 1 moved, 0 not (old has no grant, or new has one)
redis.register_function('didmpc_rotate', function(_, a)
  local P, old, new = a[1], a[2], a[3]
  local used = redis.call('ZSCORE', P .. 'g', old)
  if not used or redis.call('ZSCORE', P .. 'g', new) then
    return 0
  end
  redis.call('ZREM', P .. 'g', old)
  redis.call('ZADD', P .. 'g', used, new)
  for _, r in ipairs(redis.call('ZRANGE', P .. 'rcp:' .. old, 0, -1)) do
    redis.call('HSET', P .. 'own', r, new)
  end
  for _, rid in ipairs(redis.call('SMEMBERS', P .. 'qs:' .. old)) do
    redis.call('HSET', P .. 'rc', rid, new)
  end
  for _, k in ipairs({ 'rcp:', 'qs:', 'oobc:' }) do
    if redis.call('EXISTS', P .. k .. old) == 1 then
      redis.call('RENAME', P .. k .. old, P .. k .. new)
    end
  end
  local bytes = redis.call('HGET', P .. 'cb', old)
  if bytes then
    redis.call('HDEL', P .. 'cb', old)
    redis.call('HSET', P .. 'cb', new, bytes)
  end
  return 1
end)

-- update(P, client, recipient, add "1"/"0", max) -> success | no_change | client_error | limit
redis.register_function('didmpc_update_recipient', function(_, a)
  local P, client, r, add, max = a[1], a[2], a[3], a[4] == '1', num(a[5])
  local owner = redis.call('HGET', P .. 'own', r)
  if add then
    if owner == client then
      return 'no_change'
    elseif owner then
      return 'client_error'
    end
    if redis.call('ZCARD', P .. 'rcp:' .. client) >= max then
      return 'limit'
    end
    local rid = tostring(redis.call('INCR', P .. 'rids'))
    redis.call('HSET', P .. 'own', r, client)
    redis.call('HSET', P .. 'rid', r, rid)
    redis.call('ZADD', P .. 'rcp:' .. client, 0, r)
    redis.call('HSET', P .. 'rr', rid, r)
    redis.call('HSET', P .. 'rc', rid, client)
    redis.call('SADD', P .. 'qs:' .. client, rid)
    return 'success'
  end
  if not owner then
    return 'no_change'
  elseif owner ~= client then
    return 'client_error'
  end
  local rid = redis.call('HGET', P .. 'rid', r)
  redis.call('HDEL', P .. 'own', r)
  redis.call('HDEL', P .. 'rid', r)
  redis.call('ZREM', P .. 'rcp:' .. client, r)
  if rid then
    tidy_queue(P, rid, client)
  end
  return 'success'
end)

-- recipients(P, client, offset, limit) -> { total, dids... }
redis.register_function('didmpc_recipients', function(_, a)
  local P, client, off, lim = a[1], a[2], num(a[3]), num(a[4])
  local key = P .. 'rcp:' .. client
  local out = { redis.call('ZCARD', key) }
  if lim > 0 then
    for _, r in ipairs(redis.call('ZRANGE', key, off, off + lim - 1)) do
      table.insert(out, r)
    end
  end
  return out
end)

-- enqueue(P, recipient, body, received_at, expires_at, source, max_messages, max_bytes,
--         max_client_bytes, max_total_bytes, max_source_messages, max_source_bytes,
--         grant_ttl, instance)
--   -> { "ok", id, client } | { refusal }
-- Checks every quota and appends to the recipient's stream in one step, then tells the
-- other instances holding a live WebSocket of the client (the id only); an instance that
-- no longer listens is struck from the client's set.
redis.register_function('didmpc_enqueue', function(_, a)
  local P, r, body, t, e, src = a[1], a[2], a[3], a[4], a[5], a[6]
  local client = redis.call('HGET', P .. 'own', r)
  if not client then
    return { 'unknown' }
  end
  if expired(P, client, num(t), num(a[13])) then
    expire_client(P, client)
    return { 'unknown' }
  end
  local rid = redis.call('HGET', P .. 'rid', r)
  local size = #body
  if num(redis.call('HGET', P .. 'sm:' .. rid, src)) >= num(a[11])
    or num(redis.call('HGET', P .. 'sb:' .. rid, src)) + size > num(a[12]) then
    return { 'source' }
  end
  if redis.call('XLEN', P .. 'q:' .. rid) >= num(a[7]) then
    return { 'queue_messages' }
  end
  if num(redis.call('HGET', P .. 'qb', rid)) + size > num(a[8]) then
    return { 'queue_bytes' }
  end
  if num(redis.call('HGET', P .. 'cb', client)) + size > num(a[9]) then
    return { 'client_bytes' }
  end
  if num(redis.call('GET', P .. 'tb')) + size > num(a[10]) then
    return { 'total_bytes' }
  end
  local n = redis.call('INCR', P .. 'seq')
  redis.call('XADD', P .. 'q:' .. rid, n .. '-0', 'b', body, 's', src, 't', t, 'e', e)
  redis.call('HINCRBY', P .. 'sm:' .. rid, src, 1)
  redis.call('HINCRBY', P .. 'sb:' .. rid, src, size)
  redis.call('HINCRBY', P .. 'qb', rid, size)
  redis.call('HINCRBY', P .. 'cb', client, size)
  redis.call('INCRBY', P .. 'tb', size)
  local id = rid .. '.' .. n
  redis.call('ZADD', P .. 'exp', e, id)
  local me = a[14]
  for _, inst in ipairs(redis.call('SMEMBERS', P .. 'live:' .. client)) do
    if inst ~= me and redis.call('PUBLISH', P .. 'n:' .. inst, id) == 0 then
      redis.call('SREM', P .. 'live:' .. client, inst)
    end
  end
  return { 'ok', id, client }
end)

-- get(P, id, now) -> { client, recipient, body } | {} (acknowledged, expired or unknown)
redis.register_function('didmpc_get', function(_, a)
  local P, id, now = a[1], a[2], num(a[3])
  local rid, n = split_id(id)
  if not rid then
    return {}
  end
  local f = entry(P, rid, n)
  local client = redis.call('HGET', P .. 'rc', rid)
  if not f or not client or num(f.e) <= now then
    return {}
  end
  return { client, redis.call('HGET', P .. 'rr', rid) or '', f.b }
end)

-- Whether the queues hold messages of more than one source (counted, expired ones included).
local function several_sources(P, rids)
  local seen, first = false, nil
  for _, rid in ipairs(rids) do
    for _, s in ipairs(redis.call('HKEYS', P .. 'sm:' .. rid)) do
      if not seen then
        seen, first = true, s
      elseif s ~= first then
        return true
      end
    end
  end
  return false
end

-- The fetch with several sources: the sources take turns (the oldest message of each source
-- first, then the second of each, ...; one source's messages keep their order), as SQLite's
-- ROW_NUMBER() OVER (PARTITION BY source ORDER BY seq). Entries are scanned once without
-- keeping bodies; the bodies of the chosen ones are read afterwards.
local function fair_fetch(P, rids, limit, max_bytes, now)
  local all = {}
  for _, rid in ipairs(rids) do
    local key, from = P .. 'q:' .. rid, '-'
    while true do
      local buf = redis.call('XRANGE', key, from, '+', 'COUNT', 256)
      for _, e in ipairs(buf) do
        local f = fields(e[2])
        if num(f.e) > now then
          table.insert(all, { n = num(string.match(e[1], '^(%d+)')), rid = rid, s = f.s or '', id = e[1] })
        end
      end
      if #buf < 256 then
        break
      end
      from = '(' .. buf[#buf][1]
    end
  end
  table.sort(all, function(x, y) return x.n < y.n end)
  local turns, picked = {}, {}
  for _, x in ipairs(all) do
    local t = (turns[x.s] or 0) + 1
    turns[x.s] = t
    if t <= limit then
      x.turn = t
      table.insert(picked, x)
    end
  end
  table.sort(picked, function(x, y)
    if x.turn ~= y.turn then
      return x.turn < y.turn
    end
    return x.n < y.n
  end)
  local out, count, bytes = {}, 0, 0
  for _, x in ipairs(picked) do
    if count >= limit then
      break
    end
    local e = redis.call('XRANGE', P .. 'q:' .. x.rid, x.id, x.id)[1]
    local body = fields(e[2]).b
    bytes = bytes + #body
    if bytes > max_bytes and count > 0 then
      break
    end
    table.insert(out, x.rid .. '.' .. x.n)
    table.insert(out, redis.call('HGET', P .. 'rr', x.rid) or '')
    table.insert(out, body)
    count = count + 1
  end
  return out
end

-- fetch(P, client, recipient or "", limit, max_bytes, now) -> { id, recipient, body, ... }
-- Fair between sources (see fair_fetch); with one source, oldest first across the client's
-- queues (a merge by message number). Unexpired only, stopping before the message that would
-- pass max_bytes (the first is always taken).
redis.register_function('didmpc_fetch', function(_, a)
  local P, client, recipient, limit, max_bytes, now = a[1], a[2], a[3], num(a[4]), num(a[5]), num(a[6])
  local rids = queues(P, client, recipient)
  if several_sources(P, rids) then
    return fair_fetch(P, rids, limit, max_bytes, now)
  end
  local chunk = 4
  if #rids == 1 then
    chunk = math.min(limit, 128)
  end
  local heads = {}
  for _, rid in ipairs(rids) do
    table.insert(heads, { rid = rid, buf = {}, pos = 1, last = '-', done = false })
  end
  local function head(h)
    while true do
      if h.pos > #h.buf then
        if h.done then
          return nil
        end
        local from = '-'
        if h.last ~= '-' then
          from = '(' .. h.last
        end
        h.buf = redis.call('XRANGE', P .. 'q:' .. h.rid, from, '+', 'COUNT', chunk)
        h.pos = 1
        if #h.buf < chunk then
          h.done = true
        end
        if #h.buf == 0 then
          return nil
        end
        h.last = h.buf[#h.buf][1]
      end
      local e = h.buf[h.pos]
      local f = fields(e[2])
      if num(f.e) > now then
        return { n = num(string.match(e[1], '^(%d+)')), id = e[1], f = f }
      end
      h.pos = h.pos + 1
    end
  end
  local out, count, bytes = {}, 0, 0
  while count < limit do
    local best, best_h = nil, nil
    for _, h in ipairs(heads) do
      local x = head(h)
      if x and (not best or x.n < best.n) then
        best, best_h = x, h
      end
    end
    if not best then
      break
    end
    bytes = bytes + #best.f.b
    if bytes > max_bytes and count > 0 then
      break
    end
    best_h.pos = best_h.pos + 1
    table.insert(out, best_h.rid .. '.' .. best.n)
    table.insert(out, redis.call('HGET', P .. 'rr', best_h.rid) or '')
    table.insert(out, best.f.b)
    count = count + 1
  end
  return out
end)

-- status(P, client, recipient or "", now) -> { messages, bytes, oldest or -1, newest or -1 }
-- Messages due by now are purged first (up to 1,000), so counts leave expired ones out.
redis.register_function('didmpc_status', function(_, a)
  local P, client, recipient, now = a[1], a[2], a[3], num(a[4])
  purge_due(P, now, 1000)
  local count, bytes, oldest, newest = 0, 0, -1, -1
  for _, rid in ipairs(queues(P, client, recipient)) do
    local key = P .. 'q:' .. rid
    local n = redis.call('XLEN', key)
    if n > 0 then
      count = count + n
      bytes = bytes + num(redis.call('HGET', P .. 'qb', rid))
      local first = fields(redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1][2])
      local last = fields(redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1][2])
      if oldest < 0 or num(first.t) < oldest then
        oldest = num(first.t)
      end
      if num(last.t) > newest then
        newest = num(last.t)
      end
    end
  end
  return { count, bytes, oldest, newest }
end)

-- ack(P, client, ids...) -> messages deleted (only the client's own)
redis.register_function('didmpc_ack', function(_, a)
  local P, client = a[1], a[2]
  local deleted, touched = 0, {}
  for i = 3, #a do
    local rid, n = split_id(a[i])
    if rid and redis.call('HGET', P .. 'rc', rid) == client then
      if delete(P, rid, n, client) then
        deleted = deleted + 1
        touched[rid] = true
      end
    end
  end
  for rid, _ in pairs(touched) do
    tidy_queue(P, rid, client)
  end
  return deleted
end)

-- purge(P, now, max) -> { messages deleted, more (0/1) }; also drops expired short links
-- and route reservations (with their directory entries).
redis.register_function('didmpc_purge', function(_, a)
  local P, now, max = a[1], num(a[2]), num(a[3])
  local n, more = purge_due(P, now, max)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'oobx', '-inf', now, 'LIMIT', 0, max)) do
    redis.call('HDEL', P .. 'oob', id)
    redis.call('ZREM', P .. 'oobx', id)
  end
  for _, route in ipairs(redis.call('ZRANGEBYSCORE', P .. 'rtx', '-inf', now, 'LIMIT', 0, max)) do
    local c = redis.call('HGET', P .. 'rt:' .. route, 'c')
    if c then
      redis.call('ZREM', P .. 'rtc:' .. c, route)
    end
    redis.call('DEL', P .. 'rt:' .. route, P .. 'rd:' .. route)
    redis.call('ZREM', P .. 'rtx', route)
  end
  if more then
    return { n, 1 }
  end
  return { n, 0 }
end)

-- put_oob(P, client, id, invitation, now, expires_at, max) -> 1 stored, 0 over max
redis.register_function('didmpc_put_oob', function(_, a)
  local P, client, id, inv, now, exp, max = a[1], a[2], a[3], a[4], num(a[5]), a[6], num(a[7])
  local mine = P .. 'oobc:' .. client
  redis.call('ZREMRANGEBYSCORE', mine, '-inf', now)
  if redis.call('ZCARD', mine) >= max then
    return 0
  end
  redis.call('HSET', P .. 'oob', id, inv)
  redis.call('ZADD', P .. 'oobx', exp, id)
  redis.call('ZADD', mine, exp, id)
  return 1
end)

-- get_oob(P, id, now) -> invitation | false
redis.register_function('didmpc_get_oob', function(_, a)
  local P, id, now = a[1], a[2], num(a[3])
  local exp = redis.call('ZSCORE', P .. 'oobx', id)
  if not exp or num(exp) <= now then
    return false
  end
  return redis.call('HGET', P .. 'oob', id)
end)

-- reserve(P, route, client, key, expires_at, max) -> 1 reserved, 0 refused
redis.register_function('didmpc_reserve', function(_, a)
  local P, route, client, key, exp, max = a[1], a[2], a[3], a[4], a[5], num(a[6])
  local k = P .. 'rt:' .. route
  local owner = redis.call('HGET', k, 'c')
  if owner and owner ~= client then
    return 0
  end
  if not owner and redis.call('ZCARD', P .. 'rtc:' .. client) >= max then
    return 0
  end
  redis.call('HSET', k, 'c', client, 'k', key, 'e', exp)
  redis.call('ZADD', P .. 'rtc:' .. client, exp, route)
  redis.call('ZADD', P .. 'rtx', exp, route)
  return 1
end)

-- route(P, route, now) -> { client, key, expires_at } | {}
redis.register_function('didmpc_route', function(_, a)
  local P, route, now = a[1], a[2], num(a[3])
  local v = redis.call('HMGET', P .. 'rt:' .. route, 'c', 'k', 'e')
  if not v[1] or num(v[3]) <= now then
    return {}
  end
  return v
end)

-- route_joined(P, route, slot, instance, ttl) -> the instance holding the other slot, or false.
-- Recording and looking up in one step: of two members joining on two instances at once,
-- at least one sees the other.
redis.register_function('didmpc_route_joined', function(_, a)
  local P, route, slot, me, ttl = a[1], a[2], a[3], a[4], a[5]
  local k = P .. 'rd:' .. route
  redis.call('HSET', k, slot, me)
  redis.call('EXPIRE', k, ttl)
  local other = '1'
  if slot == '1' then
    other = '0'
  end
  return redis.call('HGET', k, other)
end)

-- route_left(P, route, slot, instance): forgets the slot if this instance still holds it.
redis.register_function('didmpc_route_left', function(_, a)
  local P, route, slot, me = a[1], a[2], a[3], a[4]
  if redis.call('HGET', P .. 'rd:' .. route, slot) == me then
    redis.call('HDEL', P .. 'rd:' .. route, slot)
  end
  return 1
end)
