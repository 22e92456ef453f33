-- Points a queue name of an account at a queue id.
-- KEYS[1]: the account's name -> queue id hash
-- ARGV[1]: name   ARGV[2]: queue id
-- ARGV[3]: id the name may be taken over from ('' = none): a queue whose metadata is
--          already gone (a delete interrupted between its two steps)
-- ARGV[4]: most names the account may hold (0 = no limit): counted here, so concurrent
--          creates cannot overshoot it
-- Returns: {1} claimed, {0, holder id} held by another queue, {2} the account is full

local holder = redis.call('HGET', KEYS[1], ARGV[1])
if holder and holder ~= ARGV[2] and holder ~= ARGV[3] then return {0, holder} end
local most = tonumber(ARGV[4])
if not holder and most > 0 and redis.call('HLEN', KEYS[1]) >= most then return {2} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1}
