-- Helpers shared by the queue scripts, after the generated prelude (store/script.rs),
-- which names the keys (K_META, K_MSG, …), the reply codes and the defaults.
--
-- Message record (a field of the `msg` hash), version 2 (see codec.rs):
--   "2<t|j><timestamp_ms>:<attempts>:<lease_generation>:<entry_generation>:<body>"
-- The header is tiny and the body is stored once, verbatim. entry_generation is the
-- queue's lease_seq when the message entered it (0 for a push), so leases from a life
-- before a dead-letter move or a redrive are recognisably older. Version 1 records
-- ("<t|j><timestamp_ms>:<attempts>:<lease_generation>:<body>") read as entry 0.
-- Returns content tag, timestamp (text), attempts, lease generation, body offset, entry.
local function parse_record(rec)
  local version, ct, ts, attempts, gen, entry, offset =
    string.match(rec, '^(.)([tj])(%d+):(%d+):(%d+):(%d+):()')
  if version ~= RECORD_VERSION then
    ct, ts, attempts, gen, offset = string.match(rec, '^([tj])(%d+):(%d+):(%d+):()')
    entry = '0'
  end
  return ct, ts, tonumber(attempts), tonumber(gen), offset, tonumber(entry)
end

-- A version 2 record.
local function record(ct, ts, attempts, gen, entry, body)
  return RECORD_VERSION .. ct .. ts .. ':' .. attempts .. ':' .. gen .. ':' .. entry .. ':' .. body
end

-- Indexes (store/mod.rs has the key layout). Every live message is in K_MSG, its id is
-- in the age bucket of its timestamp, and it is held by one or more lanes:
-- - the pull lane: exactly one of K_DUE (not leased: ready, or delayed until its score)
--   and K_LEASED (until its lease expires);
-- - each listener's lane, for a message pushed while the listener existed: in
--   lane_key(lid, LANE_DUE), scored by when it is next due (a claimed message, by when
--   its claim lapses), with its delivery attempts in lane_key(lid, LANE_ATTEMPTS).
-- A message held by a listener lane has an entry in K_REFS: how many lanes still hold
-- it. A lane lets go of messages through `release`; the last one deletes them, and
-- delete_messages takes them out of everything at once, so no id is ever indexed twice
-- or left behind.

-- Whether any message of the queue has a listener lane (K_REFS exists), asked of Redis
-- once per script: ack, burial and deletion all need it, and while the queue has never
-- had listeners it saves them every listener-lane step. Only push creates K_REFS, and
-- it asks nothing after; a stale "yes" costs at most a no-op command.
local refs_known, refs_exist = false, false
local function any_refs()
  if not refs_known then
    refs_exist, refs_known = redis.call('EXISTS', K_REFS) == 1, true
  end
  return refs_exist
end

-- A whole number as Redis reads one: Lua's own formatting of a large number can be
-- "1e+15", which HINCRBY and friends refuse.
local function int(n)
  return string.format('%d', n)
end

-- Exact backlog figures: {count, bytes, oldest_timestamp_ms}. `bytes` and `count`, when
-- the caller knows them, save reading them again.
local function backlog(bytes, count)
  count = count or redis.call('HLEN', K_MSG)
  bytes = bytes or tonumber(redis.call('HGET', K_META, 'bytes') or '0')
  local oldest = 0
  local first = redis.call('ZRANGE', K_AGE, 0, 0, 'WITHSCORES')
  if first[2] then oldest = tonumber(first[2]) end
  return {count, bytes, oldest}
end

-- The age index: K_AGE holds each distinct timestamp of live messages, scored by
-- itself (the oldest is its head); K_AGE_IDS maps each to exactly the ids of the live
-- messages carrying it, 32 characters each, concatenated, so retention finds what
-- expires without scanning the queue. A bucket holds the messages pushed in one
-- millisecond, so editing it costs about a batch.
local function remember_ages(ts, ids)
  redis.call('ZADD', K_AGE, ts, ts)
  local known = redis.call('HGET', K_AGE_IDS, ts)
  redis.call('HSET', K_AGE_IDS, ts, (known or '') .. ids)
