-- Acks (deletes) and retries leased messages.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)   ARGV[3]: number of acks (A)
-- ARGV[4 .. 3+2A]: per ack, 2 values: id, lease generation
-- then per retry, 3 values: id, lease generation, delay_seconds (-1 = the consumer's
-- retry_delay, with its backoff: retry_delay in lib.lua)
-- Returns: {NOT_FOUND} or {OK, buried, status per ack..., status per retry...}
--   ack status:   OK deleted, ABSENT no such message, NOT_CURRENT a lease from before the
--                 message re-entered the queue
--   retry status: OK retried (or, after its last allowed delivery, buried),
--                 ABSENT no such message, NOT_CURRENT lease no longer current

local meta = redis.call('HMGET', K_META, 'account', 'c_retry_delay', 'c_max_retries', 'c_dlq',
  'bytes', 'acked', 'waiting', 'c_retry_delay_max', 'grouped', 'group_max_inflight',
  'counted_after')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
know_groups(meta[9], meta[10], meta[11])
local now = tonumber(ARGV[2])
local ack_count = tonumber(ARGV[3])
local default_delay = tonumber(meta[2] or DEFAULT_RETRY_DELAY)
local delay_cap = tonumber(meta[8] or DEFAULT_RETRY_DELAY_MAX)
local max_deliveries = tonumber(meta[3] or DEFAULT_MAX_RETRIES) + 1
local out = {OK, 0}

-- An ack needs only an authentic lease of the message's present life: even an expired
-- lease acks (Cloudflare's rule: the work was done), but not one issued before the
-- message was dead-lettered or redriven back (its generation is at most the entry's).
local deleted = {}
local first_retry = 4 + 2 * ack_count
if ack_count > 0 then
  local ids, gens = {}, {}
  for i = 4, first_retry - 1, 2 do
    ids[#ids + 1] = ARGV[i]
    gens[#gens + 1] = tonumber(ARGV[i + 1])
  end
  local records = redis.call('HMGET', K_MSG, unpack(ids))
  local pulled = in_pull_lane(ids, records)
  local gone, gone_records = {}, {}
  for i, id in ipairs(ids) do
    local rec = records[i]
    if not rec or not pulled[i] or deleted[id] then
      out[#out + 1] = ABSENT
    elseif gens[i] <= select(6, parse_record(rec)) then
      out[#out + 1] = NOT_CURRENT
    else
      deleted[id] = true
      gone[#gone + 1] = id
      gone_records[#gone_records + 1] = rec
      out[#out + 1] = OK
    end
  end
  if #gone > 0 then
    local bytes = release(gone, gone_records, nil, true, now)
    redis.call('HSET', K_META, 'bytes', int(tonumber(meta[5] or '0') - bytes),
      'acked', int(tonumber(meta[6] or '0') + #gone))
  end
end

-- A retry needs the lease to be current: same generation and not yet expired.
local ids, gens, delays = {}, {}, {}
for i = first_retry, #ARGV, 3 do
  ids[#ids + 1] = ARGV[i]
  gens[#gens + 1] = tonumber(ARGV[i + 1])
  delays[#delays + 1] = tonumber(ARGV[i + 2])
end
local records, current = read_leases(ids, gens, now)
local due, grouped, kept, ended, dead, dead_records, unleased, retried_ids =
  {}, {}, {}, {}, {}, {}, {}, {}
local visible_now = 0
for n, id in ipairs(ids) do
  local rec, delay = (not deleted[id]) and records[n], delays[n]
  if not rec then
    out[#out + 1] = ABSENT
  else
    -- A lease retried twice in one request counts once.
    if not current[n] or retried_ids[id] then
      out[#out + 1] = NOT_CURRENT
    else
      retried_ids[id] = true
      unleased[#unleased + 1] = id
      local _, _, attempts, gen, _, _, group = parse_record(rec)
      if group then lease_ended(ended, group, gen) end
      if delay < 0 then delay = retry_delay(default_delay, delay_cap, attempts) end
      if attempts >= max_deliveries then
        deleted[id] = true
        dead[#dead + 1] = id
        dead_records[#dead_records + 1] = rec
      else
        if delay <= 0 then visible_now = visible_now + 1 end
        due_again(due, grouped, kept, id, group, now + math.max(delay, 0) * 1000)
      end
      out[#out + 1] = OK
    end
  end
end
if #unleased > 0 then redis.call('ZREM', K_LEASED, unpack(unleased)) end
local retried = #due / 2 + #grouped / 3 + #kept + #dead
keep_places(kept, grouped, now)
make_due(due, grouped, now)
-- An ended lease (acked ones included) can give a group at its group_max_inflight
-- room for parked messages.
end_leases(ended, now)
out[2] = bury(dead, dead_records, (meta[4] or '') ~= '', now)
announce_due(visible_now + unparked_count, meta[7], now)
if retried > 0 then redis.call('HINCRBY', K_META, 'retried', retried) end
return out
