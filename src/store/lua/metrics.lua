-- Exact backlog figures of one queue.
-- KEYS: the queue's keys in QueueKeys::all order (meta, msg, ready, delayed, leased, age,
--       age_count, dead); see lib.lua.
-- ARGV[1]: access (see may_access in lib.lua)
-- Returns: {NOT_FOUND} or {1, backlog_count, backlog_bytes, oldest_timestamp_ms}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local b = backlog(K_META, K_MSG, K_AGE)
return {1, b[1], b[2], b[3]}
