-- Exact backlog figures of one queue, and how much of it is leased or delayed.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)
-- Returns: {NOT_FOUND} or
--   {OK, backlog_count, backlog_bytes, oldest_timestamp_ms, inflight_count, delayed_count}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local b = backlog()
local inflight = redis.call('ZCARD', K_LEASED)
local delayed = redis.call('ZCOUNT', K_DUE, '(' .. ARGV[2], '+inf')
return {OK, b[1], b[2], b[3], inflight, delayed}
