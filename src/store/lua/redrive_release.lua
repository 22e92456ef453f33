-- Deletes redriven messages from the dead-letter queue once their source holds them.
-- KEYS: the queue's keys in QueueKeys::all order; see lib.lua.
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2..]: ids
-- Returns: {NOT_FOUND} or {1, messages deleted}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return {1, 0} end
local records = redis.call('HMGET', K_MSG, unpack(ids))
local gone, bytes, ages = {}, 0, {}
for i, id in ipairs(ids) do
  if records[i] then
    local _, ts, _, _, offset = parse_record(records[i])
    gone[#gone + 1] = id
    bytes = bytes + #records[i] - offset + 1
    ages[ts] = (ages[ts] or 0) + 1
  end
end
if #gone > 0 then
  -- Ids on the ready list stay behind; pulls skip ids without a record.
  redis.call('HDEL', K_MSG, unpack(gone))
  redis.call('ZREM', K_LEASED, unpack(gone))
  redis.call('ZREM', K_DELAYED, unpack(gone))
  redis.call('HINCRBY', K_META, 'bytes', -bytes)
  forget_ages(K_AGE, K_AGE_COUNT, ages)
end
redis.call('HDEL', K_ORIGIN, unpack(ids))
return {1, #gone}
