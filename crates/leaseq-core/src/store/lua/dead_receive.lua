-- Stores messages moved from another queue (dead letters, or a redrive back), once
-- each: an id already here is skipped, so repeating a move interrupted by a crash
-- duplicates nothing. Deliveries start over.
-- KEYS: the receiving queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)
-- ARGV[2]: the queue they come from, remembered for a later redrive ('' = don't)
-- ARGV[3]: now (ms)
-- ARGV[4..]: id, record pairs (records as the other queue held them)
-- Returns: {NOT_FOUND} or {OK, messages stored}

local meta = redis.call('HMGET', K_META, 'account', 'waiting')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
local records, due, grouped, ages, bytes = {}, {}, {}, {}, 0
local origins = {}
local now = tonumber(ARGV[3])
-- Leases of the message's earlier lives (here or elsewhere) are numbered below this, so
-- they cannot ack it now (ack.lua).
local entry = redis.call('HINCRBY', K_META, 'lease_seq', 1)
local ids = {}
for i = 4, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local held = {}
if #ids > 0 then held = redis.call('HMGET', K_MSG, unpack(ids)) end
local seen = {}
for n, id in ipairs(ids) do
  local rec = ARGV[3 + 2 * n]
  if not held[n] and not seen[id] then
    seen[id] = true
    -- Keeps id, content type, timestamp, group and body; deliveries start over here.
    local ct, ts, _, _, offset, _, group = parse_record(rec)
    local body = string.sub(rec, offset)
    records[#records + 1] = id
    records[#records + 1] = record(ct, ts, 0, 0, entry, body, group)
    if group then
      grouped[#grouped + 1] = ARGV[3]
      grouped[#grouped + 1] = id
      grouped[#grouped + 1] = group
    else
      due[#due + 1] = ARGV[3]
      due[#due + 1] = id
    end
    if ARGV[2] ~= '' then
      origins[#origins + 1] = id
      origins[#origins + 1] = ARGV[2]
    end
    ages[ts] = (ages[ts] or '') .. id
    bytes = bytes + #body
  end
end
if #origins > 0 then redis.call('HSET', K_ORIGIN, unpack(origins)) end
local stored = #due / 2 + #grouped / 3
if stored > 0 then
  redis.call('HSET', K_MSG, unpack(records))
  if #grouped > 0 then enable_groups() end
  make_due(due, grouped, now)
  announce_due(stored, meta[2], now)
  redis.call('HINCRBY', K_META, 'bytes', bytes)
  for ts, packed in pairs(ages) do
    remember_ages(ts, packed)
  end
end
return {OK, stored}
