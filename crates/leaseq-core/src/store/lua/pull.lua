-- Leases up to batch_size visible messages: oldest visible first, or, once the queue
-- has message groups, round by round (choose_by_rounds in lib.lua).
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)
-- ARGV[3]: batch_size (0 = consumer's setting, else DEFAULT_BATCH_SIZE)
-- ARGV[4]: visibility_timeout_ms (0 = consumer's setting, else DEFAULT_VISIBILITY_TIMEOUT_MS)
-- ARGV[5]: most expired leases made visible per call
-- ARGV[6]: most record bytes in the reply (at least one message is always leased)
-- ARGV[7]: how long (ms) the caller will wait for a message if this pull finds none
--          (long polling; 0 = it will not)
-- Returns: {NOT_FOUND}, {PAUSED}, or
--          {OK, backlog_count, backlog_bytes, oldest_timestamp_ms, buried, next_visible,
--           id1, record1, ...}
--          where each record carries the new attempts and lease generation, buried counts
--          messages that just left for the dead-letter outbox or were dropped, and
--          next_visible (only when nothing was leased and the caller will wait; else 0)
--          is when, in ms, a delayed message or an expired lease can next become
--          visible, 0 if none can.

local meta = redis.call('HMGET', K_META, 'account', 'c_batch_size', 'c_visibility_timeout_ms',
  'delivery_paused', 'c_max_retries', 'c_dlq', 'bytes', 'lease_seq', 'delivered', 'waiting',
  'c_retry_delay', 'c_retry_delay_max', 'grouped', 'group_max_inflight', 'counted_after',
  'round', 'unparking')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
know_groups(meta[13], meta[14], meta[15], meta[16])
if meta[4] == '1' then return {PAUSED} end
local now = tonumber(ARGV[2])
local batch = tonumber(ARGV[3])
if batch == 0 then batch = tonumber(meta[2] or DEFAULT_BATCH_SIZE) end
local timeout = tonumber(ARGV[4])
if timeout == 0 then timeout = tonumber(meta[3] or DEFAULT_VISIBILITY_TIMEOUT_MS) end
local max_deliveries = tonumber(meta[5] or DEFAULT_MAX_RETRIES) + 1

local limit = tonumber(ARGV[5])
local buried = reclaim_expired(now, limit, max_deliveries, (meta[6] or '') ~= '',
  tonumber(meta[11] or DEFAULT_RETRY_DELAY), tonumber(meta[12] or DEFAULT_RETRY_DELAY_MAX))

-- The visible messages are the head of K_DUE, up to now (or the front of the rounds).
-- Once their records reach the reply budget the rest stay where they are, first in
-- line for the next pull.
local budget = tonumber(ARGV[6])
local ids, records, chosen, passed = {}, {}, {}, {ids = {}}
if groups().on then
  unpark_after_cap_change(meta[17], limit)
  end_holds(now, limit)
  promote(now, limit)
  ids, records, chosen, passed = choose_by_rounds(now, batch, budget, limit)
else
  local candidates = redis.call('ZRANGEBYSCORE', K_DUE, '-inf', now, 'LIMIT', 0, batch)
  if #candidates > 0 then
    local found = redis.call('HMGET', K_MSG, unpack(candidates))
    local size = 0
    for i, id in ipairs(candidates) do
      local rec = found[i]
      if #ids > 0 and size + #rec > budget then break end
      ids[#ids + 1] = id
      records[#records + 1] = rec
      size = size + #rec
    end
  end
end

-- Burying changed meta.bytes since it was read.
local bytes = nil
if buried == 0 then bytes = tonumber(meta[7] or '0') end
local b
if #ids == 0 then
  b = backlog(bytes)
  local wait = tonumber(ARGV[7])
  -- What was passed over waits for its group's room.
  if #passed.ids > 0 then take_chosen({}, {}, passed) end
  if wait == 0 then return {OK, b[1], b[2], b[3], buried, 0} end
  -- A push from now until the wait ends wakes this pull (announce_due in lib.lua).
  if tonumber(meta[10] or '0') < now + wait then
    redis.call('HSET', K_META, 'waiting', int(now + wait))
  end
  return {OK, b[1], b[2], b[3], buried, next_visible(now)}
end

local last_gen = tonumber(meta[8] or '0') + #ids
redis.call('HSET', K_META, 'lease_seq', int(last_gen),
  'delivered', int(tonumber(meta[9] or '0') + #ids))
-- As text once, rather than a Lua number Redis formats again for every message.
local expiry = int(now + timeout)
local updated, leases = {}, {}
local out = {OK, 0, 0, 0, buried, 0}
local started = {}
-- Leases count against group_max_inflight only under a cap: only then the group.
local capped = groups().cap > 0
for i, id in ipairs(ids) do
  local gen = last_gen - #ids + i
  local rec, group = redelivered(records[i], gen, capped)
  if group and counted(gen) then started[group] = (started[group] or 0) + 1 end
  updated[#updated + 1] = id
  updated[#updated + 1] = rec
  leases[#leases + 1] = expiry
  leases[#leases + 1] = id
  out[#out + 1] = id
  out[#out + 1] = rec
end
if groups().on then
  take_chosen(ids, chosen, passed)
  add_counts(K_GROUP_INFLIGHT, started)
else
  redis.call('ZREM', K_DUE, unpack(ids))
end
redis.call('HSET', K_MSG, unpack(updated))
redis.call('ZADD', K_LEASED, unpack(leases))

b = backlog(bytes)
out[2], out[3], out[4] = b[1], b[2], b[3]
return out
