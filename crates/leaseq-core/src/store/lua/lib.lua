-- Helpers shared by the queue scripts, after the generated prelude (store/script.rs),
-- which names the keys (K_META, K_MSG, …), the reply codes and the defaults.
--
-- Message record (a field of the `msg` hash), version 2 (see codec.rs):
--   "2<t|j><timestamp_ms>:<attempts>:<lease_generation>:<entry_generation>:<body>"
-- or, for a message of a group, version 3:
--   "3<t|j><timestamp_ms>:<attempts>:<lease_generation>:<entry_generation>:<group length>:<group><body>"
-- The header is tiny and the body is stored once, verbatim. entry_generation is the
-- queue's lease_seq when the message entered it (0 for a push), so leases from a life
-- before a dead-letter move or a redrive are recognisably older. Version 1 records
-- ("<t|j><timestamp_ms>:<attempts>:<lease_generation>:<body>") read as entry 0.
-- Returns content tag, timestamp (text), attempts, lease generation, body offset, entry
-- and group (nil: none).
local RECORD_HEADER = '^([' .. RECORD_VERSION .. GROUPED_RECORD_VERSION .. '])([tj])(%d+):(%d+):(%d+):(%d+):()'
local function parse_record(rec)
  local version, ct, ts, attempts, gen, entry, offset = string.match(rec, RECORD_HEADER)
  local group = nil
  if version == GROUPED_RECORD_VERSION then
    local len, start = string.match(rec, '^(%d+):()', offset)
    offset = start + tonumber(len)
    group = string.sub(rec, start, offset - 1)
  elseif not version then
    ct, ts, attempts, gen, offset = string.match(rec, '^([tj])(%d+):(%d+):(%d+):()')
    entry = '0'
  end
  return ct, ts, tonumber(attempts), tonumber(gen), offset, tonumber(entry), group
end

-- A version 2 record, or version 3 with a group.
local function record(ct, ts, attempts, gen, entry, body, group)
  local header = ct .. ts .. ':' .. attempts .. ':' .. gen .. ':' .. entry .. ':'
  if group then
    return GROUPED_RECORD_VERSION .. header .. #group .. ':' .. group .. body
  end
  return RECORD_VERSION .. header .. body
end

-- Indexes (store/mod.rs has the key layout). Every live message is in K_MSG, its id is
-- in the age bucket of its timestamp, and it is held by one or more lanes:
-- - the pull lane: exactly one of K_DUE (not leased: ready, or delayed until its score)
--   and K_LEASED (until its lease expires);
-- - each listener's lane, for a message pushed while the listener existed: in
--   lane_key(lid, LANE_DUE), scored by when it is next due (a claimed message, by when
--   its claim lapses), with its delivery attempts in lane_key(lid, LANE_ATTEMPTS).
-- A message held by a listener lane has an entry in K_REFS: how many lanes still hold
-- it. A lane lets go of messages through `release`; the last one deletes them, and
-- delete_messages takes them out of everything at once, so no id is ever indexed twice
-- or left behind.

-- Message groups (SPEC §13). Once a queue has held a grouped message (meta.grouped),
-- its pull lane is split into lanes that pull serves round-robin: one per group, and
-- one, named '', for the ungrouped messages. A lane's messages wait in lane order:
-- '' in K_DUE as before; a group as a range of K_LANES, entries
-- "<group>\0<place, 16 digits>\0<id>", where the place (also in K_GROUP_DUE, by id) is
-- when the message became or becomes due. Strict FIFO (group_max_inflight 1) keeps a
-- retried or expired message's place (its push time, so it stays the head) and holds
-- the group until its delay is over (K_GROUP_HOLD). A lane with messages is
-- - in K_ROTATION when its head is visible, scored by its turn (meta.rotation_seq):
--   pull serves lanes from the front and puts those it served at the back, so the
--   front is the group that has waited longest for its turn (the metrics read it);
-- - else in K_LANE_WAIT, scored by when its head becomes visible; pull moves the lanes
--   whose time has come into the rotation;
-- - in neither while its group has group_max_inflight messages leased
--   (K_GROUP_INFLIGHT): it comes back when one of those leases ends. Leases are
--   counted only under a cap, those made after it was set (meta.counted_after: the
--   lease generation then; update_queue.lua starts the count afresh).
-- Every step that changes a lane touches it, and the script then calls settle_lanes,
-- which puts each touched lane where it belongs: O(lanes touched · log N), never a
-- walk over the groups.

