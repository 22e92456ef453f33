-- Deletes a queue and every message in it.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)
-- Returns: {NOT_FOUND} or {OK, queue_name}

local meta = redis.call('HMGET', K_META, 'account', 'name')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
-- UNLINK frees large message hashes in the background instead of blocking Redis.
for _, lid in ipairs(redis.call('HKEYS', K_LISTENERS)) do
  redis.call('UNLINK', lane_key(lid, LANE_DUE), lane_key(lid, LANE_ATTEMPTS),
    lane_key(lid, LANE_LOG), lane_key(lid, LANE_DEAD))
end
redis.call('UNLINK', unpack(KEYS))
return {OK, meta[2]}
