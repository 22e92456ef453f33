-- Reads the dead-letter outbox: messages buried here, waiting to be copied to the
-- consumer's dead-letter queue.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: most entries to return
-- ARGV[3]: most record bytes in the reply (at least one entry is always returned)
-- Returns: {NOT_FOUND} or {OK, dead_letter_queue_name ('' = none), more (1: entries remain
--          beyond these), id1, record1, ...}

local meta = redis.call('HMGET', K_META, 'account', 'c_dlq')
if not may_access(K_META, meta[1]) then return {NOT_FOUND} end
local out = {OK, meta[2] or '', 0}
-- One HSCAN step keeps the call bounded; the rest is read by the next transfer.
if read_outbox(K_DEAD, tonumber(ARGV[2]), tonumber(ARGV[3]), out) then out[3] = 1 end
return out
