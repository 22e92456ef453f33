-- Reads a listener's dead-letter outbox: messages whose last allowed attempt failed,
-- waiting to be copied to its dead-letter queue.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: listener id
-- ARGV[3]: most entries   ARGV[4]: most record bytes (at least one entry is returned)
-- Returns: {NOT_FOUND} or {OK, more (1: entries remain beyond these), id1, record1, ...}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local outbox = lane_key(ARGV[2], LANE_DEAD)
local out = {OK, 0}
local budget = tonumber(ARGV[4])
local page = redis.call('HSCAN', outbox, 0, 'COUNT', tonumber(ARGV[3]))
local entries, size, taken = page[2], 0, 0
for i = 1, #entries, 2 do
  local rec = entries[i + 1]
  if taken > 0 and size + #rec > budget then break end
  out[#out + 1] = entries[i]
  out[#out + 1] = rec
  size = size + #rec
  taken = taken + 1
end
if redis.call('HLEN', outbox) > taken then out[2] = 1 end
return out
