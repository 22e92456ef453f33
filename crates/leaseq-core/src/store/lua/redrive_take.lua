-- Reads dead letters eligible for a redrive: messages of this (dead-letter) queue that
-- came from another queue, optionally only from one. The scan of the origin index goes
-- on where the previous call left it (meta.redrive_cursor), at most MAX_PAGES pages
-- per call, so a call costs O(its pages), however many dead letters wait or how few of
-- them match. A page that is not used up is read again by the next call (what was taken
-- from it is gone from the index by then).
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: source queue id ('' = any)
-- ARGV[3]: most messages   ARGV[4]: most record bytes in the reply (at least one message)
-- Returns: {NOT_FOUND} or {OK, more, id1, record1, source1, ...}
--   more: 1 when this pass over the dead letters has not finished

local MAX_PAGES, PAGE = 10, 100
local meta = redis.call('HMGET', K_META, 'account', 'redrive_cursor')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
local want, most, budget = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out, taken, size = {OK, 0}, 0, 0
local cursor, resume = meta[2] or '0', nil
for _ = 1, MAX_PAGES do
  local page = redis.call('HSCAN', K_ORIGIN, cursor, 'COUNT', PAGE)
  local entries, ids, sources = page[2], {}, {}
  for i = 1, #entries, 2 do
    if want == '' or want == entries[i + 1] then
      ids[#ids + 1] = entries[i]
      sources[#sources + 1] = entries[i + 1]
    end
  end
  local records = {}
  if #ids > 0 then records = redis.call('HMGET', K_MSG, unpack(ids)) end
  local gone = {}
  for i, id in ipairs(ids) do
    local rec = records[i]
    if not rec then
      gone[#gone + 1] = id
    elseif taken >= most or (taken > 0 and size + #rec > budget) then
      resume = cursor
      break
    else
      size = size + #rec
      taken = taken + 1
      out[#out + 1] = id
      out[#out + 1] = rec
      out[#out + 1] = sources[i]
    end
  end
  -- An origin whose message is gone names nothing: drop it.
  if #gone > 0 then redis.call('HDEL', K_ORIGIN, unpack(gone)) end
  if resume then break end
  cursor = page[1]
  if cursor == '0' then break end
end
local next_cursor = resume or cursor
if next_cursor == '0' then
  redis.call('HDEL', K_META, 'redrive_cursor')
else
  redis.call('HSET', K_META, 'redrive_cursor', next_cursor)
end
-- Stopped inside a page (the next call reads it again), or the pass goes on.
if resume or next_cursor ~= '0' then out[2] = 1 end
return out
