-- Reads dead letters eligible for a redrive: messages of this (dead-letter) queue that
-- came from another queue, optionally only from one.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: source queue id ('' = any)
-- ARGV[3]: most messages   ARGV[4]: most record bytes in the reply (at least one message)
-- Returns: {NOT_FOUND} or {OK, id1, record1, source1, ...}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local want, most, budget = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out, taken, cursor, size = {OK}, 0, '0', 0
repeat
  local page = redis.call('HSCAN', K_ORIGIN, cursor, 'COUNT', 200)
  cursor = page[1]
  local entries = page[2]
  for i = 1, #entries, 2 do
    local id, source = entries[i], entries[i + 1]
    if taken < most and (want == '' or want == source) then
      local rec = redis.call('HGET', K_MSG, id)
      if rec and taken > 0 and size + #rec > budget then
        most = taken
      elseif rec then
        size = size + #rec
        out[#out + 1] = id
        out[#out + 1] = rec
        out[#out + 1] = source
        taken = taken + 1
      else
        redis.call('HDEL', K_ORIGIN, id)
      end
    end
  end
until cursor == '0' or taken >= most
return out
