-- Reads listeners: one (ARGV[2]) or all, with how many messages each lane holds, and
-- for one, its delivery log.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: listener id ('' = all)
-- ARGV[3]: most log entries (0 = none)
-- Returns: {NOT_FOUND}, {ABSENT} (no such listener), or
--          {OK, id1, record1, backlog1, log1, ...} where log is an array of entries,
--          newest first
if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local ids = {ARGV[2]}
if ARGV[2] == '' then ids = redis.call('HKEYS', K_LISTENERS) end
local out = {OK}
local most_log = tonumber(ARGV[3])
for _, lid in ipairs(ids) do
  local rec = redis.call('HGET', K_LISTENERS, lid)
  if not rec then
    if ARGV[2] ~= '' then return {ABSENT} end
  else
    local log = {}
    if most_log > 0 then log = redis.call('LRANGE', lane_key(lid, LANE_LOG), 0, most_log - 1) end
    out[#out + 1] = lid
    out[#out + 1] = rec
    out[#out + 1] = redis.call('ZCARD', lane_key(lid, LANE_DUE))
    out[#out + 1] = log
  end
end
return out