end

-- The ids in the age bucket of timestamp `ts`.
local function bucket_ids(ts)
  local packed = redis.call('HGET', K_AGE_IDS, ts) or ''
  local ids = {}
  for i = 1, #packed, 32 do ids[#ids + 1] = string.sub(packed, i, i + 31) end
  return ids
end

-- Makes the age bucket of `ts` hold exactly `ids`; an empty one leaves the index.
local function store_bucket(ts, ids)
  if #ids == 0 then
    redis.call('HDEL', K_AGE_IDS, ts)
    redis.call('ZREM', K_AGE, ts)
  else
    redis.call('HSET', K_AGE_IDS, ts, table.concat(ids))
  end
end

-- Removes ids from their age buckets; `gone` maps timestamp -> set of ids.
local function forget_ages(gone)
  for ts, ids in pairs(gone) do
    local kept = {}
    for _, id in ipairs(bucket_ids(ts)) do
      if not ids[id] then kept[#kept + 1] = id end
    end
    store_bucket(ts, kept)
  end
end

-- Deletes live messages `ids` (whose `records` are given) from every index. Returns the
-- bytes of their bodies; with `keep_bytes` the caller takes them off meta.bytes itself
-- (folded into its own write of meta), else this does.
local function delete_messages(ids, records, keep_bytes)
  if #ids == 0 then return 0 end
  -- Listener lanes may hold them too (a message some lane still holds has a K_REFS
  -- entry; HDEL tells whether any of these did).
  if any_refs() and redis.call('HDEL', K_REFS, unpack(ids)) > 0 then
    for _, lid in ipairs(redis.call('HKEYS', K_LISTENERS)) do
      redis.call('ZREM', lane_key(lid, LANE_DUE), unpack(ids))
      redis.call('HDEL', lane_key(lid, LANE_ATTEMPTS), unpack(ids))
    end
  end
  local bytes, ages, reentered = 0, {}, false
  for i, id in ipairs(ids) do
    local _, ts, _, _, offset, entry = parse_record(records[i])
    bytes = bytes + #records[i] - offset + 1
    ages[ts] = ages[ts] or {}
    ages[ts][id] = true
    reentered = reentered or entry > 0
  end
  redis.call('HDEL', K_MSG, unpack(ids))
  redis.call('HDEL', K_NAMES, unpack(ids))
  -- Each is in exactly one of the two.
  if redis.call('ZREM', K_LEASED, unpack(ids)) < #ids then
    redis.call('ZREM', K_DUE, unpack(ids))
  end
  -- Only a message that came from another queue can have an origin.
  if reentered then redis.call('HDEL', K_ORIGIN, unpack(ids)) end
  -- Not when it is 0: Lua's -0 reaches Redis as "-0", which HINCRBY refuses.
  if bytes > 0 and not keep_bytes then redis.call('HINCRBY', K_META, 'bytes', -bytes) end
  forget_ages(ages)
  return bytes
end

-- Deletes those of `ids` that are still live messages; returns how many were.
local function delete_live(ids)
  if #ids == 0 then return 0 end
  local records = redis.call('HMGET', K_MSG, unpack(ids))
  local live, live_records = {}, {}
  for i, id in ipairs(ids) do
    if records[i] then
      live[#live + 1] = id
      live_records[#live_records + 1] = records[i]
    end
  end
  delete_messages(live, live_records)
  return #live
end

-- Lane `lid` (nil: the pull lane) lets go of messages `ids`, whose `records` are given
-- (false: already gone). Those no other lane holds are deleted; the others only leave
-- this lane. Returns the bytes deleted (taken off meta.bytes unless `keep_bytes`).
local function release(ids, records, lid, keep_bytes)
  if #ids == 0 then return 0 end
  -- Without K_REFS no message has a listener lane: the pull lane is the only one.
  local counts = {}
  if lid or any_refs() then
    counts = redis.call('HMGET', K_REFS, unpack(ids))
  end
  local gone, gone_records, held = {}, {}, {}
  for i, id in ipairs(ids) do
    local n = tonumber(counts[i] or '1')
    if n > 1 then
      redis.call('HSET', K_REFS, id, n - 1)
      held[#held + 1] = id
    elseif records[i] then
      gone[#gone + 1] = id
      gone_records[#gone_records + 1] = records[i]
    end
  end
  if lid then
    redis.call('ZREM', lane_key(lid, LANE_DUE), unpack(ids))
    redis.call('HDEL', lane_key(lid, LANE_ATTEMPTS), unpack(ids))
  elseif #held > 0 and redis.call('ZREM', K_LEASED, unpack(held)) < #held then
    redis.call('ZREM', K_DUE, unpack(held))
  end
  return delete_messages(gone, gone_records, keep_bytes)
end

-- Whether the pull lane holds each of `ids`: a message only listener lanes still hold
-- has a record but is no longer the pull lane's to ack. Costs nothing while no message
-- has a listener lane.
local function in_pull_lane(ids)
  local held = {}
  if #ids == 0 or not any_refs() then
    for i = 1, #ids do held[i] = true end
    return held
  end
  local leased = redis.call('ZMSCORE', K_LEASED, unpack(ids))
  local due = redis.call('ZMSCORE', K_DUE, unpack(ids))
  for i = 1, #ids do held[i] = leased[i] ~= false or due[i] ~= false end
  return held
end

-- Reads what deciding on leases takes, for ids[i] with lease generations gens[i], in
-- two commands whatever their number: each one's record (false: no such message) and
-- whether gens[i] is its current lease, not expired at `now`.
local function read_leases(ids, gens, now)
  if #ids == 0 then return {}, {} end
  local records = redis.call('HMGET', K_MSG, unpack(ids))
  local expiries = redis.call('ZMSCORE', K_LEASED, unpack(ids))
  local current = {}
  for i = 1, #ids do
    current[i] = false
    if records[i] then
      local _, _, _, gen = parse_record(records[i])
      current[i] = gen == gens[i] and tonumber(expiries[i] or '0') > now
    end
  end
  return records, current
end

-- Messages whose last allowed delivery failed leave the queue: into the `dead` outbox
-- when the consumer has a dead-letter queue (the broker then copies them there by id
-- and clears the outbox, so a crash in between loses nothing), else they are deleted.
-- Either way they stop counting in this queue's backlog. Returns how many.
local function bury(ids, records, has_dlq)
  if #ids == 0 then return 0 end
  release(ids, records)
  if has_dlq then
    local outbox = {}
    for i, id in ipairs(ids) do
      outbox[#outbox + 1] = id
      outbox[#outbox + 1] = records[i]
    end
    redis.call('HSET', K_DEAD, unpack(outbox))
    redis.call('HINCRBY', K_META, 'dead_lettered', #ids)
  else
    redis.call('HINCRBY', K_META, 'dead_dropped', #ids)
  end
  return #ids
end

-- Seconds before the next delivery of a message retried (or whose lease expired) after
-- `attempts` deliveries: the consumer's retry_delay, or, when its retry_delay_max is
-- above that, retry_delay · 2^(attempts−1) capped at retry_delay_max.
local function retry_delay(base, cap, attempts)
  if cap <= base then return base end
  local delay = base * 2 ^ (math.max(attempts, 1) - 1)
  if delay > cap then delay = cap end
  return delay
end

-- Returns expired leases to K_DUE, scored by when they expired (plus the backoff of
-- `retry_delay` when the consumer has retry_delay_max above retry_delay), oldest first
-- and at most `limit` per call (the next call moves the rest), so the cost is O(log N +
-- moved). An expired lease that was the message's last allowed delivery
-- (`max_deliveries`) buries it instead. Delayed messages need no such step: they are
-- in K_DUE already, scored by when they become visible. Returns how many were buried.
local function reclaim_expired(now, limit, max_deliveries, has_dlq, delay_base, delay_cap)
  local expired = redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', now, 'WITHSCORES',
    'LIMIT', 0, limit)
  if #expired == 0 then return 0 end
  local ids, expiries = {}, {}
  for i = 1, #expired, 2 do
    ids[#ids + 1] = expired[i]
    expiries[#expiries + 1] = expired[i + 1]
  end
  redis.call('ZREM', K_LEASED, unpack(ids))
  redis.call('HINCRBY', K_META, 'lease_expired', #ids)
  local records = redis.call('HMGET', K_MSG, unpack(ids))
  local due, dead, dead_records = {}, {}, {}
  for i, id in ipairs(ids) do
    local rec = records[i]
    local _, _, attempts = parse_record(rec)
    if attempts >= max_deliveries then
      dead[#dead + 1] = id
      dead_records[#dead_records + 1] = rec
    else
      local backoff = 0
      if delay_cap > delay_base then
        backoff = retry_delay(delay_base, delay_cap, attempts) * 1000
      end
      due[#due + 1] = expiries[i] + backoff
      due[#due + 1] = id
    end
  end
  if #due > 0 then redis.call('ZADD', K_DUE, unpack(due)) end
  return bury(dead, dead_records, has_dlq)
end

-- When, in ms, the next delayed message or expired lease can become visible (0: none).
local function next_visible(now)
  local d = redis.call('ZRANGEBYSCORE', K_DUE, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local l = redis.call('ZRANGE', K_LEASED, 0, 0, 'WITHSCORES')
  local n = 0
  if d[2] then n = tonumber(d[2]) end
  if l[2] and (n == 0 or tonumber(l[2]) < n) then n = tonumber(l[2]) end
  return n
end

-- Wakes long-polling pulls of this queue, in every broker process: the channel is the
-- K_DUE key's own name, the message how many messages just became visible (each
-- process wakes at most that many of its waiting pulls). Only while a pull may be
-- waiting: a pull about to wait marks meta.waiting with when its wait ends (pull.lua),
-- and `waiting` is that field as the caller read it.
local function announce_due(n, waiting, now)
  if n > 0 and tonumber(waiting or '0') > now then
    redis.call('PUBLISH', K_DUE, n)
  end
end

-- Up to `max` entries of a dead-letter outbox (a hash of id -> record) from one bounded
-- HSCAN step, at most `budget` record bytes but always one entry, appended to `out` as
-- id, record pairs. Returns whether entries remain beyond those.
local function read_outbox(outbox, max, budget, out)
  local page = redis.call('HSCAN', outbox, 0, 'COUNT', max)
  local entries, size, taken = page[2], 0, 0
  for i = 1, #entries, 2 do
    local rec = entries[i + 1]
    if taken > 0 and size + #rec > budget then break end
    out[#out + 1] = entries[i]
    out[#out + 1] = rec
    size = size + #rec
    taken = taken + 1
  end
  return redis.call('HLEN', outbox) > taken
end

-- ARGV[1] of every queue script is the caller's access: "<account>", or
-- "<account>\n,<queue name>,<queue name>," for a token limited to some queues.
-- A queue outside it does not exist for the caller. Names never hold ',' or '\n'.
local function may_access(meta_key, meta_account)
  local account, names = string.match(ARGV[1], '^([^\n]*)\n?(.*)$')
  if meta_account ~= account then return false end
  if names == '' then return true end
  local name = redis.call('HGET', meta_key, 'name')
  return name ~= false and string.find(names, ',' .. name .. ',', 1, true) ~= nil
end
