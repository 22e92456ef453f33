-- Adds a listener to the queue: from now on, every message pushed is also held by its
-- lane (lane_key(id, LANE_DUE)) until delivered, dead-lettered or expired.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: listener id
-- ARGV[3]: its record (JSON, written and read by Rust only)   ARGV[4]: most listeners
-- ARGV[5]: modified_ms
-- Returns: {NOT_FOUND} or {OK} or {ACCOUNT_FULL} (the queue has as many as it may)

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local count = redis.call('HLEN', K_LISTENERS)
if count >= tonumber(ARGV[4]) then return {ACCOUNT_FULL} end
redis.call('HSET', K_LISTENERS, ARGV[2], ARGV[3])
redis.call('HSET', K_META, 'listeners', count + 1, 'modified_ms', ARGV[5])
return {OK}
