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

-- Exact backlog figures: {count, bytes, oldest_timestamp_ms}.
local function backlog(meta_key, msg_key, age_key)
  local count = redis.call('HLEN', msg_key)
  local bytes = tonumber(redis.call('HGET', meta_key, 'bytes') or '0')
  local oldest = 0
  local first = redis.call('ZRANGE', age_key, 0, 0, 'WITHSCORES')
  if first[2] then oldest = tonumber(first[2]) end
  return {count, bytes, oldest}
end

-- The age index holds each distinct push time of live messages once (age zset) with
-- how many live messages carry it (age_count hash). `gone` maps timestamp -> number
-- of messages with that timestamp just deleted.
local function forget_ages(age_key, age_count_key, gone)
  for ts, n in pairs(gone) do
    if redis.call('HINCRBY', age_count_key, ts, -n) <= 0 then
      redis.call('HDEL', age_count_key, ts)
      redis.call('HDEL', K_AGE_IDS, ts)
      redis.call('ZREM', age_key, ts)
    end
  end
end

-- Adds `n` messages with timestamp `ts` to the age index; `ids` is their 32-character
-- ids concatenated, kept per timestamp so retention can find what expires without
-- scanning the queue (acked ids stay until their timestamp empties; they are skipped).
local function remember_ages(ts, ids, n)
  redis.call('ZADD', K_AGE, ts, ts)
  redis.call('HINCRBY', K_AGE_COUNT, ts, n)
  local known = redis.call('HGET', K_AGE_IDS, ts)
  redis.call('HSET', K_AGE_IDS, ts, (known or '') .. ids)
end

-- Deletes live messages `ids` (whose `records` are given) from every structure and
-- from the backlog accounting. Ids on the ready list stay behind (removing them would
-- be O(N)); pulls skip ids without a record.
local function delete_messages(ids, records)
  if #ids == 0 then return end
  local bytes, ages = 0, {}
  for i = 1, #ids do
    local _, ts, _, _, offset = parse_record(records[i])
    bytes = bytes + #records[i] - offset + 1
    ages[ts] = (ages[ts] or 0) + 1
  end
  redis.call('HDEL', K_MSG, unpack(ids))
  redis.call('ZREM', K_LEASED, unpack(ids))
  redis.call('ZREM', K_DELAYED, unpack(ids))
  redis.call('HDEL', K_ORIGIN, unpack(ids))
  -- Not when it is 0: Lua's -0 reaches Redis as "-0", which HINCRBY refuses.
  if bytes > 0 then redis.call('HINCRBY', K_META, 'bytes', -bytes) end
  forget_ages(K_AGE, K_AGE_COUNT, ages)
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

-- Whether `gen` names the message's current lease, not yet expired at `now`.
local function lease_current(id, rec, gen, now)
  local _, _, _, current_gen = parse_record(rec)
  local expiry = tonumber(redis.call('ZSCORE', K_LEASED, id) or '0')
  return current_gen == gen and expiry > now
end

-- Messages whose last allowed delivery failed leave the queue: into the `dead` outbox
-- when the consumer has a dead-letter queue (the broker then copies them there by id
-- and clears the outbox, so a crash in between loses nothing), else they are deleted.
-- Either way they stop counting in this queue's backlog. Returns how many.
local function bury(ids, records, has_dlq)
  if #ids == 0 then return 0 end
  delete_messages(ids, records)
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

-- Moves due delayed messages and expired leases onto the ready list, oldest first,
-- at most `limit` of each per call so one call never does unbounded work; whatever is
-- left is moved by the next call. Cost: O(log N + moved). An expired lease that was
-- the message's last allowed delivery (`max_deliveries`) buries it instead.
-- Returns how many messages were buried.
local function make_due_visible(now, limit, max_deliveries, has_dlq)
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, limit)
  if #due > 0 then
    redis.call('ZREM', K_DELAYED, unpack(due))
    redis.call('RPUSH', K_READY, unpack(due))
  end
  local expired = redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', now, 'LIMIT', 0, limit)
  if #expired == 0 then return 0 end
  redis.call('ZREM', K_LEASED, unpack(expired))
  redis.call('HINCRBY', K_META, 'lease_expired', #expired)
  local records = redis.call('HMGET', K_MSG, unpack(expired))
  local alive, dead, dead_records = {}, {}, {}
  for i, id in ipairs(expired) do
    local rec = records[i]
    if rec then
      local _, _, attempts = parse_record(rec)
      if attempts >= max_deliveries then
        dead[#dead + 1] = id
        dead_records[#dead_records + 1] = rec
      else
        alive[#alive + 1] = id
      end
    end
  end
  if #alive > 0 then redis.call('RPUSH', K_READY, unpack(alive)) end
  return bury(dead, dead_records, has_dlq)
end

-- When, in ms, the next delayed message or expired lease can become visible (0: none).
local function next_visible()
  local d = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  local l = redis.call('ZRANGE', K_LEASED, 0, 0, 'WITHSCORES')
  local n = 0
  if d[2] then n = tonumber(d[2]) end
  if l[2] and (n == 0 or tonumber(l[2]) < n) then n = tonumber(l[2]) end
  return n
end

-- Wakes long-polling pulls of this queue, in every broker process: the channel is the
-- ready list's own key name, the message how many messages just became visible (each
-- process wakes at most that many of its waiting pulls).
local function announce_ready(n)
  redis.call('PUBLISH', K_READY, n)
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
