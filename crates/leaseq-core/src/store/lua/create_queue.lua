-- Writes a new queue's metadata.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV: field, value pairs (must include 'account')
-- Returns: {OK} created, {NAME_TAKEN} a queue with this id already exists

if redis.call('EXISTS', K_META) == 1 then return {NAME_TAKEN} end
redis.call('HSET', K_META, unpack(ARGV))
return {OK}
