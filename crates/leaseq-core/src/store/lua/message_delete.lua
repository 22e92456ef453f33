-- Deletes messages by id, whatever their state (and from every listener's lane).
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)   ARGV[3..]: message ids
-- Returns: {NOT_FOUND} or {OK, status per id: OK deleted, ABSENT no such message}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local ids = {unpack(ARGV, 3)}
local out = {OK}
if #ids == 0 then return out end
local records = redis.call('HMGET', K_MSG, unpack(ids))
local live, live_records, seen = {}, {}, {}
for i, id in ipairs(ids) do
  if records[i] and not seen[id] then
    seen[id] = true
    live[#live + 1] = id
    live_records[#live_records + 1] = records[i]
    out[#out + 1] = OK
  else
    out[#out + 1] = ABSENT
  end
end
delete_messages(live, live_records, false, tonumber(ARGV[2]))
return out
