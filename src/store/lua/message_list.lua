-- Lists messages without leasing them, a page at a time (HSCAN order: stable across
-- pages, not by age).
-- KEYS: the queue's keys in QueueKeys::all order; see lib.lua.
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: cursor ('0' to start)
-- ARGV[3]: page size hint
-- Returns: {NOT_FOUND} or {1, next_cursor ('0' at the end), id1, record1, state1, until1, ...}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local page = redis.call('HSCAN', K_MSG, ARGV[2], 'COUNT', tonumber(ARGV[3]))
local out = {1, page[1]}
local entries = page[2]
for i = 1, #entries, 2 do
  local id = entries[i]
  local state, until_ms = 'ready', 0
  local leased = redis.call('ZSCORE', K_LEASED, id)
  if leased then
    state, until_ms = 'leased', tonumber(leased)
  else
    local delayed = redis.call('ZSCORE', K_DELAYED, id)
    if delayed then state, until_ms = 'delayed', tonumber(delayed) end
  end
  out[#out + 1] = id
  out[#out + 1] = entries[i + 1]
  out[#out + 1] = state
  out[#out + 1] = until_ms
end
return out
