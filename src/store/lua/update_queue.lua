-- Updates a queue's metadata fields, if the queue belongs to the account.
-- KEYS[1]: meta hash
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2..]: field, value pairs
-- Returns: {NOT_FOUND} or {1, field1, value1, ...} (the whole hash after the update)

if not may_access(KEYS[1], redis.call('HGET', KEYS[1], 'account')) then return {NOT_FOUND} end
if #ARGV > 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
end
local out = {1}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
