-- Stores a batch of messages atomically.
-- KEYS[1]: meta hash   KEYS[2]: msg hash   KEYS[3]: ready list   KEYS[4]: delayed zset
-- KEYS[5]: leased zset (id -> lease expiry ms)   KEYS[6]: age zset   KEYS[7]: age_count hash
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)
-- ARGV[3..]: per message, 4 values: id, delay_seconds (-1 = queue's delivery_delay),
--            body size in bytes, record
-- Returns: {NOT_FOUND} or {1, backlog_count, backlog_bytes, oldest_timestamp_ms}

local meta = redis.call('HMGET', KEYS[1], 'account', 'delivery_delay')
if not may_access(KEYS[1], meta[1]) then return {NOT_FOUND} end
local default_delay = tonumber(meta[2] or '0')
local now = tonumber(ARGV[2])

local records, ready, delayed = {}, {}, {}
local bytes = 0
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  local delay = tonumber(ARGV[i + 1])
  if delay < 0 then delay = default_delay end
  bytes = bytes + tonumber(ARGV[i + 2])
  records[#records + 1] = id
  records[#records + 1] = ARGV[i + 3]
  if delay > 0 then
    delayed[#delayed + 1] = now + delay * 1000
    delayed[#delayed + 1] = id
  else
    ready[#ready + 1] = id
  end
end

if #records > 0 then
  redis.call('HSET', KEYS[2], unpack(records))
  redis.call('HINCRBY', KEYS[1], 'bytes', bytes)
  -- Every message of the batch has timestamp `now`: one index entry for all of them.
  -- ARGV[2] is the exact text the records carry as their timestamp.
  redis.call('ZADD', KEYS[6], ARGV[2], ARGV[2])
  redis.call('HINCRBY', KEYS[7], ARGV[2], #records / 2)
end
if #ready > 0 then redis.call('RPUSH', KEYS[3], unpack(ready)) end
if #delayed > 0 then redis.call('ZADD', KEYS[4], unpack(delayed)) end

local b = backlog(KEYS[1], KEYS[2], KEYS[6])
return {1, b[1], b[2], b[3]}
