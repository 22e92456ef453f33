-- Points a queue name of an account at a queue id.
-- KEYS[1]: the account's name -> queue id hash
-- ARGV[1]: name   ARGV[2]: queue id
-- ARGV[3]: id the name may be taken over from ('' = none): a queue whose metadata is
--          already gone (a delete interrupted between its two steps)
-- Returns: '' when claimed, else the id that holds the name

local holder = redis.call('HGET', KEYS[1], ARGV[1])
if holder and holder ~= ARGV[2] and holder ~= ARGV[3] then return holder end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ''
