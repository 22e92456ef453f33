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

-- The fields every version 2 and 3 record starts with, after its version.
local function record_header(ct, ts, attempts, gen, entry)
  return ct .. ts .. ':' .. attempts .. ':' .. gen .. ':' .. entry .. ':'
end

-- A version 2 record, or version 3 with a group.
local function record(ct, ts, attempts, gen, entry, body, group)
  local header = record_header(ct, ts, attempts, gen, entry)
  if group then
    return GROUPED_RECORD_VERSION .. header .. #group .. ':' .. group .. body
  end
  return RECORD_VERSION .. header .. body
end

-- Record `rec` delivered once more, under lease generation `gen`: its attempts one
-- more and `gen` its lease generation, the rest (group, body) copied as it is. Returns
-- the new record and its group (nil: none) when `with_group`.
local function redelivered(rec, gen, with_group)
  local version, ct, ts, attempts, _, entry, rest = string.match(rec, RECORD_HEADER)
  if not version or with_group then
    local body_at, group
    ct, ts, attempts, _, body_at, entry, group = parse_record(rec)
    return record(ct, ts, attempts + 1, gen, entry, string.sub(rec, body_at), group), group
  end
  return version .. record_header(ct, ts, attempts + 1, gen, entry) .. string.sub(rec, rest)
end

-- A whole number as Redis reads one: Lua's own formatting of a large number can be
-- "1e+15", which HINCRBY and friends refuse.
local function int(n)
  return string.format('%d', n)
end

-- Indexes (store/mod.rs has the key layout). Every live message is in K_MSG, its id is
-- in the age bucket of its timestamp, and it is held by one or more lanes:
-- - the pull lane: exactly one of K_DUE (not leased: ready, or delayed until its score)
--   and K_LEASED (until its lease expires), or, for a message of a group, of K_LEASED
--   and the group indexes below;
-- - each listener's lane, for a message pushed while the listener existed: in
--   lane_key(lid, LANE_DUE), scored by when it is next due (a claimed message, by when
--   its claim lapses), with its delivery attempts in lane_key(lid, LANE_ATTEMPTS).
-- A message held by a listener lane has an entry in K_REFS: how many lanes still hold
-- it. A lane lets go of messages through `release`; the last one deletes them, and
-- delete_messages takes them out of everything at once, so no id is ever indexed twice
-- or left behind.

-- Message groups (SPEC §13). Once a queue has held a grouped message (meta.grouped),
-- pull serves its visible messages in rounds: each group, and the ungrouped messages
-- as one more lane, gives at most one message per round. Ungrouped messages stay in
-- K_DUE; a grouped message not leased is
-- - delayed: in K_GROUP_DELAYED (member: id, 32 characters, then group), scored by when
--   it becomes visible. Every grouped message becomes visible through there, in that
--   order (promote), except a push's own visible messages, which come after it;
-- - visible: in K_ROUNDS (same member), scored by its round: one after the last round
--   its group was given (K_GROUPS: group -> that round, forgotten once passed),
--   and at least the round after the last one pulls passed (meta.round). A group with
--   a million messages has them in a million rounds; a group with ten joins the next
--   round. So a pull reads the front of K_ROUNDS, and the ungrouped lane takes the
--   rounds after meta.round, one each, first within a round;
-- - parked, under group_max_inflight (leases counted in K_GROUP_INFLIGHT, those made
--   after the cap was set: meta.counted_after; update_queue.lua starts afresh): a
--   message met at the front while its group has no room leaves K_ROUNDS for K_PARKED,
--   "<group>\0<round, 16 digits>\0<id>", all scores 0, so each group's parked messages
--   are one range in round order (K_ROUND_OF: id -> round; K_GROUP_PARKED: group -> how
--   many). Whenever a lease of a group ends, as many of its smallest parked messages
--   as it has room for go back to K_ROUNDS with their rounds: a group with parked
--   messages is always full, and what it had parked comes before what followed it.
-- Strict FIFO (group_max_inflight 1): pull notes the round of what it leases
-- (K_ROUND_OF); a retried or expired message is parked with it, so it is its group's
-- next message, and a retry delay holds the group (K_GROUP_HOLD: group -> until).
-- When the cap changes, meta.unparking asks pulls to move every parked message back,
-- a bounded step at a time; those whose group still has no room are parked again.
-- Every step costs O(messages moved · log N): nothing walks the groups.

