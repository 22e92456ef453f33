-- Reads a listener's dead-letter outbox: messages whose last allowed attempt failed,
-- waiting to be copied to its dead-letter queue.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: listener id
-- ARGV[3]: most entries   ARGV[4]: most record bytes (at least one entry is returned)
-- Returns: {NOT_FOUND} or {OK, more (1: entries remain beyond these), id1, record1, ...}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local out = {OK, 0}
if read_outbox(lane_key(ARGV[2], LANE_DEAD), tonumber(ARGV[3]), tonumber(ARGV[4]), out) then
  out[2] = 1
end
return out
