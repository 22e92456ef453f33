-- Deletes one message, whatever its state.
-- KEYS: the queue's keys in QueueKeys::all order; see lib.lua.
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: message id
-- Returns: {NOT_FOUND}, {0} (no such message) or {1}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local id = ARGV[2]
local rec = redis.call('HGET', K_MSG, id)
if not rec then return {0} end
local _, ts, _, _, offset = parse_record(rec)
-- An id on the ready list stays behind; pulls skip ids without a record.
redis.call('HDEL', K_MSG, id)
redis.call('ZREM', K_LEASED, id)
redis.call('ZREM', K_DELAYED, id)
redis.call('HINCRBY', K_META, 'bytes', -(#rec - offset + 1))
forget_ages(K_AGE, K_AGE_COUNT, {[ts] = 1})
redis.call('HDEL', K_ORIGIN, id)
return {1}
