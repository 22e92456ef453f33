-- Deletes redriven messages from the dead-letter queue once their source holds them.
-- KEYS: the queue's keys in QueueKeys::all order; see lib.lua.
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2..]: ids
-- Returns: {NOT_FOUND} or {1, messages deleted}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return {1, 0} end
local records = redis.call('HMGET', K_MSG, unpack(ids))
local gone, gone_records = {}, {}
for i, id in ipairs(ids) do
  if records[i] then
    gone[#gone + 1] = id
    gone_records[#gone_records + 1] = records[i]
  end
end
delete_messages(gone, gone_records)
redis.call('HDEL', K_ORIGIN, unpack(ids))
return {1, #gone}
