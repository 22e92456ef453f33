-- Exact backlog figures of one queue, how much of it is leased or delayed, and how its
-- message groups are served.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: now (ms)
-- Returns: {NOT_FOUND} or
--   {OK, backlog_count, backlog_bytes, oldest_timestamp_ms, inflight_count, delayed_count,
--    visible groups, timestamp of the grouped message next in turn (0: none)}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local b = backlog()
local inflight = redis.call('ZCARD', K_LEASED)
local after_now = '(' .. ARGV[2]
local delayed = redis.call('ZCOUNT', K_DUE, after_now, '+inf')
local visible_groups, next_in_turn = 0, 0
if groups().on then
  -- A group held after a strict FIFO retry holds exactly its retried message.
  delayed = delayed + redis.call('ZCOUNT', K_GROUP_DELAYED, after_now, '+inf')
    + redis.call('ZCOUNT', K_GROUP_HOLD, after_now, '+inf')
  -- Groups with a message in a round after the last one passed (so not those whose
  -- last message is in the round being served), and never more than K_ROUNDS holds.
  local passed = redis.call('HGET', K_META, 'round') or '0'
  visible_groups = math.min(redis.call('ZCOUNT', K_GROUPS, '(' .. passed, '+inf'),
    redis.call('ZCARD', K_ROUNDS))
  -- The front of the rounds belongs to the group that has waited longest for its turn.
  local front = redis.call('ZRANGE', K_ROUNDS, 0, 0)
  if front[1] then
    local rec = redis.call('HGET', K_MSG, string.sub(front[1], 1, 32))
    if rec then
      local _, ts = parse_record(rec)
      next_in_turn = tonumber(ts)
    end
  end
end
return {OK, b[1], b[2], b[3], inflight, delayed, visible_groups, next_in_turn}
