-- Reads one message without leasing it.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: message id   ARGV[3]: now (ms)
-- Returns: {NOT_FOUND}, {ABSENT} (no such message), or {OK, record, state, until_ms, name}
--   name: its name ('' when it has none)
--   state: 'ready', 'delayed' (until_ms: when it becomes visible) or 'leased'
--   (until_ms: when the lease expires). A message only listeners still hold is no longer
--   the pull lane's: ABSENT.

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local rec = redis.call('HGET', K_MSG, ARGV[2])
if not rec then return {ABSENT} end
local name = redis.call('HGET', K_NAMES, ARGV[2]) or ''
local states, untils = pull_lane_states({ARGV[2]}, {rec}, tonumber(ARGV[3]))
if not states[1] then return {ABSENT} end
return {OK, rec, states[1], untils[1], name}