-- {on = grouped, cap = group_max_inflight, counted_after}, read once per script; a
-- script that reads meta anyway hands them over with know_groups, and meta.round too
-- when it may need it.
local group_settings = nil
local round_passed = nil
local function know_groups(grouped, cap, counted_after, round)
  group_settings = {on = grouped == '1', cap = tonumber(cap or '0'),
    counted_after = tonumber(counted_after or '0')}
  if round ~= nil then round_passed = tonumber(round or '0') end
end
local function groups()
  if not group_settings then
    know_groups(unpack(redis.call('HMGET', K_META, 'grouped', 'group_max_inflight',
      'counted_after')))
  end
  return group_settings
end
local function passed_round()
  if not round_passed then
    round_passed = tonumber(redis.call('HGET', K_META, 'round') or '0')
  end
  return round_passed
end

-- Whether a lease of generation `gen` counts against group_max_inflight.
local function counted(gen)
  return groups().cap > 0 and gen > groups().counted_after
end

-- The queue holds grouped messages from now on.
local function enable_groups()
  if groups().on then return end
  redis.call('HSET', K_META, 'grouped', '1')
  group_settings.on = true
end

local function member(id, group) return id .. group end
local function parked_entry(group, round, id)
  return group .. '\0' .. string.format('%016d', round) .. '\0' .. id
end
-- The group, round and id of a K_PARKED entry.
local function parse_parked(entry)
  local n = #entry
  return string.sub(entry, 1, n - 50), tonumber(string.sub(entry, n - 48, n - 33)),
    string.sub(entry, -32)
end

