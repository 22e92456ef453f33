-- Deletes the queue's consumer if it has this id.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: consumer id   ARGV[3]: modified_ms
-- Returns: {NOT_FOUND}, {ABSENT} no such consumer, or {OK} deleted

local meta = redis.call('HMGET', K_META, 'account', 'c_id')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
if meta[2] ~= ARGV[2] then return {ABSENT} end
redis.call('HDEL', K_META, 'c_id', 'c_created_ms', 'c_dlq', 'c_batch_size', 'c_max_retries',
  'c_retry_delay', 'c_retry_delay_max', 'c_visibility_timeout_ms')
redis.call('HSET', K_META, 'modified_ms', ARGV[3])
return {OK}
