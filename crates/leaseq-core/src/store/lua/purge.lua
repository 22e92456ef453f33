-- Deletes every message of the queue: ready, delayed, leased, held by listeners, and
-- the dead-letter outboxes.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)
-- Returns: {NOT_FOUND} or {OK, messages purged}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local purged = redis.call('HLEN', K_MSG)
-- UNLINK frees large hashes in the background; to readers they are gone at once.
redis.call('UNLINK', K_MSG, K_DUE, K_LEASED, K_AGE, K_AGE_IDS, K_DEAD, K_ORIGIN, K_REFS, K_NAMES,
  K_GROUP_DELAYED, K_ROUNDS, K_GROUPS, K_PARKED, K_ROUND_OF, K_GROUP_PARKED,
  K_GROUP_INFLIGHT, K_GROUP_HOLD,
  K_LEGACY_READY, K_LEGACY_DELAYED, K_LEGACY_AGE_COUNT)
-- With no message left, the queue starts over without groups.
redis.call('HDEL', K_META, 'grouped', 'round', 'groups_swept', 'counted_after', 'unparking')
for _, lid in ipairs(redis.call('HKEYS', K_LISTENERS)) do
  redis.call('UNLINK', lane_key(lid, LANE_DUE), lane_key(lid, LANE_ATTEMPTS),
    lane_key(lid, LANE_DEAD))
end
redis.call('HSET', K_META, 'bytes', 0, 'purged_ms', ARGV[2], 'modified_ms', ARGV[2])
redis.call('HINCRBY', K_META, 'purged', purged)
return {OK, purged}
