-- Extends current leases: a heartbeat for consumers with long jobs.
-- KEYS: the queue's keys in QueueKeys::all order; see lib.lua.
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)
-- ARGV[3..]: per lease, 3 values: id, lease generation, visibility_timeout_ms
--            (0 = consumer's setting, else 30000)
-- Returns: {NOT_FOUND} or {1, status per lease...}
--   1 extended: the message is hidden until now + timeout
--   0 no such message, 2 lease no longer current (expired or redelivered)

local meta = redis.call('HMGET', K_META, 'account', 'c_visibility_timeout_ms')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
local now = tonumber(ARGV[2])
local default_timeout = tonumber(meta[2] or '30000')
local out = {1}
for i = 3, #ARGV, 3 do
  local id, gen, timeout = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local rec = redis.call('HGET', K_MSG, id)
  if not rec then
    out[#out + 1] = 0
  else
    if not lease_current(id, rec, gen, now) then
      out[#out + 1] = 2
    else
      if timeout == 0 then timeout = default_timeout end
      redis.call('ZADD', K_LEASED, 'XX', now + timeout, id)
      out[#out + 1] = 1
    end
  end
end
return out
