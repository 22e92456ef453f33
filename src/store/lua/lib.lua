-- Shared helpers, prepended to every script by scripts.rs.
--
-- Message record (a field of the `msg` hash):
--   "<t|j><timestamp_ms>:<attempts>:<lease_generation>:<body>"
-- The header is tiny and the body is stored once, verbatim.

local function parse_record(rec)
  local ct, ts, attempts, gen, offset = string.match(rec, '^([tj])(%d+):(%d+):(%d+):()')
  return ct, ts, tonumber(attempts), tonumber(gen), offset
end

-- Exact backlog figures: {count, bytes, oldest_timestamp_ms}.
local function backlog(meta_key, msg_key, age_key)
  local count = redis.call('HLEN', msg_key)
  local bytes = tonumber(redis.call('HGET', meta_key, 'bytes') or '0')
  local oldest = 0
  local first = redis.call('ZRANGE', age_key, 0, 0, 'WITHSCORES')
  if first[2] then oldest = tonumber(first[2]) end
  return {count, bytes, oldest}
end

-- The age index holds each distinct push time of live messages once (age zset) with
-- how many live messages carry it (age_count hash). `gone` maps timestamp -> number
-- of messages with that timestamp just deleted.
local function forget_ages(age_key, age_count_key, gone)
  for ts, n in pairs(gone) do
    if redis.call('HINCRBY', age_count_key, ts, -n) <= 0 then
      redis.call('HDEL', age_count_key, ts)
      redis.call('ZREM', age_key, ts)
    end
  end
end

-- Moves due delayed messages and expired leases onto the ready list, oldest first,
-- at most `limit` of each per call so one call never does unbounded work; whatever is
-- left is moved by the next call. Cost: O(log N + moved).
local function make_due_visible(ready_key, delayed_key, leased_key, now, limit)
  local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, limit)
  if #due > 0 then
    redis.call('ZREM', delayed_key, unpack(due))
    redis.call('RPUSH', ready_key, unpack(due))
  end
  local expired = redis.call('ZRANGEBYSCORE', leased_key, '-inf', now, 'LIMIT', 0, limit)
  if #expired > 0 then
    redis.call('ZREM', leased_key, unpack(expired))
    redis.call('RPUSH', ready_key, unpack(expired))
  end
  return #expired
end

local NOT_FOUND = -1

-- ARGV[1] of every queue script is the caller's access: "<account>", or
-- "<account>\n,<queue name>,<queue name>," for a token limited to some queues.
-- A queue outside it does not exist for the caller. Names never hold ',' or '\n'.
local function may_access(meta_key, meta_account)
  local account, names = string.match(ARGV[1], '^([^\n]*)\n?(.*)$')
  if meta_account ~= account then return false end
  if names == '' then return true end
  local name = redis.call('HGET', meta_key, 'name')
  return name ~= false and string.find(names, ',' .. name .. ',', 1, true) ~= nil
end
