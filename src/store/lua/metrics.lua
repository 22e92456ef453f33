-- Exact backlog figures of one queue.
-- KEYS[1]: meta hash   KEYS[2]: msg hash   KEYS[3]: ready list   KEYS[4]: delayed zset
-- KEYS[5]: leased zset (id -> lease expiry ms)   KEYS[6]: age zset   KEYS[7]: age_count hash
-- ARGV[1]: access (see may_access in lib.lua)
-- Returns: {NOT_FOUND} or {1, backlog_count, backlog_bytes, oldest_timestamp_ms}

if not may_access(KEYS[1], redis.call('HGET', KEYS[1], 'account')) then return {NOT_FOUND} end
local b = backlog(KEYS[1], KEYS[2], KEYS[6])
return {1, b[1], b[2], b[3]}
