-- Stores a batch of messages atomically.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)
-- ARGV[3], ARGV[4]: the deployment's backlog quota, messages and bytes (0 = none); the
--            queue's own max_messages / max_bytes may lower them
-- ARGV[5..]: per message, 7 values: id, delay in ms (-1 = queue's delivery_delay),
--            body size in bytes, record, dedup id ('' = none), name ('' = none),
--            group ('' = none; the record carries it too)
-- Returns: {NOT_FOUND}, {BACKLOG_FULL, most messages, most bytes} when the new messages
--          would pass the quota (nothing is stored), or
--          {OK, backlog_count, backlog_bytes, oldest_timestamp_ms, listener id, ...}
--          naming the listeners whose lanes received messages.
-- A message whose dedup id was pushed within the queue's dedup window (or earlier in
-- the same batch) is accepted and not stored again.
-- Fan-out: with listeners, each message also enters every listener's lane (the body is
-- stored once; K_REFS counts its lanes). A queue with listeners and no consumer is
-- consumed by push only: its messages enter no pull lane.

local meta = redis.call('HMGET', K_META, 'account', 'delivery_delay', 'dedup_window',
  'max_messages', 'max_bytes', 'bytes', 'pushed', 'waiting', 'listeners', 'c_id', 'grouped',
  'group_max_inflight', 'counted_after', 'round')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
know_groups(meta[11], meta[12], meta[13], meta[14])
-- Messages held before this push: for the quota and the reply's backlog count.
local held = redis.call('HLEN', K_MSG)
local default_delay = tonumber(meta[2] or DEFAULT_DELIVERY_DELAY) * 1000
local now = tonumber(ARGV[2])
local dedup_until = now + tonumber(meta[3] or DEFAULT_DEDUP_WINDOW) * 1000

local records, due, grouped, remembered, seen, names = {}, {}, {}, {}, {}, {}
-- Grouped messages visible at once, and their groups.
local visible_ids, visible_groups = {}, {}
local visible_now = 0
local bytes, pruned = 0, false
for i = 5, #ARGV, 7 do
  local id, dedup_id = ARGV[i], ARGV[i + 4]
  local repeated = false
  if dedup_id ~= '' then
    if not pruned then
      -- Forget dedup ids whose window has passed: O(expired).
      redis.call('ZREMRANGEBYSCORE', K_DEDUP, '-inf', now)
      pruned = true
    end
    repeated = seen[dedup_id] or redis.call('ZSCORE', K_DEDUP, dedup_id) ~= false
    seen[dedup_id] = true
    if not repeated then
      remembered[#remembered + 1] = dedup_until
      remembered[#remembered + 1] = dedup_id
    end
  end
  if not repeated then
    local delay = tonumber(ARGV[i + 1])
    if delay < 0 then delay = default_delay end
    bytes = bytes + tonumber(ARGV[i + 2])
    records[#records + 1] = id
    records[#records + 1] = ARGV[i + 3]
    if ARGV[i + 5] ~= '' then
      names[#names + 1] = id
      names[#names + 1] = ARGV[i + 5]
    end
    if delay <= 0 then
      delay = 0
      visible_now = visible_now + 1
    end
    -- Scores as text: Redis would format each Lua number with printf otherwise.
    local at = ARGV[2]
    if delay > 0 then at = int(now + delay) end
    local group = ARGV[i + 6]
    if group == '' then
      due[#due + 1] = at
      due[#due + 1] = id
    elseif delay == 0 then
      visible_ids[#visible_ids + 1] = id
      visible_groups[#visible_groups + 1] = group
    else
      grouped[#grouped + 1] = at
      grouped[#grouped + 1] = id
      grouped[#grouped + 1] = group
    end
  end
end

-- The quota: the queue's own when it is stricter, else the deployment's (0 = none).
local function quota(own, deployment)
  own, deployment = tonumber(own or '0'), tonumber(deployment)
  if own > 0 and (deployment == 0 or own < deployment) then return own end
  return deployment
end
if #records > 0 then
  local most_messages, most_bytes = quota(meta[4], ARGV[3]), quota(meta[5], ARGV[4])
  if (most_messages > 0 and held + #records / 2 > most_messages)
    or (most_bytes > 0 and tonumber(meta[6] or '0') + bytes > most_bytes) then
    return {BACKLOG_FULL, most_messages, most_bytes}
  end
end

local listeners = {}
if tonumber(meta[9] or '0') > 0 then listeners = redis.call('HKEYS', K_LISTENERS) end
local pull_lane = #listeners == 0 or meta[10] ~= false
if #records > 0 then
  redis.call('HSET', K_MSG, unpack(records))
  if #names > 0 then redis.call('HSET', K_NAMES, unpack(names)) end
  -- Every message of the batch has timestamp `now`: one index entry for all of them.
  -- ARGV[2] is the exact text the records carry as their timestamp.
  local ids = {}
  for i = 1, #records, 2 do ids[#ids + 1] = records[i] end
  remember_ages(ARGV[2], table.concat(ids))
  if pull_lane then
    if #grouped > 0 or #visible_ids > 0 then enable_groups() end
    make_due(due, grouped, now)
    make_visible(visible_ids, visible_groups, now)
  end
  if #listeners > 0 then
    -- Listener lanes know no groups: every message is due there as it is here.
    local all = due
    if #grouped > 0 or #visible_ids > 0 then
      all = {unpack(due)}
      for k = 1, #grouped, 3 do
        all[#all + 1] = grouped[k]
        all[#all + 1] = grouped[k + 1]
      end
      for _, id in ipairs(visible_ids) do
        all[#all + 1] = ARGV[2]
        all[#all + 1] = id
      end
    end
    for _, lid in ipairs(listeners) do redis.call('ZADD', lane_key(lid, LANE_DUE), unpack(all)) end
    local lanes, refs = #listeners + (pull_lane and 1 or 0), {}
    for _, id in ipairs(ids) do
      refs[#refs + 1] = id
      refs[#refs + 1] = lanes
    end
    redis.call('HSET', K_REFS, unpack(refs))
  end
  redis.call('HSET', K_META, 'bytes', int(tonumber(meta[6] or '0') + bytes),
    'pushed', int(tonumber(meta[7] or '0') + #ids))
end
if #remembered > 0 then redis.call('ZADD', K_DEDUP, unpack(remembered)) end
if pull_lane then announce_due(visible_now, meta[8], now) end

local b = backlog(tonumber(meta[6] or '0') + bytes, held + #records / 2)
local out = {OK, b[1], b[2], b[3]}
if #records > 0 then
  for _, lid in ipairs(listeners) do out[#out + 1] = lid end
end
return out
