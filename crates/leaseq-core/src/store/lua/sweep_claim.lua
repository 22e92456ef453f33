-- Claims queues due for a retention sweep, so that several broker processes sweeping
-- at once never take the same queue: each claimed entry is pushed `hold_ms` into the
-- future, and comes due again then if its claimer dies before rescheduling it.
-- KEYS: K_SCHEDULE, the sweep schedule zset (queue id -> when to visit, ms)
-- ARGV[1]: now (ms)   ARGV[2]: most queues to claim   ARGV[3]: hold_ms
-- Returns: {OK, queue id, ...} the claimed queues

local due = redis.call('ZRANGEBYSCORE', K_SCHEDULE, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local hold = tonumber(ARGV[1]) + tonumber(ARGV[3])
local out = {OK}
for _, id in ipairs(due) do
  redis.call('ZADD', K_SCHEDULE, hold, id)
  out[#out + 1] = id
end
return out
