-- Deletes a queue and every message in it.
-- KEYS[1]: meta hash   KEYS[2..]: every other key of the queue
-- ARGV[1]: access (see may_access in lib.lua)
-- Returns: {NOT_FOUND} or {1, queue_name}

local meta = redis.call('HMGET', KEYS[1], 'account', 'name')
if not may_access(KEYS[1], meta[1]) then return {NOT_FOUND} end
-- UNLINK frees large message hashes in the background instead of blocking Redis.
redis.call('UNLINK', unpack(KEYS))
return {1, meta[2]}
