-- Updates a queue's metadata fields, if the queue belongs to the account.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2..]: field, value pairs
-- Returns: {NOT_FOUND} or {OK, field1, value1, ...} (the whole hash after the update)

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
if #ARGV > 1 then
  local cap_before = tonumber(redis.call('HGET', K_META, 'group_max_inflight') or '0')
  redis.call('HSET', K_META, unpack(ARGV, 2))
  local cap = tonumber(redis.call('HGET', K_META, 'group_max_inflight') or '0')
  if (cap_before == 0) ~= (cap == 0) then
    -- Leases are counted only under a cap (counted in lib.lua): a new cap counts the
    -- leases made from now on, and without one the counts go.
    redis.call('UNLINK', K_GROUP_INFLIGHT)
    redis.call('HSET', K_META, 'counted_after', redis.call('HGET', K_META, 'lease_seq') or '0')
  end
  if cap ~= cap_before and redis.call('EXISTS', K_PARKED) == 1 then
    -- Parked messages waited for room under the old cap: pulls move them back, a step
    -- at a time, and park again those that still have none.
    redis.call('HSET', K_META, 'unparking', '1')
  end
end
local out = {OK}
for _, v in ipairs(redis.call('HGETALL', K_META)) do out[#out + 1] = v end
return out