-- {on = grouped, cap = group_max_inflight, counted_after}, read once per script; a
-- script that reads meta anyway hands them over with know_groups.
local group_settings = nil
local function know_groups(grouped, cap, counted_after)
  group_settings = {on = grouped == '1', cap = tonumber(cap or '0'),
    counted_after = tonumber(counted_after or '0')}
end
local function groups()
  if not group_settings then
    know_groups(unpack(redis.call('HMGET', K_META, 'grouped', 'group_max_inflight',
      'counted_after')))
  end
  return group_settings
end

-- Whether a lease of generation `gen` counts against group_max_inflight.
local function counted(gen)
  return groups().cap > 0 and gen > groups().counted_after
end

-- Lanes to settle: true when the lane may have lost its head; 'kept' when it only
-- gained messages or one of its leases ended (a lane in the rotation then stays as it
-- is, and only a lane out of it needs a look).
local touched = {}
local function touch(lane) touched[lane] = true end
local function touch_kept(lane) touched[lane] = touched[lane] or 'kept' end

-- The queue holds grouped messages from now on: the ungrouped ones become lane ''.
local function enable_groups()
  if groups().on then return end
  redis.call('HSET', K_META, 'grouped', '1')
  group_settings.on = true
  touch('')
end

local function lane_entry(group, place, id)
  return group .. '\0' .. string.format('%016d', place) .. '\0' .. id
end

