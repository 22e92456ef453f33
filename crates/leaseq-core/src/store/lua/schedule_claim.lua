-- Claims entries due in a schedule (the retention sweep's queues, the delivery workers'
-- listener lanes), so that several broker processes working at once never take the
-- same entry: each claimed entry is pushed `hold_ms` into the future, and comes due
-- again then if its claimer dies before rescheduling it.
-- KEYS: K_SCHEDULE, the schedule zset (entry -> when to visit, ms)
-- ARGV[1]: now (ms)   ARGV[2]: most entries to claim   ARGV[3]: hold_ms
-- Returns: {OK, entry, ...} the claimed entries

local due = redis.call('ZRANGEBYSCORE', K_SCHEDULE, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local hold = tonumber(ARGV[1]) + tonumber(ARGV[3])
local out = {OK}
for _, id in ipairs(due) do
  redis.call('ZADD', K_SCHEDULE, hold, id)
  out[#out + 1] = id
end
return out
