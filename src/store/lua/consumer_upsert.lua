-- Creates or replaces the queue's single consumer.
-- KEYS[1]: meta hash
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: mode, 'create' or 'replace'   ARGV[3]: consumer id
-- ARGV[4]: modified_ms   ARGV[5..]: consumer field, value pairs (c_* fields, without c_id)
-- Returns: {NOT_FOUND}, {2} a different consumer exists, or {1, field1, value1, ...}

local meta = redis.call('HMGET', KEYS[1], 'account', 'c_id')
if not may_access(KEYS[1], meta[1]) then return {NOT_FOUND} end
local existing = meta[2]
if existing then
  if ARGV[2] == 'create' or existing ~= ARGV[3] then return {2} end
else
  redis.call('HSET', KEYS[1], 'c_id', ARGV[3], 'c_created_ms', ARGV[4])
end
redis.call('HSET', KEYS[1], 'modified_ms', ARGV[4], unpack(ARGV, 5))
local out = {1}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
