-- Deletes one message, whatever its state.
-- KEYS: the queue's keys in QueueKeys::all order; see lib.lua.
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: message id
-- Returns: {NOT_FOUND}, {0} (no such message) or {1}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local id = ARGV[2]
local rec = redis.call('HGET', K_MSG, id)
if not rec then return {0} end
delete_messages({id}, {rec})
return {1}
