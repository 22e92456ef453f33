-- Leases up to batch_size visible messages: oldest visible first, or, once the queue
-- has message groups, round-robin over its lanes (select_round_robin in lib.lua).
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
  'c_retry_delay', 'c_retry_delay_max', 'grouped', 'group_max_inflight', 'counted_after')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
know_groups(meta[13], meta[14], meta[15])
if meta[4] == '1' then return {PAUSED} end
local now = tonumber(ARGV[2])
local batch = tonumber(ARGV[3])
if batch == 0 then batch = tonumber(meta[2] or DEFAULT_BATCH_SIZE) end
local timeout = tonumber(ARGV[4])
if timeout == 0 then timeout = tonumber(meta[3] or DEFAULT_VISIBILITY_TIMEOUT_MS) end
local max_deliveries = tonumber(meta[5] or DEFAULT_MAX_RETRIES) + 1

local buried = reclaim_expired(now, tonumber(ARGV[5]), max_deliveries, (meta[6] or '') ~= '',
  tonumber(meta[11] or DEFAULT_RETRY_DELAY), tonumber(meta[12] or DEFAULT_RETRY_DELAY_MAX))

-- The visible messages are the head of K_DUE, up to now (or the rotation's choice).
-- Once their records reach the reply budget the rest stay where they are, first in
-- line for the next pull.
local budget = tonumber(ARGV[6])
local ids, records, entry_of, served, next_heads = {}, {}, {}, {}, {}
if groups().on then
  promote_lanes(now, tonumber(ARGV[5]))
  settle_lanes(now)
  ids, records, entry_of, served, next_heads = select_round_robin(now, batch, budget)
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
  -- A lane looked at may have to move on (to wait, or out while its group is full).
  settle_lanes(now, nil, next_heads)
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
local started, plain, grouped, entries = {}, {}, {}, {}
for i, id in ipairs(ids) do
  local ct, ts, attempts, _, offset, entry, group = parse_record(records[i])
  local gen = last_gen - #ids + i
  local rec = record(ct, ts, attempts + 1, gen, entry, string.sub(records[i], offset), group)
  if entry_of[i] then
    grouped[#grouped + 1] = id
    entries[#entries + 1] = entry_of[i]
    if counted(gen) then started[group] = (started[group] or 0) + 1 end
  else
    plain[#plain + 1] = id
  end
  updated[#updated + 1] = id
  updated[#updated + 1] = rec
  leases[#leases + 1] = expiry
  leases[#leases + 1] = id
  out[#out + 1] = id
  out[#out + 1] = rec
end
if #plain > 0 then redis.call('ZREM', K_DUE, unpack(plain)) end
if #grouped > 0 then
  redis.call('ZREM', K_GROUP_DUE, unpack(grouped))
  redis.call('ZREM', K_LANES, unpack(entries))
  count_leases(started)
end
redis.call('HSET', K_MSG, unpack(updated))
redis.call('ZADD', K_LEASED, unpack(leases))
if groups().on then settle_lanes(now, served, next_heads) end

b = backlog(bytes)
out[2], out[3], out[4] = b[1], b[2], b[3]
return out
