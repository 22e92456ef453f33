-- Reads the dead-letter outbox: messages buried here, waiting to be copied to the
-- consumer's dead-letter queue.
-- KEYS: the queue's keys in QueueKeys::all order; see lib.lua.
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: most entries to return
-- Returns: {NOT_FOUND} or {1, dead_letter_queue_name ('' = none), id1, record1, ...}

local meta = redis.call('HMGET', K_META, 'account', 'c_dlq')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
local out = {1, meta[2] or ''}
-- One HSCAN page keeps the call bounded; the rest is read by the next transfer.
local page = redis.call('HSCAN', K_DEAD, 0, 'COUNT', tonumber(ARGV[2]))
for _, v in ipairs(page[2]) do out[#out + 1] = v end
return out
