-- Deletes redriven messages from the dead-letter queue once their source holds them.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2..]: ids
-- Returns: {NOT_FOUND} or {OK, messages deleted}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return {OK, 0} end
local gone = delete_live(ids)
redis.call('HDEL', K_ORIGIN, unpack(ids))
return {OK, gone}
