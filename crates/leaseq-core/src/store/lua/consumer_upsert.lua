-- Creates or replaces the queue's single consumer.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: mode, 'create' or 'replace'   ARGV[3]: consumer id
-- ARGV[4]: modified_ms   ARGV[5..]: consumer field, value pairs (c_* fields, without c_id)
-- Returns: {NOT_FOUND}, {OTHER_CONSUMER}, or {OK, field1, value1, ...} (the whole meta hash)

local meta = redis.call('HMGET', K_META, 'account', 'c_id')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
local existing = meta[2]
if existing then
  if ARGV[2] == 'create' or existing ~= ARGV[3] then return {OTHER_CONSUMER} end
else
  redis.call('HSET', K_META, 'c_id', ARGV[3], 'c_created_ms', ARGV[4])
end
redis.call('HSET', K_META, 'modified_ms', ARGV[4], unpack(ARGV, 5))
local out = {OK}
for _, v in ipairs(redis.call('HGETALL', K_META)) do out[#out + 1] = v end
return out
