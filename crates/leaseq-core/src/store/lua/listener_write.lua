-- Replaces the record of an existing listener (its settings, URLs, secrets, status).
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: listener id   ARGV[3]: record
-- ARGV[4]: the record it replaces ('' = any): a write based on a stale read changes nothing
-- Returns: {NOT_FOUND}, {ABSENT} (no such listener), {NOT_CURRENT} (changed meanwhile)
--          or {OK}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local current = redis.call('HGET', K_LISTENERS, ARGV[2])
if not current then return {ABSENT} end
if ARGV[4] ~= '' and current ~= ARGV[4] then return {NOT_CURRENT} end
redis.call('HSET', K_LISTENERS, ARGV[2], ARGV[3])
return {OK}
