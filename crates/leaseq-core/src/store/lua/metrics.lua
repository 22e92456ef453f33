-- Exact backlog figures of one queue, how much of it is leased or delayed, and how its
-- message groups are served.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)
-- Returns: {NOT_FOUND} or
--   {OK, backlog_count, backlog_bytes, oldest_timestamp_ms, inflight_count, delayed_count,
--    visible groups, when the head of the group waiting longest became visible (0: none)}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local b = backlog()
local inflight = redis.call('ZCARD', K_LEASED)
local after_now = '(' .. ARGV[2]
local delayed = redis.call('ZCOUNT', K_DUE, after_now, '+inf')
local visible_groups, oldest_head = 0, 0
if groups().on then
  -- A held group's head is delayed; its place is in the past, so it is counted once.
  delayed = delayed + redis.call('ZCOUNT', K_GROUP_DUE, after_now, '+inf')
    + redis.call('ZCOUNT', K_GROUP_HOLD, after_now, '+inf')
  visible_groups = redis.call('ZCARD', K_ROTATION)
  if redis.call('ZSCORE', K_ROTATION, '') then visible_groups = visible_groups - 1 end
  -- The front of the rotation has waited longest for its turn; the ungrouped lane is
  -- not a group.
  for _, lane in ipairs(redis.call('ZRANGE', K_ROTATION, 0, 1)) do
    if lane ~= '' then
      oldest_head = math.max(lane_head(lane) or 0,
        tonumber(redis.call('ZSCORE', K_GROUP_HOLD, lane) or '0'))
      break
    end
  end
end
return {OK, b[1], b[2], b[3], inflight, delayed, visible_groups, oldest_head}
