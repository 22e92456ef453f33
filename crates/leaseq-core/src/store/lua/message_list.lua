-- Lists the pull lane's messages without leasing them, a page at a time (HSCAN order:
-- stable across pages, not by age); messages only listeners still hold are skipped.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: cursor ('0' to start)
-- ARGV[3]: page size hint   ARGV[4]: most record bytes in the reply   ARGV[5]: now (ms)
-- Returns: {NOT_FOUND} or {OK, next_cursor ('0' at the end), id1, record1, state1, until1, ...}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local want, budget, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {OK, '0'}
local cursor, listed, size = ARGV[2], 0, 0
-- Small HSCAN steps, each taken whole (a cursor cannot resume inside one), until the page
-- has `want` messages or its records reach the budget. A step asks for no more records
-- than the budget has room for at the size of the largest seen so far (one to start),
-- so a reply overshoots the budget by about one record (a few while Redis rehashes the
-- hash, as a step then returns more than it was asked for). The steps are bounded, as
-- HSCAN may return empty ones.
local biggest = 0
for _ = 1, want do
  local step = 1
  if biggest > 0 then
    step = math.max(1, math.min(want - listed, 10, math.floor((budget - size) / biggest)))
  end
  local page = redis.call('HSCAN', K_MSG, cursor, 'COUNT', step)
  cursor = page[1]
  local entries, ids = page[2], {}
  for i = 1, #entries, 2 do ids[#ids + 1] = entries[i] end
  -- Where each message is, read for the whole step at once.
  local records = {}
  for i = 2, #entries, 2 do records[#records + 1] = entries[i] end
  local states, untils = pull_lane_states(ids, records, now)
  for i = 1, #entries, 2 do
    local id, n = entries[i], (i + 1) / 2
    local state, until_ms = states[n], untils[n]
    if state then
      out[#out + 1] = id
      out[#out + 1] = entries[i + 1]
      out[#out + 1] = state
      out[#out + 1] = until_ms
      listed = listed + 1
    end
    size = size + #entries[i + 1]
    biggest = math.max(biggest, #entries[i + 1])
  end
  if cursor == '0' or listed >= want or size >= budget then break end
end
out[2] = cursor
return out
