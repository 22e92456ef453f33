-- Exact backlog figures of one queue.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)
-- Returns: {NOT_FOUND} or {OK, backlog_count, backlog_bytes, oldest_timestamp_ms}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local b = backlog()
return {OK, b[1], b[2], b[3]}
