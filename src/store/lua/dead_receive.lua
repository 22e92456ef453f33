-- Stores messages moved from another queue (dead letters, or a redrive back), once
-- each: an id already here is skipped, so repeating a move interrupted by a crash
-- duplicates nothing. Deliveries start over.
-- KEYS: the receiving queue's keys in QueueKeys::all order; see lib.lua.
-- ARGV[1]: access (see may_access in lib.lua)
-- ARGV[2]: the queue they come from, remembered for a later redrive ('' = don't)
-- ARGV[3..]: id, record pairs (records as the other queue held them)
-- Returns: {NOT_FOUND} or {OK, messages stored}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local records, ready, ages, ages_ids, bytes = {}, {}, {}, {}, 0
local origins = {}
-- Leases of the message's earlier lives (here or elsewhere) are numbered below this, so
-- they cannot ack it now (ack.lua).
local entry = redis.call('HINCRBY', K_META, 'lease_seq', 1)
for i = 3, #ARGV, 2 do
  local id, rec = ARGV[i], ARGV[i + 1]
  if redis.call('HEXISTS', K_MSG, id) == 0 then
    -- Keeps id, content type, timestamp and body; deliveries start over here.
    local ct, ts, _, _, offset = parse_record(rec)
    local body = string.sub(rec, offset)
    records[#records + 1] = id
    records[#records + 1] = record(ct, ts, 0, 0, entry, body)
    ready[#ready + 1] = id
    if ARGV[2] ~= '' then
      origins[#origins + 1] = id
      origins[#origins + 1] = ARGV[2]
    end
    ages[ts] = (ages[ts] or 0) + 1
    ages_ids[ts] = (ages_ids[ts] or '') .. id
    bytes = bytes + #body
  end
end
if #origins > 0 then redis.call('HSET', K_ORIGIN, unpack(origins)) end
if #ready > 0 then
  redis.call('HSET', K_MSG, unpack(records))
  redis.call('RPUSH', K_READY, unpack(ready))
  announce_ready(#ready)
  redis.call('HINCRBY', K_META, 'bytes', bytes)
  for ts, n in pairs(ages) do
    remember_ages(ts, ages_ids[ts], n)
  end
end
return {OK, #ready}
