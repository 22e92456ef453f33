-- Moves a queue written by layout 1 (before the `due` index) onto layout 2, one bounded
-- step per call, while the queue stays in service: layout 2 scripts never read the
-- layout 1 keys, so until a message is moved it is only invisible, never lost or
-- doubled, and every step is safe to repeat.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: now (ms)   ARGV[2]: most ids (or age buckets) handled per call
-- Returns: {NOT_FOUND}, {OK, 1} when the queue is on layout 2, or {OK, 0} when more
--          steps are needed.

local meta = redis.call('HMGET', K_META, 'account', 'layout', 'migrate_age')
if not meta[1] then return {NOT_FOUND} end
if meta[2] == LAYOUT then return {OK, 1} end
local now, most = tonumber(ARGV[1]), tonumber(ARGV[2])

-- Adds `scored` ({score, id, …}) to K_DUE, but only messages that still exist and are
-- neither leased nor already due.
local function move_into_due(scored)
  if #scored == 0 then return end
  local ids = {}
  for i = 2, #scored, 2 do ids[#ids + 1] = scored[i] end
  local records = redis.call('HMGET', K_MSG, unpack(ids))
  local leased = redis.call('ZMSCORE', K_LEASED, unpack(ids))
  local due = redis.call('ZMSCORE', K_DUE, unpack(ids))
  local add, seen = {}, {}
  for i, id in ipairs(ids) do
    if records[i] and not leased[i] and not due[i] and not seen[id] then
      seen[id] = true
      add[#add + 1] = scored[2 * i - 1]
      add[#add + 1] = id
    end
  end
  if #add > 0 then redis.call('ZADD', K_DUE, unpack(add)) end
end

-- 1. The ready list, oldest first: visible now. Ids of deleted messages, and repeats,
--    are dropped on the way (layout 1 left them there).
local ready = redis.call('LPOP', K_LEGACY_READY, most)
if ready then
  local scored = {}
  for _, id in ipairs(ready) do
    scored[#scored + 1] = now
    scored[#scored + 1] = id
  end
  move_into_due(scored)
  return {OK, 0}
end

-- 2. Delayed messages keep when they become visible.
local delayed = redis.call('ZRANGE', K_LEGACY_DELAYED, 0, most - 1, 'WITHSCORES')
if #delayed > 0 then
  local scored, ids = {}, {}
  for i = 1, #delayed, 2 do
    scored[#scored + 1] = delayed[i + 1]
    scored[#scored + 1] = delayed[i]
    ids[#ids + 1] = delayed[i]
  end
  move_into_due(scored)
  redis.call('ZREM', K_LEGACY_DELAYED, unpack(ids))
  return {OK, 0}
end

-- 3. Age buckets kept the ids of acked messages: keep only live ones, from the oldest
--    bucket on (meta.migrate_age: the last bucket cleaned).
local after = meta[3] or '-inf'
if after ~= '-inf' then after = '(' .. after end
local buckets = redis.call('ZRANGEBYSCORE', K_AGE, after, '+inf', 'LIMIT', 0, most)
if #buckets > 0 then
  for _, ts in ipairs(buckets) do
    local ids = bucket_ids(ts)
    local records = {}
    if #ids > 0 then records = redis.call('HMGET', K_MSG, unpack(ids)) end
    local kept, seen = {}, {}
    for i, id in ipairs(ids) do
      if records[i] and not seen[id] then
        seen[id] = true
        kept[#kept + 1] = id
      end
    end
    store_bucket(ts, kept)
  end
  redis.call('HSET', K_META, 'migrate_age', buckets[#buckets])
  return {OK, 0}
end

redis.call('DEL', K_LEGACY_AGE_COUNT)
redis.call('HDEL', K_META, 'migrate_age')
redis.call('HSET', K_META, 'layout', LAYOUT)
return {OK, 1}
