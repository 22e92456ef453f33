-- Extends current leases: a heartbeat for consumers with long jobs.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)
-- ARGV[3..]: per lease, 3 values: id, lease generation, visibility_timeout_ms
--            (0 = consumer's setting, else DEFAULT_VISIBILITY_TIMEOUT_MS)
-- Returns: {NOT_FOUND} or {OK, status per lease...}
--   OK extended: the message is hidden until now + timeout
--   ABSENT no such message, NOT_CURRENT lease no longer current (expired or redelivered)

local meta = redis.call('HMGET', K_META, 'account', 'c_visibility_timeout_ms')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
local now = tonumber(ARGV[2])
local default_timeout = tonumber(meta[2] or DEFAULT_VISIBILITY_TIMEOUT_MS)
local out = {OK}
local ids, gens, timeouts = {}, {}, {}
for i = 3, #ARGV, 3 do
  ids[#ids + 1] = ARGV[i]
  gens[#gens + 1] = tonumber(ARGV[i + 1])
  timeouts[#timeouts + 1] = tonumber(ARGV[i + 2])
end
local records, current = read_leases(ids, gens, now)
local extended = {}
for n, id in ipairs(ids) do
  if not records[n] then
    out[#out + 1] = ABSENT
  elseif not current[n] then
    out[#out + 1] = NOT_CURRENT
  else
    local timeout = timeouts[n]
    if timeout == 0 then timeout = default_timeout end
    extended[#extended + 1] = int(now + timeout)
    extended[#extended + 1] = id
    out[#out + 1] = OK
  end
end
if #extended > 0 then redis.call('ZADD', K_LEASED, 'XX', unpack(extended)) end
return out
