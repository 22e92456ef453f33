-- Clears dead letters from the outbox once the dead-letter queue holds them.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2..]: ids
-- Returns: {NOT_FOUND} or {OK, entries cleared}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
if #ARGV < 2 then return {OK, 0} end
return {OK, redis.call('HDEL', K_DEAD, unpack(ARGV, 2))}
