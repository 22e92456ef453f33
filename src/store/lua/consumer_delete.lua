-- Deletes the queue's consumer if it has this id.
-- KEYS[1]: meta hash
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: consumer id   ARGV[3]: modified_ms
-- Returns: NOT_FOUND (no queue), 0 (no such consumer), 1 deleted

local meta = redis.call('HMGET', KEYS[1], 'account', 'c_id')
if not may_access(KEYS[1], meta[1]) then return NOT_FOUND end
if meta[2] ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], 'c_id', 'c_created_ms', 'c_dlq', 'c_batch_size', 'c_max_retries',
  'c_retry_delay', 'c_visibility_timeout_ms')
redis.call('HSET', KEYS[1], 'modified_ms', ARGV[3])
return 1
