-- Points a queue name of an account at a queue id.
-- KEYS: K_NAMES, the account's name -> queue id hash
-- ARGV[1]: name   ARGV[2]: queue id
-- ARGV[3]: id the name may be taken over from ('' = none): a queue whose metadata is
--          already gone (a delete interrupted between its two steps)
-- ARGV[4]: most names the account may hold (0 = no limit): counted here, so concurrent
--          creates cannot overshoot it
-- Returns: {OK} claimed, {NAME_TAKEN, holder id} held by another queue, {ACCOUNT_FULL}

local holder = redis.call('HGET', K_NAMES, ARGV[1])
if holder and holder ~= ARGV[2] and holder ~= ARGV[3] then return {NAME_TAKEN, holder} end
local most = tonumber(ARGV[4])
if not holder and most > 0 and redis.call('HLEN', K_NAMES) >= most then return {ACCOUNT_FULL} end
redis.call('HSET', K_NAMES, ARGV[1], ARGV[2])
return {OK}
