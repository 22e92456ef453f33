-- Claims up to ARGV[3] messages due on a listener's lane for one delivery attempt: each
-- claimed message counts an attempt and is due again when the claim lapses (a broker
-- that dies mid-delivery means a redelivery, never a loss).
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: listener id
-- ARGV[3]: most messages   ARGV[4]: now (ms)   ARGV[5]: claim_ms
-- Returns: {NOT_FOUND}, {ABSENT} (no such listener), or
--          {OK, next_due_ms (0: the lane is empty), id1, attempts1, record1, ...}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local lid = ARGV[2]
if redis.call('HEXISTS', K_LISTENERS, lid) == 0 then return {ABSENT} end
local lane, attempts_key = lane_key(lid, LANE_DUE), lane_key(lid, LANE_ATTEMPTS)
local now = tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', lane, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {OK, 0}
if #ids > 0 then
  local records = redis.call('HMGET', K_MSG, unpack(ids))
  local claimed, stale = {}, {}
  local lapse = int(now + tonumber(ARGV[5]))
  for i, id in ipairs(ids) do
    if records[i] then
      claimed[#claimed + 1] = lapse
      claimed[#claimed + 1] = id
      out[#out + 1] = id
      out[#out + 1] = redis.call('HINCRBY', attempts_key, id, 1)
      out[#out + 1] = records[i]
    else
      stale[#stale + 1] = id
    end
  end
  if #claimed > 0 then redis.call('ZADD', lane, unpack(claimed)) end
  if #stale > 0 then redis.call('ZREM', lane, unpack(stale)) end
end
local first = redis.call('ZRANGE', lane, 0, 0, 'WITHSCORES')
if first[2] then out[2] = tonumber(first[2]) end
return out
