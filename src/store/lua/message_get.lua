-- Reads one message without leasing it.
-- KEYS: the queue's keys in QueueKeys::all order; see lib.lua.
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: message id
-- Returns: {NOT_FOUND}, {0} (no such message), or {1, record, state, until_ms}
--   state: 'ready', 'delayed' (until_ms: when it becomes visible) or 'leased'
--   (until_ms: when the lease expires)

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local rec = redis.call('HGET', K_MSG, ARGV[2])
if not rec then return {0} end
local leased = redis.call('ZSCORE', K_LEASED, ARGV[2])
if leased then return {1, rec, 'leased', tonumber(leased)} end
local delayed = redis.call('ZSCORE', K_DELAYED, ARGV[2])
if delayed then return {1, rec, 'delayed', tonumber(delayed)} end
return {1, rec, 'ready', 0}
