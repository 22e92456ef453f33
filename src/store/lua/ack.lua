-- Acks (deletes) and retries leased messages.
-- KEYS[1]: meta hash   KEYS[2]: msg hash   KEYS[3]: ready list   KEYS[4]: delayed zset
-- KEYS[5]: leased zset (id -> lease expiry ms)   KEYS[6]: age zset   KEYS[7]: age_count hash
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)   ARGV[3]: number of acks (A)
-- ARGV[4 .. 3+A]: ids to ack
-- then per retry, 3 values: id, lease generation, delay_seconds (-1 = consumer's retry_delay)
-- Returns: {NOT_FOUND} or {1, status per ack..., status per retry...}
--   ack status:   1 deleted, 0 no such message
--   retry status: 1 retried, 0 no such message, 2 lease no longer current

local meta = redis.call('HMGET', KEYS[1], 'account', 'c_retry_delay')
if not may_access(KEYS[1], meta[1]) then return {NOT_FOUND} end
local now = tonumber(ARGV[2])
local ack_count = tonumber(ARGV[3])
local default_delay = tonumber(meta[2] or '0')
local out = {1}

-- An ack needs only an authentic lease and a live message: even an expired lease acks
-- (Cloudflare's rule: the work was done).
local deleted = {}
if ack_count > 0 then
  local ids = {}
  for i = 4, 3 + ack_count do ids[#ids + 1] = ARGV[i] end
  local records = redis.call('HMGET', KEYS[2], unpack(ids))
  local gone, bytes, ages = {}, 0, {}
  for i, id in ipairs(ids) do
    if records[i] and not deleted[id] then
      deleted[id] = true
      gone[#gone + 1] = id
      local _, ts, _, _, offset = parse_record(records[i])
      bytes = bytes + #records[i] - offset + 1
      ages[ts] = (ages[ts] or 0) + 1
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
  if #gone > 0 then
    redis.call('HDEL', KEYS[2], unpack(gone))
    redis.call('ZREM', KEYS[5], unpack(gone))
    redis.call('ZREM', KEYS[4], unpack(gone))
    redis.call('HINCRBY', KEYS[1], 'bytes', -bytes)
    forget_ages(KEYS[6], KEYS[7], ages)
  end
end

-- A retry needs the lease to be current: same generation and not yet expired.
local ready, delayed = {}, {}
for i = 4 + ack_count, #ARGV, 3 do
  local id, gen, delay = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local rec = (not deleted[id]) and redis.call('HGET', KEYS[2], id)
  if not rec then
    out[#out + 1] = 0
  else
    local _, _, _, current_gen = parse_record(rec)
    local expiry = tonumber(redis.call('ZSCORE', KEYS[5], id) or '0')
    if current_gen ~= gen or expiry <= now then
      out[#out + 1] = 2
    else
      if delay < 0 then delay = default_delay end
      redis.call('ZREM', KEYS[5], id)
      if delay > 0 then
        delayed[#delayed + 1] = now + delay * 1000
        delayed[#delayed + 1] = id
      else
        ready[#ready + 1] = id
      end
      out[#out + 1] = 1
    end
  end
end
if #ready > 0 then redis.call('RPUSH', KEYS[3], unpack(ready)) end
if #delayed > 0 then redis.call('ZADD', KEYS[4], unpack(delayed)) end
return out
