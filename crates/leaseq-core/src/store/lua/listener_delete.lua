-- Removes a listener: it stops at once (no claim or push reaches its lane again), and
-- its lane is emptied a bounded step at a time: each call lets go of up to ARGV[3]
-- messages (those no other lane holds are deleted) and says whether more remain.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: listener id   ARGV[3]: step
-- Returns: {NOT_FOUND}, {ABSENT} (no such listener, and nothing left of its lane), or
--          {OK, more (1: call again)}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local lid = ARGV[2]
local lane = lane_key(lid, LANE_DUE)
if redis.call('HDEL', K_LISTENERS, lid) == 1 then
  redis.call('HSET', K_META, 'listeners', redis.call('HLEN', K_LISTENERS))
elseif redis.call('EXISTS', lane) == 0 then
  return {ABSENT}
end
local ids = redis.call('ZRANGE', lane, 0, tonumber(ARGV[3]) - 1)
if #ids > 0 then
  release(ids, redis.call('HMGET', K_MSG, unpack(ids)), lid)
end
if redis.call('EXISTS', lane) == 1 then return {OK, 1} end
redis.call('UNLINK', lane_key(lid, LANE_ATTEMPTS), lane_key(lid, LANE_LOG),
  lane_key(lid, LANE_DEAD))
return {OK, 0}