-- The distinct values of `list`, in order.
local function distinct(list)
  local out, seen = {}, {}
  for _, v in ipairs(list) do
    if not seen[v] then
      seen[v] = true
      out[#out + 1] = v
    end
  end
  return out
end

-- Puts grouped messages into K_ROUNDS, in the order given: ids[i] of group names[i],
-- with round rounds[i], or, where that is false (or `rounds` nil), its group's next.
-- K_GROUPS keeps each group's last round (pass_round forgets those meta.round has
-- passed); ZADD GT never lowers it, and of a group named twice the last (largest)
-- round stays.
local function enter_rounds(ids, names, rounds)
  if #ids == 0 then return end
  local known = redis.call('ZMSCORE', K_GROUPS, unpack(names))
  local last = {}
  local next_round = passed_round() + 1
  local scored, given, g = {}, {}, 0
  for i = 1, #ids do
    local name = names[i]
    local last_round = last[name] or tonumber(known[i] or '0')
    local round = rounds and rounds[i]
    if not round then
      round = last_round + 1
      if round < next_round then round = next_round end
    end
    if round > last_round then last_round = round end
    last[name] = last_round
    scored[2 * i - 1], scored[2 * i] = round, ids[i] .. name
    -- One passed already (an unparked message's) is as good as forgotten.
    if round >= next_round then
      given[g + 1], given[g + 2], g = round, name, g + 2
    end
  end
  redis.call('ZADD', K_ROUNDS, unpack(scored))
  if #given > 0 then redis.call('ZADD', K_GROUPS, 'GT', unpack(given)) end
end

-- Takes messages out of K_ROUNDS: `members` that are there.
local function leave_rounds(members)
  if #members > 0 then redis.call('ZREM', K_ROUNDS, unpack(members)) end
end

-- A pull took or parked messages up to round `round`. A group whose last round is
-- passed needs no entry in K_GROUPS (its next message takes the round after
-- meta.round either way): such entries are dropped every SWEEP_ROUNDS rounds, and all
-- at once when K_ROUNDS is empty, rather than on each pull, so a group that keeps
-- pushing keeps its entry, which ZADD GT then updates in place.
local SWEEP_ROUNDS = 16
local function pass_round(round)
  local fields = {}
  if round > passed_round() then
    round_passed = round
    fields = {'round', round}
  end
  if redis.call('EXISTS', K_ROUNDS) == 0 then
    redis.call('UNLINK', K_GROUPS)
  elseif #fields > 0 then
    local swept = tonumber(redis.call('HGET', K_META, 'groups_swept') or '0')
    if round - swept >= SWEEP_ROUNDS then
      redis.call('ZREMRANGEBYSCORE', K_GROUPS, '-inf', round)
      fields[3], fields[4] = 'groups_swept', round
    end
  end
  if #fields > 0 then redis.call('HSET', K_META, unpack(fields)) end
end

-- Adds `deltas` (group -> number) to the counts of hash `key`, whose fields go when
-- they reach 0. Two or three commands whatever their number. Returns group -> count.
local function add_counts(key, deltas)
  local names = {}
  for name in pairs(deltas) do names[#names + 1] = name end
  local counts = {}
  if #names == 0 then return counts end
  local known = redis.call('HMGET', key, unpack(names))
  local kept, emptied = {}, {}
  for i, name in ipairs(names) do
    local n = tonumber(known[i] or '0') + deltas[name]
    if n > 0 then
      kept[#kept + 1] = name
      kept[#kept + 1] = n
    else
      n = 0
      emptied[#emptied + 1] = name
    end
    counts[name] = n
  end
  if #kept > 0 then redis.call('HSET', key, unpack(kept)) end
  if #emptied > 0 then redis.call('HDEL', key, unpack(emptied)) end
  return counts
end

-- Parks messages: `parked` {id, group, round}.
local function park(parked)
  if #parked == 0 then return end
  local entries, rounds, deltas = {}, {}, {}
  for _, p in ipairs(parked) do
    entries[#entries + 1] = 0
    entries[#entries + 1] = parked_entry(p[2], p[3], p[1])
    rounds[#rounds + 1] = p[1]
    rounds[#rounds + 1] = int(p[3])
    deltas[p[2]] = (deltas[p[2]] or 0) + 1
  end
  redis.call('ZADD', K_PARKED, unpack(entries))
  redis.call('HSET', K_ROUND_OF, unpack(rounds))
  add_counts(K_GROUP_PARKED, deltas)
end

-- Moves parked messages (their K_PARKED `entries`) back into K_ROUNDS, with their
-- rounds. Returns how many; unparked_count adds up those of the whole script.
local unparked_count = 0
local function unpark_entries(entries)
  if #entries == 0 then return 0 end
  unparked_count = unparked_count + #entries
  local ids, names, rounds, deltas = {}, {}, {}, {}
  for i, entry in ipairs(entries) do
    names[i], rounds[i], ids[i] = parse_parked(entry)
    deltas[names[i]] = (deltas[names[i]] or 0) - 1
  end
  redis.call('ZREM', K_PARKED, unpack(entries))
  redis.call('HDEL', K_ROUND_OF, unpack(ids))
  add_counts(K_GROUP_PARKED, deltas)
  enter_rounds(ids, names, rounds)
  return #ids
end

-- Fills each group's room (group -> how many more it may have leased) from its
-- parked messages, smallest round first. Returns how many became visible.
local function unpark(room)
  local names = {}
  for name, n in pairs(room) do
    if n > 0 then names[#names + 1] = name end
  end
  if #names == 0 then return 0 end
  local parked = redis.call('HMGET', K_GROUP_PARKED, unpack(names))
  local entries = {}
  for i, name in ipairs(names) do
    local n = math.min(room[name], tonumber(parked[i] or '0'))
    if n > 0 then
      local found = redis.call('ZRANGEBYLEX', K_PARKED, '[' .. name .. '\0',
        '(' .. name .. '\1', 'LIMIT', 0, n)
      for _, entry in ipairs(found) do entries[#entries + 1] = entry end
    end
  end
  return unpark_entries(entries)
end

-- How many more messages each of `names` may have leased now: group_max_inflight less
-- its counted leases (`inflight`, group -> count, when the caller knows them), none
-- while a strict FIFO hold lasts (without `now`, while there is one).
local function rooms(names, now, inflight)
  local room = {}
  if #names == 0 then return room end
  local cap = groups().cap
  local counts = inflight
  if not counts then
    counts = {}
    local known = redis.call('HMGET', K_GROUP_INFLIGHT, unpack(names))
    for i, name in ipairs(names) do counts[name] = tonumber(known[i] or '0') end
  end
  local holds = redis.call('ZMSCORE', K_GROUP_HOLD, unpack(names))
  for i, name in ipairs(names) do
    local held = holds[i] and (not now or tonumber(holds[i]) > now)
    room[name] = 0
    if not held then room[name] = math.max(cap - (counts[name] or 0), 0) end
  end
  return room
end

-- Leases of groups ended: `ended` group -> how many of them counted (see counted).
-- Under a cap, each group's room is filled from its parked messages. Returns how
-- many became visible.
local function end_leases(ended, now)
  if groups().cap == 0 then return 0 end
  local deltas, names = {}, {}
  for name, n in pairs(ended) do
    names[#names + 1] = name
    if n > 0 then deltas[name] = -n end
  end
  local counts = add_counts(K_GROUP_INFLIGHT, deltas)
  local unknown = {}
  for _, name in ipairs(names) do
    if counts[name] == nil then unknown[#unknown + 1] = name end
  end
  if #unknown > 0 then
    local known = redis.call('HMGET', K_GROUP_INFLIGHT, unpack(unknown))
    for i, name in ipairs(unknown) do counts[name] = tonumber(known[i] or '0') end
  end
  return unpark(rooms(names, now, counts))
end

-- A lease of generation `gen` of a message of `group` ended: `ended` (for end_leases)
-- takes it.
local function lease_ended(ended, group, gen)
  local n = 0
  if counted(gen) then n = 1 end
  ended[group] = (ended[group] or 0) + n
end

-- Makes grouped messages visible whose time has come (at most `limit`, earliest
-- first), in that order. Returns how many.
local function promote(now, limit)
  local due = redis.call('ZRANGEBYSCORE', K_GROUP_DELAYED, '-inf', now, 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  redis.call('ZREM', K_GROUP_DELAYED, unpack(due))
  local ids, names = {}, {}
  for i, m in ipairs(due) do ids[i], names[i] = string.sub(m, 1, 32), string.sub(m, 33) end
  enter_rounds(ids, names)
  return #due
end

-- Most delayed grouped messages a script that makes messages visible first promotes,
-- so they keep their place before those (pull promotes redis.reveal_batch).
local PROMOTE_FIRST = 1000

-- Makes grouped messages ids[i] (of group names[i]) visible at `now`, after every
-- message whose delay ended before: in the order of ats[i] (when each became due;
-- nil: all now), then id. Returns how many.
local function make_visible(ids, names, now, ats)
  if #ids == 0 then return 0 end
  promote(now, PROMOTE_FIRST)
  local ordered = true
  for i = 2, #ids do
    local a, b = ats and ats[i - 1] or now, ats and ats[i] or now
    if a > b or (a == b and ids[i - 1] > ids[i]) then
      ordered = false
      break
    end
  end
  if not ordered then
    local order = {}
    for i = 1, #ids do order[i] = i end
    table.sort(order, function(x, y)
      local a, b = ats and ats[x] or now, ats and ats[y] or now
      if a ~= b then return a < b end
      return ids[x] < ids[y]
    end)
    local sorted_ids, sorted_names = {}, {}
    for i, k in ipairs(order) do sorted_ids[i], sorted_names[i] = ids[k], names[k] end
    ids, names = sorted_ids, sorted_names
  end
  enter_rounds(ids, names)
  return #ids
end

-- Makes messages due in the pull lane: `due` {score, id, …} ungrouped ones, `grouped`
-- {at, id, group, …} grouped ones (those due by `now` through make_visible). Returns
-- how many grouped ones became visible.
local function make_due(due, grouped, now)
  if #due > 0 then redis.call('ZADD', K_DUE, unpack(due)) end
  if #grouped == 0 then return 0 end
  local ids, names, ats, later = {}, {}, {}, {}
  for i = 1, #grouped, 3 do
    local at = tonumber(grouped[i])
    if at <= now then
      local n = #ids + 1
      ids[n], names[n], ats[n] = grouped[i + 1], grouped[i + 2], at
    else
      later[#later + 1] = grouped[i]
      later[#later + 1] = member(grouped[i + 1], grouped[i + 2])
    end
  end
  if #later > 0 then redis.call('ZADD', K_GROUP_DELAYED, unpack(later)) end
  return make_visible(ids, names, now, ats)
end

-- A message that was leased (of `group` or nil) is due again at `at` (ms): appended to
-- `due` ({score, id, …}) or `grouped` ({at, id, group, …}) for make_due, or, under
-- strict FIFO, to `kept` ({id, group, at}, for keep_places).
local function due_again(due, grouped, kept, id, group, at)
  if not group then
    due[#due + 1] = at
    due[#due + 1] = id
  elseif groups().cap == 1 then
    kept[#kept + 1] = {id, group, at}
  else
    grouped[#grouped + 1] = at
    grouped[#grouped + 1] = id
    grouped[#grouped + 1] = group
  end
end

-- Strict FIFO: messages of `kept` ({id, group, at}) keep the round they were leased
-- with: parked, to be their group's next message, the group held until `at` when that
-- is later than `now`. One leased before the cap has no round noted and is appended to
-- `grouped` for make_due instead.
local function keep_places(kept, grouped, now)
  if #kept == 0 then return end
  local ids = {}
  for i, k in ipairs(kept) do ids[i] = k[1] end
  local rounds = redis.call('HMGET', K_ROUND_OF, unpack(ids))
  local parked, holds = {}, {}
  for i, k in ipairs(kept) do
    if rounds[i] then
      parked[#parked + 1] = {k[1], k[2], tonumber(rounds[i])}
      if k[3] > now and k[3] > (holds[k[2]] or 0) then holds[k[2]] = k[3] end
    else
      grouped[#grouped + 1] = k[3]
      grouped[#grouped + 1] = k[1]
      grouped[#grouped + 1] = k[2]
    end
  end
  park(parked)
  local scored = {}
  for group, at in pairs(holds) do
    scored[#scored + 1] = int(at)
    scored[#scored + 1] = group
  end
  if #scored > 0 then redis.call('ZADD', K_GROUP_HOLD, 'GT', unpack(scored)) end
end

-- Takes live messages `ids` (records given) out of the pull lane, wherever they are in
-- it: leased, due in K_DUE, or, for a grouped one, delayed, visible or parked. Under a
-- cap, the groups whose leases ended get their room back (`now`, when the caller knows
-- it, tells which strict FIFO holds are over; without it a hold waits for a pull).
local function leave_pull_lane(ids, records, now)
  if not groups().on then
    -- Each is in at most one of the two.
    if redis.call('ZREM', K_LEASED, unpack(ids)) < #ids then
      redis.call('ZREM', K_DUE, unpack(ids))
    end
    return
  end
  local capped = groups().cap > 0
  if not capped and redis.call('ZREM', K_LEASED, unpack(ids)) == #ids then
    -- All leased (an ack): nothing else holds them, without a cap nothing counts them.
    if redis.call('EXISTS', K_ROUND_OF) == 1 then redis.call('HDEL', K_ROUND_OF, unpack(ids)) end
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
  if #plain > 0 and redis.call('ZREM', K_LEASED, unpack(plain)) < #plain then
    redis.call('ZREM', K_DUE, unpack(plain))
  end
  if #grouped == 0 then return end
  local leased, ended = {}, {}
  if capped then leased = redis.call('ZMSCORE', K_LEASED, unpack(grouped)) end
  if redis.call('ZREM', K_LEASED, unpack(grouped)) < #grouped then
    -- Some were not leased: wherever else they are, they leave.
    local members = {}
    for i, id in ipairs(grouped) do members[i] = member(id, group_of[i]) end
    local visible = redis.call('ZMSCORE', K_ROUNDS, unpack(members))
    local out = {}
    for i, m in ipairs(members) do
      if visible[i] then
        out[#out + 1] = m
        -- It may have been unparked to take room its group has: parked ones take it.
        ended[group_of[i]] = ended[group_of[i]] or 0
      end
    end
    leave_rounds(out)
    redis.call('ZREM', K_GROUP_DELAYED, unpack(members))
    local rounds = redis.call('HMGET', K_ROUND_OF, unpack(grouped))
    local entries, entry_groups = {}, {}
    for i, id in ipairs(grouped) do
      if rounds[i] then
        entries[#entries + 1] = parked_entry(group_of[i], tonumber(rounds[i]), id)
        entry_groups[#entries] = group_of[i]
      end
    end
    if #entries > 0 then
      local present = redis.call('ZMSCORE', K_PARKED, unpack(entries))
      local gone, deltas = {}, {}
      for k, entry in ipairs(entries) do
        if present[k] then
          gone[#gone + 1] = entry
          deltas[entry_groups[k]] = (deltas[entry_groups[k]] or 0) - 1
        end
      end
      if #gone > 0 then
        redis.call('ZREM', K_PARKED, unpack(gone))
        add_counts(K_GROUP_PARKED, deltas)
      end
    end
  end
  if capped or redis.call('EXISTS', K_ROUND_OF) == 1 then
    redis.call('HDEL', K_ROUND_OF, unpack(grouped))
  end
  if not capped then return end
  for i = 1, #grouped do
    if leased[i] then lease_ended(ended, group_of[i], gens[i]) end
  end
  end_leases(ended, now)
end

-- For each group of `names` not yet in `room`: how many more it may have leased now.
local function learn_rooms(names, room, now)
  local unknown = {}
  for _, name in ipairs(distinct(names)) do
    if room[name] == nil then unknown[#unknown + 1] = name end
  end
  for name, n in pairs(rooms(unknown, now)) do room[name] = n end
end

-- Chooses what a pull takes: up to `batch` visible messages, at most `budget` record
-- bytes (but always one), round by round from the front of K_ROUNDS, the visible
-- ungrouped messages taking the rounds after meta.round, one each, first within a
-- round. A message whose group has no room is passed over, at most `limit` of them
-- (a pull parks those met before the last message it takes). Returns the chosen ids
-- and records, then what take_chosen needs: {names, rounds, members} of the chosen
-- (name: the group, or just true without a cap; false: ungrouped) and {ids, names,
-- rounds, members} of those passed over.
local function choose_by_rounds(now, batch, budget, limit)
  local cap = groups().cap
  local first_round = passed_round() + 1
  local plain = redis.call('ZRANGEBYSCORE', K_DUE, '-inf', now, 'LIMIT', 0, batch)
  local ids, names, rounds, members = {}, {}, {}, {}
  local passed = {ids = {}, names = {}, rounds = {}, members = {}}
  -- How many were chosen when each passed one was met.
  local chosen_before = {}
  local room = {}
  local n, p = 0, 1
  local function plain_up_to(round)
    while n < batch and p <= #plain and first_round + p - 1 <= round do
      n = n + 1
      ids[n], names[n], rounds[n] = plain[p], false, first_round + p - 1
      p = p + 1
    end
  end
  local offset, window = 0, batch
  while n < batch and #passed.ids < limit do
    local front = redis.call('ZRANGE', K_ROUNDS, offset, offset + window - 1, 'WITHSCORES')
    offset = offset + window
    if cap > 0 then
      local seen = {}
      for i = 1, #front, 2 do seen[#seen + 1] = string.sub(front[i], 33) end
      learn_rooms(seen, room, now)
    end
    for i = 1, #front, 2 do
      local m, round = front[i], tonumber(front[i + 1])
      if p <= #plain then plain_up_to(round) end
      if n >= batch then break end
      -- Without a cap only whether it is grouped matters.
      local group = cap == 0 or string.sub(m, 33)
      if cap == 0 or room[group] > 0 then
        n = n + 1
        ids[n], names[n], rounds[n], members[n] = string.sub(m, 1, 32), group, round, m
        if cap > 0 then room[group] = room[group] - 1 end
      else
        local q = #passed.ids + 1
        passed.ids[q], passed.names[q], passed.rounds[q], passed.members[q] =
          string.sub(m, 1, 32), group, round, m
        chosen_before[q] = n
        if q >= limit then break end
      end
    end
    if #front < 2 * window then break end
    window = math.min(window * 2, math.max(limit, batch))
  end
  plain_up_to(math.huge)
  local chosen = {names = names, rounds = rounds, members = members}
  if n == 0 then return {}, {}, chosen, passed end
  local found = redis.call('HMGET', K_MSG, unpack(ids))
  local records, size = {}, 0
  for i, rec in ipairs(found) do
    if i > 1 and size + #rec > budget then break end
    records[i] = rec
    size = size + #rec
  end
  for i = #ids, #records + 1, -1 do ids[i] = nil end
  -- Only those passed before the last message taken: a later one's group may yet
  -- have room.
  for q = #passed.ids, 1, -1 do
    if chosen_before[q] > #ids then
      passed.ids[q], passed.names[q], passed.rounds[q], passed.members[q] = nil, nil, nil, nil
    end
  end
  return ids, records, chosen, passed
end

-- A pull leases what choose_by_rounds chose (`ids`) and parks what it passed over:
-- they leave K_DUE and K_ROUNDS, meta.round moves past them, and under strict FIFO
-- each grouped one notes its round.
local function take_chosen(ids, chosen, passed)
  local plain, members, noted = {}, {}, {}
  local last = passed_round()
  local chosen_names, chosen_rounds, chosen_members = chosen.names, chosen.rounds,
    chosen.members
  local fifo = groups().cap == 1
  for i = 1, #ids do
    local round = chosen_rounds[i]
    if round > last then last = round end
    if chosen_names[i] then
      members[#members + 1] = chosen_members[i]
      if fifo then
        noted[#noted + 1] = ids[i]
        noted[#noted + 1] = round
      end
    else
      plain[#plain + 1] = ids[i]
    end
  end
  local parked = {}
  for q, id in ipairs(passed.ids) do
    local round = passed.rounds[q]
    if round > last then last = round end
    members[#members + 1] = passed.members[q]
    parked[q] = {id, passed.names[q], round}
  end
  if #plain > 0 then redis.call('ZREM', K_DUE, unpack(plain)) end
  leave_rounds(members)
  park(parked)
  if #noted > 0 then redis.call('HSET', K_ROUND_OF, unpack(noted)) end
  pass_round(last)
end

-- Groups whose strict FIFO hold is over (at most `limit`) get their room back.
local function end_holds(now, limit)
  local over = redis.call('ZRANGEBYSCORE', K_GROUP_HOLD, '-inf', now, 'LIMIT', 0, limit)
  if #over == 0 then return 0 end
  redis.call('ZREM', K_GROUP_HOLD, unpack(over))
  if groups().cap == 0 then return 0 end
  return unpark(rooms(over, now))
end

-- After the cap changed (meta.unparking): up to `limit` parked messages go back to
-- K_ROUNDS, to be parked again where their group still has no room.
local function unpark_after_cap_change(unparking, limit)
  if unparking ~= '1' then return 0 end
  local entries = redis.call('ZRANGE', K_PARKED, 0, limit - 1)
  if #entries == 0 then
    redis.call('HDEL', K_META, 'unparking')
    return 0
  end
  return unpark_entries(entries)
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
-- (folded into its own write of meta), else this does. `now`: see leave_pull_lane.
local function delete_messages(ids, records, keep_bytes, now)
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
  leave_pull_lane(ids, records, now)
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
local function delete_live(ids, now)
  if #ids == 0 then return 0 end
  local records = redis.call('HMGET', K_MSG, unpack(ids))
  local live, live_records = {}, {}
  for i, id in ipairs(ids) do
    if records[i] then
      live[#live + 1] = id
      live_records[#live_records + 1] = records[i]
    end
  end
  delete_messages(live, live_records, false, now)
  return #live
end

-- Lane `lid` (nil: the pull lane) lets go of messages `ids`, whose `records` are given
-- (false: already gone). Those no other lane holds are deleted; the others only leave
-- this lane. Returns the bytes deleted (taken off meta.bytes unless `keep_bytes`).
-- `now`: see leave_pull_lane.
local function release(ids, records, lid, keep_bytes, now)
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
    leave_pull_lane(held, held_records, now)
  end
  return delete_messages(gone, gone_records, keep_bytes, now)
end

-- Where the pull lane holds each of `ids` (records given; false: no such message), in
-- two lists: 'leased' (until: when the lease expires), 'delayed' (until: when it
-- becomes visible, its group's strict FIFO hold included), 'ready' (until 0; a parked
-- message too: it waits for its group's room, not for a time), or nil: the pull lane
-- does not hold it (only listener lanes do, or it is gone). Only reads.
local function pull_lane_states(ids, records, now)
  local states, untils = {}, {}
  if #ids == 0 then return states, untils end
  local leased = redis.call('ZMSCORE', K_LEASED, unpack(ids))
  local due = redis.call('ZMSCORE', K_DUE, unpack(ids))
  local delayed, visible, rounds, holds = {}, {}, {}, {}
  if groups().on then
    local members, names = {}, {}
    for i = 1, #ids do
      local group = records[i] and select(7, parse_record(records[i]))
      members[i] = member(ids[i], group or '')
      names[i] = group or ''
    end
    delayed = redis.call('ZMSCORE', K_GROUP_DELAYED, unpack(members))
    visible = redis.call('ZMSCORE', K_ROUNDS, unpack(members))
    rounds = redis.call('HMGET', K_ROUND_OF, unpack(ids))
    holds = redis.call('ZMSCORE', K_GROUP_HOLD, unpack(names))
  end
  for i = 1, #ids do
    states[i], untils[i] = nil, 0
    -- When it becomes visible: a visible message 0, a parked one its group's hold.
    local at = nil
    if not records[i] then
      at = nil
    elseif leased[i] then
      states[i], untils[i] = 'leased', tonumber(leased[i])
    elseif due[i] or delayed[i] then
      at = tonumber(due[i] or delayed[i])
    elseif visible[i] then
      at = 0
    elseif rounds[i] then
      at = tonumber(holds[i] or '0')
    end
    if at and at > now then
      states[i], untils[i] = 'delayed', at
    elseif at then
      states[i], untils[i] = 'ready', 0
    end
  end
  return states, untils
end

-- Whether the pull lane holds each of `ids` (records given): a message only listener
-- lanes still hold has a record but is no longer the pull lane's to ack. Costs nothing
-- while no message has a listener lane.
local function in_pull_lane(ids, records)
  local held = {}
  if #ids == 0 or not any_refs() then
    for i = 1, #ids do held[i] = true end
    return held
  end
  local states = pull_lane_states(ids, records, 0)
  for i = 1, #ids do held[i] = states[i] ~= nil end
  return held
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
local function bury(ids, records, has_dlq, now)
  if #ids == 0 then return 0 end
  release(ids, records, nil, false, now)
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
-- instead. Delayed ungrouped messages need no such step: they are due already, from
-- when they become visible (grouped ones are promoted). Returns how many were buried.
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
  local due, grouped, kept, ended, dead, dead_records = {}, {}, {}, {}, {}, {}
  for i, id in ipairs(ids) do
    local rec = records[i]
    local _, _, attempts, gen, _, _, group = parse_record(rec)
    if group then lease_ended(ended, group, gen) end
    if attempts >= max_deliveries then
      dead[#dead + 1] = id
      dead_records[#dead_records + 1] = rec
    else
      local at = tonumber(expiries[i])
      if delay_cap > delay_base then
        at = at + retry_delay(delay_base, delay_cap, attempts) * 1000
      end
      due_again(due, grouped, kept, id, group, at)
    end
  end
  keep_places(kept, grouped, now)
  make_due(due, grouped, now)
  end_leases(ended, now)
  return bury(dead, dead_records, has_dlq, now)
end

-- When, in ms, the next delayed message, strict FIFO hold or expired lease can make a
-- message visible (0: none).
local function next_visible(now)
  local firsts = {
    redis.call('ZRANGEBYSCORE', K_DUE, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1),
    redis.call('ZRANGE', K_LEASED, 0, 0, 'WITHSCORES'),
  }
  if groups().on then
    firsts[3] = redis.call('ZRANGE', K_GROUP_DELAYED, 0, 0, 'WITHSCORES')
    firsts[4] = redis.call('ZRANGE', K_GROUP_HOLD, 0, 0, 'WITHSCORES')
  end
  local n = 0
  for _, first in ipairs(firsts) do
    local at = tonumber(first[2] or '0')
    if at > 0 and (n == 0 or at < n) then n = at end
  end
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
