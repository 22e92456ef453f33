-- Clears dead letters from a listener's outbox once its dead-letter queue holds them.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: listener id   ARGV[3..]: ids
-- Returns: {NOT_FOUND} or {OK, entries cleared}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
if #ARGV < 3 then return {OK, 0} end
return {OK, redis.call('HDEL', lane_key(ARGV[2], LANE_DEAD), unpack(ARGV, 3))}
