-- Deletes one message, whatever its state.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: message id
-- Returns: {NOT_FOUND}, {ABSENT} (no such message) or {OK}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local id = ARGV[2]
local rec = redis.call('HGET', K_MSG, id)
if not rec then return {ABSENT} end
delete_messages({id}, {rec})
return {OK}
