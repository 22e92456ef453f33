-- Reads up to batch_size visible messages without leasing them.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)
-- ARGV[3]: batch_size (0 = consumer's, else DEFAULT_BATCH_SIZE)
-- ARGV[4]: most expired leases made visible per call
-- ARGV[5]: most record bytes in the reply (at least one message is always shown)
-- Returns: {NOT_FOUND} or
--          {OK, backlog_count, backlog_bytes, oldest_timestamp_ms, buried, 0, id1, record1, ...}

local meta = redis.call('HMGET', K_META, 'account', 'c_batch_size', 'c_max_retries', 'c_dlq',
  'c_retry_delay', 'c_retry_delay_max', 'grouped', 'group_max_inflight', 'counted_after',
  'round')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
know_groups(meta[7], meta[8], meta[9], meta[10])
local now = tonumber(ARGV[2])
local batch = tonumber(ARGV[3])
if batch == 0 then batch = tonumber(meta[2] or DEFAULT_BATCH_SIZE) end

-- What a pull would do first; it changes no live message's visibility.
local buried = reclaim_expired(now, tonumber(ARGV[4]),
  tonumber(meta[3] or DEFAULT_MAX_RETRIES) + 1, (meta[4] or '') ~= '',
  tonumber(meta[5] or DEFAULT_RETRY_DELAY), tonumber(meta[6] or DEFAULT_RETRY_DELAY_MAX))

local budget = tonumber(ARGV[5])
local ids, records = {}, {}
if groups().on then
  -- What the next pull would be offered: it parks nothing, so it shows no more than a
  -- pull would take.
  end_holds(now, tonumber(ARGV[4]))
  promote(now, tonumber(ARGV[4]))
  ids, records = choose_by_rounds(now, batch, budget, tonumber(ARGV[4]))
else
  ids = redis.call('ZRANGEBYSCORE', K_DUE, '-inf', now, 'LIMIT', 0, batch)
  if #ids > 0 then records = redis.call('HMGET', K_MSG, unpack(ids)) end
end
local b = backlog()
local out = {OK, b[1], b[2], b[3], buried, 0}
local size = 0
for i, id in ipairs(ids) do
  local rec = records[i]
  if i > 1 and size + #rec > budget then break end
  size = size + #rec
  out[#out + 1] = id
  out[#out + 1] = rec
end
return out