-- The place of a lane's head, nil when the lane is empty.
local function lane_head(lane)
  if lane == '' then
    local first = redis.call('ZRANGE', K_DUE, 0, 0, 'WITHSCORES')
    return first[2] and tonumber(first[2])
  end
  local first = redis.call('ZRANGEBYLEX', K_LANES, '[' .. lane .. '\0', '(' .. lane .. '\1',
    'LIMIT', 0, 1)
  return first[1] and tonumber(string.sub(first[1], #lane + 2, #lane + 17))
end

-- Up to `count` visible messages of `lane` after its first `skip`, in lane order: their
-- ids, their K_LANES entries (for a group) and their places.
local function lane_visible(lane, now, skip, count)
  local ids, entries, places = {}, {}, {}
  if lane == '' then
    local scored = redis.call('ZRANGEBYSCORE', K_DUE, '-inf', now, 'WITHSCORES', 'LIMIT', skip, count)
    for i = 1, #scored, 2 do
      ids[#ids + 1] = scored[i]
      places[#places + 1] = tonumber(scored[i + 1])
    end
    return ids, entries, places
  end
  entries = redis.call('ZRANGEBYLEX', K_LANES, '[' .. lane .. '\0',
    '(' .. lane .. '\0' .. string.format('%016d', now) .. '\1', 'LIMIT', skip, count)
  for i, entry in ipairs(entries) do
    ids[i] = string.sub(entry, -32)
    places[i] = tonumber(string.sub(entry, #lane + 2, #lane + 17))
  end
  return ids, entries, places
end

-- Makes messages due in the pull lane: `due` {score, id, …} ungrouped ones, `grouped`
-- {place, id, group, …} grouped ones.
local function make_due(due, grouped)
  if #due > 0 then
    redis.call('ZADD', K_DUE, unpack(due))
    if groups().on then touch_kept('') end
  end
  if #grouped == 0 then return end
  local places, entries = {}, {}
  for i = 1, #grouped, 3 do
    local place, id, group = grouped[i], grouped[i + 1], grouped[i + 2]
    places[#places + 1] = place
    places[#places + 1] = id
    entries[#entries + 1] = 0
    entries[#entries + 1] = lane_entry(group, tonumber(place), id)
    touch_kept(group)
  end
  redis.call('ZADD', K_GROUP_DUE, unpack(places))
  redis.call('ZADD', K_LANES, unpack(entries))
end

-- Adds `counts` (group -> number, negative when leases end; callers count only the
-- leases `counted` says) to K_GROUP_INFLIGHT, in three commands whatever their number.
-- Callers touch the groups: a lease that starts or ends may stop or free one.
local function count_leases(counts)
  local names = {}
  for group in pairs(counts) do names[#names + 1] = group end
  if #names == 0 then return end
  local known = redis.call('HMGET', K_GROUP_INFLIGHT, unpack(names))
  local kept, emptied = {}, {}
  for i, group in ipairs(names) do
    local n = tonumber(known[i] or '0') + counts[group]
    if n > 0 then
      kept[#kept + 1] = group
      kept[#kept + 1] = n
    else
      emptied[#emptied + 1] = group
    end
  end
  if #kept > 0 then redis.call('HSET', K_GROUP_INFLIGHT, unpack(kept)) end
  if #emptied > 0 then redis.call('HDEL', K_GROUP_INFLIGHT, unpack(emptied)) end
end

-- A lease of generation `gen` of a message of `group` ended: `ended` (group -> count,
-- for count_leases) takes it if it counted. The group is touched when the lease may
-- have kept it out of the rotation: under a cap, or when it dates from before the cap
-- last changed (a group at a cap that was then lifted waits for one of those).
local function lease_ended(ended, group, gen)
  if counted(gen) then ended[group] = (ended[group] or 0) - 1 end
  if groups().cap > 0 or gen <= groups().counted_after then touch_kept(group) end
end

-- A message that was leased (pushed at `ts`, of `group` or nil) is due again at `at`
-- (ms): appended to `due` ({score, id, …}) or `grouped` ({place, id, group, …}) for
-- make_due. Strict FIFO keeps its place (its push time, so it stays the head) and
-- holds its group in `holds` (group -> until, for store_holds) while `at` is after `now`.
local function due_again(due, grouped, holds, id, ts, group, at, now)
  if not group then
    due[#due + 1] = at
    due[#due + 1] = id
    return
  end
  local place = at
  if groups().cap == 1 then
    place = ts
    if at > now and at > (holds[group] or 0) then holds[group] = at end
  end
  grouped[#grouped + 1] = place
  grouped[#grouped + 1] = id
  grouped[#grouped + 1] = group
end

local function store_holds(holds)
  local scored = {}
  for group, at in pairs(holds) do
    scored[#scored + 1] = string.format('%d', at)
    scored[#scored + 1] = group
  end
  if #scored > 0 then redis.call('ZADD', K_GROUP_HOLD, unpack(scored)) end
end

-- Takes live messages `ids` (records given) out of the pull lane, wherever they are in
-- it: leased, due in K_DUE, or due in their group's lane.
local function leave_pull_lane(ids, records)
  if not groups().on then
    -- Each is in at most one of the two.
    if redis.call('ZREM', K_LEASED, unpack(ids)) < #ids then
      redis.call('ZREM', K_DUE, unpack(ids))
    end
    return
  end
  local plain, grouped, group_of, gens = {}, {}, {}, {}
  for i, id in ipairs(ids) do
    local _, _, _, gen, _, _, group = parse_record(records[i])
    if group then
      grouped[#grouped + 1] = id
      group_of[#grouped], gens[#grouped] = group, gen
    else
      plain[#plain + 1] = id
    end
  end
  if #plain > 0 and redis.call('ZREM', K_LEASED, unpack(plain)) < #plain
    and redis.call('ZREM', K_DUE, unpack(plain)) > 0 then
    touch('')
  end
  if #grouped == 0 then return end
  local leased = redis.call('ZMSCORE', K_LEASED, unpack(grouped))
  local places = redis.call('ZMSCORE', K_GROUP_DUE, unpack(grouped))
  local entries, ended = {}, {}
  for i, id in ipairs(grouped) do
    local group = group_of[i]
    if leased[i] then
      lease_ended(ended, group, gens[i])
    elseif places[i] then
      entries[#entries + 1] = lane_entry(group, tonumber(places[i]), id)
      touch(group)
    end
  end
  redis.call('ZREM', K_LEASED, unpack(grouped))
  redis.call('ZREM', K_GROUP_DUE, unpack(grouped))
  if #entries > 0 then redis.call('ZREM', K_LANES, unpack(entries)) end
  count_leases(ended)
end

-- Puts every touched lane where it belongs (see above). `served`: the lanes a pull
-- just served, in the order it last served them; those whose head is still visible go
-- to the back of the rotation in that order, after the lanes joining it. Without `now`
-- (a script that does not know the time) a lane in the rotation stays there, and one
-- that is not waits: the next pull moves each on if it must. `known_heads`: lane ->
-- the place of its head where the caller has just read it. Returns how many lanes
-- joined the rotation.
local function settle_lanes(now, served, known_heads)
  local lanes, kinds = {}, {}
  for lane, kind in pairs(touched) do
    lanes[#lanes + 1] = lane
    kinds[#lanes] = kind
  end
  touched = {}
  if #lanes == 0 then return 0 end
  known_heads = known_heads or {}
  local cap = groups().cap
  local placed = redis.call('ZMSCORE', K_ROTATION, unpack(lanes))
  local joining, staying, due_at, look = {}, {}, {}, {}
  for i, lane in ipairs(lanes) do
    if placed[i] and kinds[i] == 'kept' then
      -- Still visible, head unchanged.
      staying[lane] = true
    else
      look[#look + 1] = i
    end
  end
  local gone, unplaced, unwait, unhold, waits = {}, {}, {}, {}, {}
  if #look > 0 then
    local names, unknown = {}, {}
    for k, i in ipairs(look) do
      names[k] = lanes[i]
      if not known_heads[lanes[i]] then unknown[#unknown + 1] = lanes[i] end
    end
    local inflight = {}
    if cap > 0 then inflight = redis.call('HMGET', K_GROUP_INFLIGHT, unpack(names)) end
    -- A lane whose head the caller just read in the rotation has no hold left.
    local holds = {}
    if #unknown > 0 then
      local scores = redis.call('ZMSCORE', K_GROUP_HOLD, unpack(unknown))
      for k, lane in ipairs(unknown) do holds[lane] = scores[k] end
    end
    for k, i in ipairs(look) do
      local lane = lanes[i]
      local hold = holds[lane]
      local blocked = lane ~= '' and cap > 0 and tonumber(inflight[k] or '0') >= cap
      local head = nil
      if not blocked then head = known_heads[lane] or lane_head(lane) end
      if blocked or not head then
        gone[#gone + 1] = lane
        if not blocked and hold then unhold[#unhold + 1] = lane end
      else
        local at = math.max(head, tonumber(hold or '0'))
        local visible = now and at <= now
        if placed[i] and (visible or not now) then
          staying[lane] = true
        elseif visible then
          joining[#joining + 1] = lane
          due_at[lane] = at
          unwait[#unwait + 1] = lane
          if hold then unhold[#unhold + 1] = lane end
        else
          if placed[i] then unplaced[#unplaced + 1] = lane end
          waits[#waits + 1] = at
          waits[#waits + 1] = lane
        end
      end
    end
  end
  if #gone > 0 then
    redis.call('ZREM', K_ROTATION, unpack(gone))
    redis.call('ZREM', K_LANE_WAIT, unpack(gone))
  end
  if #unplaced > 0 then redis.call('ZREM', K_ROTATION, unpack(unplaced)) end
  if #unwait > 0 then redis.call('ZREM', K_LANE_WAIT, unpack(unwait)) end
  if #unhold > 0 then redis.call('ZREM', K_GROUP_HOLD, unpack(unhold)) end
  if #waits > 0 then redis.call('ZADD', K_LANE_WAIT, unpack(waits)) end
  -- Lanes join in the order their heads became visible (then by name, so the order
  -- does not depend on Lua's table order), then the lanes just served.
  table.sort(joining, function(a, b)
    if due_at[a] ~= due_at[b] then return due_at[a] < due_at[b] end
    return a < b
  end)
  local back = joining
  for _, lane in ipairs(served or {}) do
    if staying[lane] then back[#back + 1] = lane end
  end
  if #back > 0 then
    local last = redis.call('HINCRBY', K_META, 'rotation_seq', #back)
    local turns = {}
    for k, lane in ipairs(back) do
      turns[#turns + 1] = last - #back + k
      turns[#turns + 1] = lane
    end
    redis.call('ZADD', K_ROTATION, unpack(turns))
  end
  return #joining
end

-- Lanes whose head has become visible (at most `limit`, earliest first) are touched, so
-- the next settle_lanes(now) moves them into the rotation.
local function promote_lanes(now, limit)
  for _, lane in ipairs(redis.call('ZRANGEBYSCORE', K_LANE_WAIT, '-inf', now, 'LIMIT', 0, limit)) do
    touch(lane)
  end
end

-- Chooses up to `batch` visible messages, at most `budget` record bytes (but always
-- one), round-robin over the lanes at the front of the rotation: one message of each
-- lane per round, in rotation order; a lane drops out of the rounds when it has no more
-- visible messages or no more room under group_max_inflight. Each pass asks every lane
-- still in for an equal share of what is missing (and one more, to learn what follows
-- it), and a lane stays in only if it gave its whole share, so the reads are O(batch)
-- entries in O(batch) commands whatever the number of groups. Returns the chosen ids
-- and records, each one's K_LANES entry (false: ungrouped), the lanes served in the
-- order each was last served, and, where a read showed it, the place of each lane's
-- next head (for settle_lanes). Every lane looked at is touched.
local function select_round_robin(now, batch, budget)
  local lanes = redis.call('ZRANGE', K_ROTATION, 0, batch - 1)
  if #lanes == 0 then return {}, {}, {}, {}, {} end
  local cap = groups().cap
  local inflight = {}
  if cap > 0 then inflight = redis.call('HMGET', K_GROUP_INFLIGHT, unpack(lanes)) end
  local room, picked, entries, places, beyond, open = {}, {}, {}, {}, {}, {}
  for i, lane in ipairs(lanes) do
    touch(lane)
    room[i] = batch
    if cap > 0 and lane ~= '' then
      room[i] = math.min(batch, cap - tonumber(inflight[i] or '0'))
    end
    picked[i], entries[i], places[i] = {}, {}, {}
    if room[i] > 0 then open[#open + 1] = i end
  end
  local total, rounds = 0, 0
  while total < batch and #open > 0 do
    local share = math.ceil((batch - total) / #open)
    local still = {}
    for _, i in ipairs(open) do
      local want = math.min(share, room[i] - #picked[i])
      local ids, found, at = lane_visible(lanes[i], now, #picked[i], want + 1)
      for k = 1, math.min(#ids, want) do
        local n = #picked[i] + 1
        picked[i][n], entries[i][n], places[i][n] = ids[k], found[k] or false, at[k]
      end
      -- The visible message after these, if any.
      beyond[i] = at[want + 1]
      total = total + math.min(#ids, want)
      rounds = math.max(rounds, #picked[i])
      if #ids > want and #picked[i] < room[i] then still[#still + 1] = i end
    end
    open = still
  end
  -- Round by round, within a round in rotation order.
  local order = {}
  for k = 1, rounds do
    for i = 1, #lanes do
      if picked[i][k] then order[#order + 1] = {i, k} end
    end
  end
  if #order == 0 then return {}, {}, {}, {}, {} end
  local wanted = {}
  for n = 1, math.min(#order, batch) do wanted[n] = picked[order[n][1]][order[n][2]] end
  local found = redis.call('HMGET', K_MSG, unpack(wanted))
  local ids, records, entry_of, last, taken = {}, {}, {}, {}, {}
  local size = 0
  for n, id in ipairs(wanted) do
    if #ids > 0 and size + #found[n] > budget then break end
    local i, k = order[n][1], order[n][2]
    ids[n], records[n], entry_of[n] = id, found[n], entries[i][k]
    last[i], taken[i] = n, k
    size = size + #found[n]
  end
  local served, next_heads = {}, {}
  for i = 1, #lanes do
    if last[i] then served[#served + 1] = i end
    -- Lane order is place order, so the next head is the first message not taken.
    next_heads[lanes[i]] = places[i][(taken[i] or 0) + 1] or beyond[i]
  end
  table.sort(served, function(a, b) return last[a] < last[b] end)
  for n, i in ipairs(served) do served[n] = lanes[i] end
  return ids, records, entry_of, served, next_heads
end

-- Whether any message of the queue has a listener lane (K_REFS exists), asked of Redis
-- once per script: ack, burial and deletion all need it, and while the queue has never
-- had listeners it saves them every listener-lane step. Only push creates K_REFS, and
-- it asks nothing after; a stale "yes" costs at most a no-op command.
local refs_known, refs_exist = false, false
local function any_refs()
  if not refs_known then
    refs_exist, refs_known = redis.call('EXISTS', K_REFS) == 1, true
  end
  return refs_exist
end

-- A whole number as Redis reads one: Lua's own formatting of a large number can be
-- "1e+15", which HINCRBY and friends refuse.
local function int(n)
  return string.format('%d', n)
end

-- Exact backlog figures: {count, bytes, oldest_timestamp_ms}. `bytes` and `count`, when
-- the caller knows them, save reading them again.
local function backlog(bytes, count)
  count = count or redis.call('HLEN', K_MSG)
  bytes = bytes or tonumber(redis.call('HGET', K_META, 'bytes') or '0')
  local oldest = 0
  local first = redis.call('ZRANGE', K_AGE, 0, 0, 'WITHSCORES')
  if first[2] then oldest = tonumber(first[2]) end
  return {count, bytes, oldest}
end

-- The age index: K_AGE holds each distinct timestamp of live messages, scored by
-- itself (the oldest is its head); K_AGE_IDS maps each to exactly the ids of the live
-- messages carrying it, 32 characters each, concatenated, so retention finds what
-- expires without scanning the queue. A bucket holds the messages pushed in one
-- millisecond, so editing it costs about a batch.
local function remember_ages(ts, ids)
  redis.call('ZADD', K_AGE, ts, ts)
  local known = redis.call('HGET', K_AGE_IDS, ts)
  redis.call('HSET', K_AGE_IDS, ts, (known or '') .. ids)
end

-- The ids in the age bucket of timestamp `ts`.
local function bucket_ids(ts)
  local packed = redis.call('HGET', K_AGE_IDS, ts) or ''
  local ids = {}
  for i = 1, #packed, 32 do ids[#ids + 1] = string.sub(packed, i, i + 31) end
  return ids
end

-- Makes the age bucket of `ts` hold exactly `ids`; an empty one leaves the index.
local function store_bucket(ts, ids)
  if #ids == 0 then
    redis.call('HDEL', K_AGE_IDS, ts)
    redis.call('ZREM', K_AGE, ts)
  else
    redis.call('HSET', K_AGE_IDS, ts, table.concat(ids))
  end
end

-- Removes ids from their age buckets; `gone` maps timestamp -> set of ids.
local function forget_ages(gone)
  for ts, ids in pairs(gone) do
    local kept = {}
    for _, id in ipairs(bucket_ids(ts)) do
      if not ids[id] then kept[#kept + 1] = id end
    end
    store_bucket(ts, kept)
  end
end

-- Deletes live messages `ids` (whose `records` are given) from every index. Returns the
-- bytes of their bodies; with `keep_bytes` the caller takes them off meta.bytes itself
-- (folded into its own write of meta), else this does.
local function delete_messages(ids, records, keep_bytes)
  if #ids == 0 then return 0 end
  -- Listener lanes may hold them too (a message some lane still holds has a K_REFS
  -- entry; HDEL tells whether any of these did).
  if any_refs() and redis.call('HDEL', K_REFS, unpack(ids)) > 0 then
    for _, lid in ipairs(redis.call('HKEYS', K_LISTENERS)) do
      redis.call('ZREM', lane_key(lid, LANE_DUE), unpack(ids))
      redis.call('HDEL', lane_key(lid, LANE_ATTEMPTS), unpack(ids))
    end
  end
  local bytes, ages, reentered = 0, {}, false
  for i, id in ipairs(ids) do
    local _, ts, _, _, offset, entry = parse_record(records[i])
    bytes = bytes + #records[i] - offset + 1
    ages[ts] = ages[ts] or {}
    ages[ts][id] = true
    reentered = reentered or entry > 0
  end
  leave_pull_lane(ids, records)
  redis.call('HDEL', K_MSG, unpack(ids))
  redis.call('HDEL', K_NAMES, unpack(ids))
  -- Only a message that came from another queue can have an origin.
  if reentered then redis.call('HDEL', K_ORIGIN, unpack(ids)) end
  -- Not when it is 0: Lua's -0 reaches Redis as "-0", which HINCRBY refuses.
  if bytes > 0 and not keep_bytes then redis.call('HINCRBY', K_META, 'bytes', -bytes) end
  forget_ages(ages)
  return bytes
end

-- Deletes those of `ids` that are still live messages; returns how many were.
local function delete_live(ids)
  if #ids == 0 then return 0 end
  local records = redis.call('HMGET', K_MSG, unpack(ids))
  local live, live_records = {}, {}
  for i, id in ipairs(ids) do
    if records[i] then
      live[#live + 1] = id
      live_records[#live_records + 1] = records[i]
    end
  end
  delete_messages(live, live_records)
  return #live
end

-- Lane `lid` (nil: the pull lane) lets go of messages `ids`, whose `records` are given
-- (false: already gone). Those no other lane holds are deleted; the others only leave
-- this lane. Returns the bytes deleted (taken off meta.bytes unless `keep_bytes`).
local function release(ids, records, lid, keep_bytes)
  if #ids == 0 then return 0 end
  -- Without K_REFS no message has a listener lane: the pull lane is the only one.
  local counts = {}
  if lid or any_refs() then
    counts = redis.call('HMGET', K_REFS, unpack(ids))
  end
  local gone, gone_records, held, held_records = {}, {}, {}, {}
  for i, id in ipairs(ids) do
    local n = tonumber(counts[i] or '1')
    if n > 1 then
      redis.call('HSET', K_REFS, id, n - 1)
      if records[i] then
        held[#held + 1] = id
        held_records[#held_records + 1] = records[i]
      end
    elseif records[i] then
      gone[#gone + 1] = id
      gone_records[#gone_records + 1] = records[i]
    end
  end
  if lid then
    redis.call('ZREM', lane_key(lid, LANE_DUE), unpack(ids))
    redis.call('HDEL', lane_key(lid, LANE_ATTEMPTS), unpack(ids))
  elseif #held > 0 then
    leave_pull_lane(held, held_records)
  end
  return delete_messages(gone, gone_records, keep_bytes)
end

-- Whether the pull lane holds each of `ids`: a message only listener lanes still hold
-- has a record but is no longer the pull lane's to ack. Costs nothing while no message
-- has a listener lane.
local function in_pull_lane(ids)
  local held = {}
  if #ids == 0 or not any_refs() then
    for i = 1, #ids do held[i] = true end
    return held
  end
  local leased = redis.call('ZMSCORE', K_LEASED, unpack(ids))
  local due = redis.call('ZMSCORE', K_DUE, unpack(ids))
  local places = {}
  if groups().on then places = redis.call('ZMSCORE', K_GROUP_DUE, unpack(ids)) end
  for i = 1, #ids do held[i] = leased[i] ~= false or due[i] ~= false or (places[i] or false) ~= false end
  return held
end

-- Where the pull lane holds each of `ids` (records given; false: no such message), in
-- two lists: 'leased' (until: when the lease expires), 'delayed' (until: when it
-- becomes visible, its group's hold included), 'ready' (until 0), or nil: the pull
-- lane does not hold it (only listener lanes do, or it is gone). Only reads.
local function pull_lane_states(ids, records, now)
  local states, untils = {}, {}
  if #ids == 0 then return states, untils end
  local leased = redis.call('ZMSCORE', K_LEASED, unpack(ids))
  local due = redis.call('ZMSCORE', K_DUE, unpack(ids))
  local places, holds = {}, {}
  if groups().on then
    places = redis.call('ZMSCORE', K_GROUP_DUE, unpack(ids))
    local group_of = {}
    for i = 1, #ids do group_of[i] = records[i] and select(7, parse_record(records[i])) or '' end
    holds = redis.call('ZMSCORE', K_GROUP_HOLD, unpack(group_of))
  end
  for i = 1, #ids do
    local at = due[i] or places[i]
    if not records[i] then
      states[i], untils[i] = nil, 0
    elseif leased[i] then
      states[i], untils[i] = 'leased', tonumber(leased[i])
    elseif not at then
      states[i], untils[i] = nil, 0
    else
      at = math.max(tonumber(at), tonumber(holds[i] or '0'))
      if at > now then
        states[i], untils[i] = 'delayed', at
      else
        states[i], untils[i] = 'ready', 0
      end
    end
  end
  return states, untils
end

-- Reads what deciding on leases takes, for ids[i] with lease generations gens[i], in
-- two commands whatever their number: each one's record (false: no such message) and
-- whether gens[i] is its current lease, not expired at `now`.
local function read_leases(ids, gens, now)
  if #ids == 0 then return {}, {} end
  local records = redis.call('HMGET', K_MSG, unpack(ids))
  local expiries = redis.call('ZMSCORE', K_LEASED, unpack(ids))
  local current = {}
  for i = 1, #ids do
    current[i] = false
    if records[i] then
      local _, _, _, gen = parse_record(records[i])
      current[i] = gen == gens[i] and tonumber(expiries[i] or '0') > now
    end
  end
  return records, current
end

-- Messages whose last allowed delivery failed leave the queue: into the `dead` outbox
-- when the consumer has a dead-letter queue (the broker then copies them there by id
-- and clears the outbox, so a crash in between loses nothing), else they are deleted.
-- Either way they stop counting in this queue's backlog. Returns how many.
local function bury(ids, records, has_dlq)
  if #ids == 0 then return 0 end
  release(ids, records)
  if has_dlq then
    local outbox = {}
    for i, id in ipairs(ids) do
      outbox[#outbox + 1] = id
      outbox[#outbox + 1] = records[i]
    end
    redis.call('HSET', K_DEAD, unpack(outbox))
    redis.call('HINCRBY', K_META, 'dead_lettered', #ids)
  else
    redis.call('HINCRBY', K_META, 'dead_dropped', #ids)
  end
  return #ids
end

-- Seconds before the next delivery of a message retried (or whose lease expired) after
-- `attempts` deliveries: the consumer's retry_delay, or, when its retry_delay_max is
-- above that, retry_delay · 2^(attempts−1) capped at retry_delay_max.
local function retry_delay(base, cap, attempts)
  if cap <= base then return base end
  local delay = base * 2 ^ (math.max(attempts, 1) - 1)
  if delay > cap then delay = cap end
  return delay
end

-- Returns expired leases to the pull lane, due when they expired (plus the backoff of
-- `retry_delay` when the consumer has retry_delay_max above retry_delay; strict FIFO
-- keeps their place and holds their group as long), oldest first and at most `limit`
-- per call (the next call moves the rest), so the cost is O(log N + moved). An expired
-- lease that was the message's last allowed delivery (`max_deliveries`) buries it
-- instead. Delayed messages need no such step: they are due already, from when they
-- become visible. Returns how many were buried.
local function reclaim_expired(now, limit, max_deliveries, has_dlq, delay_base, delay_cap)
  local expired = redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', now, 'WITHSCORES',
    'LIMIT', 0, limit)
  if #expired == 0 then return 0 end
  local ids, expiries = {}, {}
  for i = 1, #expired, 2 do
    ids[#ids + 1] = expired[i]
    expiries[#expiries + 1] = expired[i + 1]
  end
  redis.call('ZREM', K_LEASED, unpack(ids))
  redis.call('HINCRBY', K_META, 'lease_expired', #ids)
  local records = redis.call('HMGET', K_MSG, unpack(ids))
  local due, grouped, ended, holds, dead, dead_records = {}, {}, {}, {}, {}, {}
  for i, id in ipairs(ids) do
    local rec = records[i]
    local _, ts, attempts, gen, _, _, group = parse_record(rec)
    if group then lease_ended(ended, group, gen) end
    if attempts >= max_deliveries then
      dead[#dead + 1] = id
      dead_records[#dead_records + 1] = rec
    else
      local at = tonumber(expiries[i])
      if delay_cap > delay_base then
        at = at + retry_delay(delay_base, delay_cap, attempts) * 1000
      end
      due_again(due, grouped, holds, id, ts, group, at, now)
    end
  end
  make_due(due, grouped)
  store_holds(holds)
  count_leases(ended)
  return bury(dead, dead_records, has_dlq)
end

-- When, in ms, the next delayed message or expired lease can become visible (0: none).
local function next_visible(now)
  local d
  if groups().on then
    d = redis.call('ZRANGE', K_LANE_WAIT, 0, 0, 'WITHSCORES')
  else
    d = redis.call('ZRANGEBYSCORE', K_DUE, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  end
  local l = redis.call('ZRANGE', K_LEASED, 0, 0, 'WITHSCORES')
  local n = 0
  if d[2] then n = tonumber(d[2]) end
  if l[2] and (n == 0 or tonumber(l[2]) < n) then n = tonumber(l[2]) end
  return n
end

-- Wakes long-polling pulls of this queue, in every broker process: the channel is the
-- K_DUE key's own name, the message how many messages just became visible (each
-- process wakes at most that many of its waiting pulls). Only while a pull may be
-- waiting: a pull about to wait marks meta.waiting with when its wait ends (pull.lua),
-- and `waiting` is that field as the caller read it.
local function announce_due(n, waiting, now)
  if n > 0 and tonumber(waiting or '0') > now then
    redis.call('PUBLISH', K_DUE, n)
  end
end

-- Up to `max` entries of a dead-letter outbox (a hash of id -> record) from one bounded
-- HSCAN step, at most `budget` record bytes but always one entry, appended to `out` as
-- id, record pairs. Returns whether entries remain beyond those.
local function read_outbox(outbox, max, budget, out)
  local page = redis.call('HSCAN', outbox, 0, 'COUNT', max)
  local entries, size, taken = page[2], 0, 0
  for i = 1, #entries, 2 do
    local rec = entries[i + 1]
    if taken > 0 and size + #rec > budget then break end
    out[#out + 1] = entries[i]
    out[#out + 1] = rec
    size = size + #rec
    taken = taken + 1
  end
  return redis.call('HLEN', outbox) > taken
end

-- ARGV[1] of every queue script is the caller's access: "<account>", or
-- "<account>\n,<queue name>,<queue name>," for a token limited to some queues.
-- A queue outside it does not exist for the caller. Names never hold ',' or '\n'.
local function may_access(meta_key, meta_account)
  local account, names = string.match(ARGV[1], '^([^\n]*)\n?(.*)$')
  if meta_account ~= account then return false end
  if names == '' then return true end
  local name = redis.call('HGET', meta_key, 'name')
  return name ~= false and string.find(names, ',' .. name .. ',', 1, true) ~= nil
end
