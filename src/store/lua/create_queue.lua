-- Writes a new queue's metadata.
-- KEYS[1]: meta hash
-- ARGV: field, value pairs (must include 'account')
-- Returns: 1 created, 0 a queue with this id already exists

if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
