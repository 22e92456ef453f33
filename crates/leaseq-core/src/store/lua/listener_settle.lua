-- Settles one delivery attempt of a listener: acked messages leave its lane (and the
-- queue, when no other lane holds them); retried ones are due again after their delay,
-- unless that was their last allowed attempt: then they go to the lane's dead-letter
-- outbox (the broker copies them to the listener's dead-letter queue, then clears it)
-- or, without one, are dropped and counted. Messages the lane no longer holds (settled
-- by another attempt, expired, purged) are skipped. The attempt is logged.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: access (see may_access in lib.lua)   ARGV[2]: listener id   ARGV[3]: now (ms)
-- ARGV[4]: most attempts per message   ARGV[5]: 1 when it has a dead-letter queue
-- ARGV[6]: log entry   ARGV[7]: most log entries kept   ARGV[8]: number of acks (A)
-- ARGV[9 .. 8+A]: acked ids; then per retry, 2 values: id, delay in ms
-- Returns: {NOT_FOUND}, {ABSENT} (no such listener), or
--          {OK, acked, retried, dead-lettered, dropped, next_due_ms (0: lane empty)}

if not may_access(K_META, redis.call('HGET', K_META, 'account')) then return {NOT_FOUND} end
local lid = ARGV[2]
if redis.call('HEXISTS', K_LISTENERS, lid) == 0 then return {ABSENT} end
local lane, attempts_key = lane_key(lid, LANE_DUE), lane_key(lid, LANE_ATTEMPTS)
local now, most_attempts, has_dlq = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local ack_count = tonumber(ARGV[8])
local first_retry = 9 + ack_count

local function held(ids)
  if #ids == 0 then return {} end
  return redis.call('ZMSCORE', lane, unpack(ids))
end

local acks = {}
for i = 9, first_retry - 1 do acks[#acks + 1] = ARGV[i] end
local scores, acked = held(acks), {}
for i, id in ipairs(acks) do
  if scores[i] then acked[#acked + 1] = id end
end
if #acked > 0 then release(acked, redis.call('HMGET', K_MSG, unpack(acked)), lid) end

local retry_ids, delays = {}, {}
for i = first_retry, #ARGV, 2 do
  retry_ids[#retry_ids + 1] = ARGV[i]
  delays[#delays + 1] = tonumber(ARGV[i + 1])
end
scores = held(retry_ids)
local due, dead, retried = {}, {}, 0
local attempts = {}
if #retry_ids > 0 then attempts = redis.call('HMGET', attempts_key, unpack(retry_ids)) end
for i, id in ipairs(retry_ids) do
  if scores[i] then
    if tonumber(attempts[i] or '0') >= most_attempts then
      dead[#dead + 1] = id
    else
      due[#due + 1] = int(now + math.max(delays[i], 0))
      due[#due + 1] = id
      retried = retried + 1
    end
  end
end
if #due > 0 then redis.call('ZADD', lane, unpack(due)) end
local dead_lettered, dropped = 0, 0
if #dead > 0 then
  local records = redis.call('HMGET', K_MSG, unpack(dead))
  if has_dlq then
    local outbox = {}
    for i, id in ipairs(dead) do
      if records[i] then
        outbox[#outbox + 1] = id
        outbox[#outbox + 1] = records[i]
      end
    end
    if #outbox > 0 then redis.call('HSET', lane_key(lid, LANE_DEAD), unpack(outbox)) end
    dead_lettered = #outbox / 2
  else
    dropped = #dead
  end
  release(dead, records, lid)
end

local log = lane_key(lid, LANE_LOG)
redis.call('LPUSH', log, ARGV[6])
redis.call('LTRIM', log, 0, tonumber(ARGV[7]) - 1)
local first = redis.call('ZRANGE', lane, 0, 0, 'WITHSCORES')
local next_due = 0
if first[2] then next_due = tonumber(first[2]) end
return {OK, #acked, retried, dead_lettered, dropped, next_due}
