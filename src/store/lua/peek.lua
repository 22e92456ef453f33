-- Reads up to batch_size visible messages without leasing them.
-- KEYS[1]: meta hash   KEYS[2]: msg hash   KEYS[3]: ready list   KEYS[4]: delayed zset
-- KEYS[5]: leased zset (id -> lease expiry ms)   KEYS[6]: age zset   KEYS[7]: age_count hash
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)   ARGV[3]: batch_size (0 = consumer's, else 5)
-- ARGV[4]: most due messages made visible per call
-- Returns: {NOT_FOUND} or {1, backlog_count, backlog_bytes, oldest_timestamp_ms, id1, record1, ...}

local meta = redis.call('HMGET', KEYS[1], 'account', 'c_batch_size')
if not may_access(KEYS[1], meta[1]) then return {NOT_FOUND} end
local batch = tonumber(ARGV[3])
if batch == 0 then batch = tonumber(meta[2] or '5') end

-- Making due messages visible is what a pull would do first; it changes no message.
make_due_visible(KEYS[3], KEYS[4], KEYS[5], tonumber(ARGV[2]), tonumber(ARGV[4]))

local b = backlog(KEYS[1], KEYS[2], KEYS[6])
local out = {1, b[1], b[2], b[3]}
local found, start = 0, 0
-- Bounded: skips at most a few windows of ids whose message was already acked.
for _ = 1, 4 do
  if found >= batch then break end
  local ids = redis.call('LRANGE', KEYS[3], start, start + batch - 1)
  if #ids == 0 then break end
  start = start + #ids
  local records = redis.call('HMGET', KEYS[2], unpack(ids))
  for i, id in ipairs(ids) do
    if records[i] and found < batch then
      found = found + 1
      out[#out + 1] = id
      out[#out + 1] = records[i]
    end
  end
end
return out
