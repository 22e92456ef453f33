-- Admits one request under a rate limit shared by every broker process (GCRA: the key
-- holds the theoretical arrival time of the next request, in µs of Redis's own clock).
-- KEYS: K_RATE, the limited subject's key (an account's or a queue's)
-- ARGV[1]: emission interval (µs per request)   ARGV[2]: burst tolerance (µs)
-- Returns: {OK} admitted, or {LIMITED, µs until a request would be}

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', K_RATE) or '0'), now)
local allowed_at = tat - tolerance
if allowed_at > now then return {LIMITED, allowed_at - now} end
local next_tat = tat + interval
redis.call('SET', K_RATE, string.format('%d', next_tat), 'PX',
  math.ceil((next_tat - now) / 1000) + 1)
return {OK}
