-- Claims queues due for a retention sweep, so that several broker processes sweeping
-- at once never take the same queue: each claimed entry is pushed `hold_ms` into the
-- future, and comes due again then if its claimer dies before rescheduling it.
-- KEYS[1]: the sweep schedule zset (queue id -> when to visit, ms)
-- ARGV[1]: now (ms)   ARGV[2]: most queues to claim   ARGV[3]: hold_ms
-- Returns: the claimed queue ids

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local hold = tonumber(ARGV[1]) + tonumber(ARGV[3])
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], hold, id)
end
return due
