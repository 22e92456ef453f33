-- Reads the dead-letter outbox: messages buried here, waiting to be copied to the
-- consumer's dead-letter queue.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: most entries to return
-- ARGV[3]: most record bytes in the reply (at least one entry is always returned)
-- Returns: {NOT_FOUND} or {OK, dead_letter_queue_name ('' = none), more (1: entries remain
--          beyond these), id1, record1, ...}

local meta = redis.call('HMGET', K_META, 'account', 'c_dlq')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
local out = {OK, meta[2] or '', 0}
local budget = tonumber(ARGV[3])
-- One HSCAN page keeps the call bounded; the rest is read by the next transfer.
local page = redis.call('HSCAN', K_DEAD, 0, 'COUNT', tonumber(ARGV[2]))
local entries, size, taken = page[2], 0, 0
for i = 1, #entries, 2 do
  local rec = entries[i + 1]
  if taken > 0 and size + #rec > budget then break end
  out[#out + 1] = entries[i]
  out[#out + 1] = rec
  size = size + #rec
  taken = taken + 1
end
if redis.call('HLEN', K_DEAD) > taken then out[3] = 1 end
return out
