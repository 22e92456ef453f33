-- Leases up to batch_size visible messages, oldest visible first.
-- KEYS[1]: meta hash   KEYS[2]: msg hash   KEYS[3]: ready list   KEYS[4]: delayed zset
-- KEYS[5]: leased zset (id -> lease expiry ms)   KEYS[6]: age zset   KEYS[7]: age_count hash
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)
-- ARGV[3]: batch_size (0 = consumer's setting, else 5)
-- ARGV[4]: visibility_timeout_ms (0 = consumer's setting, else 30000)
-- ARGV[5]: most due messages made visible per call
-- Returns: {NOT_FOUND} or
--          {1, backlog_count, backlog_bytes, oldest_timestamp_ms, id1, record1, id2, record2, ...}
--          where each record carries the new attempts and lease generation.

local meta = redis.call('HMGET', KEYS[1], 'account', 'c_batch_size', 'c_visibility_timeout_ms')
if not may_access(KEYS[1], meta[1]) then return {NOT_FOUND} end
local now = tonumber(ARGV[2])
local batch = tonumber(ARGV[3])
if batch == 0 then batch = tonumber(meta[2] or '5') end
local timeout = tonumber(ARGV[4])
if timeout == 0 then timeout = tonumber(meta[3] or '30000') end

make_due_visible(KEYS[3], KEYS[4], KEYS[5], now, tonumber(ARGV[5]))

-- Acks of expired leases leave ids on the ready list without a record (removing them
-- from the list would be O(N)); they are dropped here as they reach the head.
local ids, records = {}, {}
while #ids < batch do
  local popped = redis.call('LPOP', KEYS[3], batch - #ids)
  if not popped then break end
  local found = redis.call('HMGET', KEYS[2], unpack(popped))
  for i, id in ipairs(popped) do
    if found[i] then
      ids[#ids + 1] = id
      records[#records + 1] = found[i]
    end
  end
end

local b
if #ids == 0 then
  b = backlog(KEYS[1], KEYS[2], KEYS[6])
  return {1, b[1], b[2], b[3]}
end

local last_gen = redis.call('HINCRBY', KEYS[1], 'lease_seq', #ids)
local expiry = now + timeout
local updated, leases = {}, {}
local out = {1, 0, 0, 0}
for i, id in ipairs(ids) do
  local ct, ts, attempts, _, offset = parse_record(records[i])
  local gen = last_gen - #ids + i
  local rec = ct .. ts .. ':' .. (attempts + 1) .. ':' .. gen .. ':' .. string.sub(records[i], offset)
  updated[#updated + 1] = id
  updated[#updated + 1] = rec
  leases[#leases + 1] = expiry
  leases[#leases + 1] = id
  out[#out + 1] = id
  out[#out + 1] = rec
end
redis.call('HSET', KEYS[2], unpack(updated))
redis.call('ZADD', KEYS[5], unpack(leases))

b = backlog(KEYS[1], KEYS[2], KEYS[6])
out[2], out[3], out[4] = b[1], b[2], b[3]
return out
