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
for i = 3, #ARGV, 3 do
  local id, gen, timeout = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local rec = redis.call('HGET', K_MSG, id)
  if not rec then
    out[#out + 1] = ABSENT
  else
    if not lease_current(id, rec, gen, now) then
      out[#out + 1] = NOT_CURRENT
    else
      if timeout == 0 then timeout = default_timeout end
      redis.call('ZADD', K_LEASED, 'XX', now + timeout, id)
      out[#out + 1] = OK
    end
  end
end
return out
