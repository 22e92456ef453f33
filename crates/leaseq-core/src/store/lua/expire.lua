-- Retention: deletes messages older than the queue's message_retention_period, whether
-- ready, delayed or leased. Work is proportional to what expires: the age index names
-- the expired timestamps and the ids pushed at each.
-- KEYS: the queue's keys (K_META, K_MSG, …: the generated prelude names them).
-- ARGV[1]: now (ms)   ARGV[2]: most timestamps handled per call
-- ARGV[3]: retention floor in seconds (tests shorten retention below Cloudflare's 60 s)
-- Returns: {NOT_FOUND} or
--          {OK, account, messages expired, next_due_ms, more_due (0/1), dead outbox size}
--   next_due_ms: when the oldest remaining message expires; when empty, now + retention.

local meta = redis.call('HMGET', K_META, 'account', 'retention')
if not meta[1] then return {NOT_FOUND} end
local now = tonumber(ARGV[1])
local retention_ms = math.max(tonumber(meta[2] or DEFAULT_RETENTION), tonumber(ARGV[3])) * 1000
local cutoff = now - retention_ms
local due = redis.call('ZRANGEBYSCORE', K_AGE, '-inf', '(' .. cutoff, 'LIMIT', 0, tonumber(ARGV[2]))
local expired = 0
for _, ts in ipairs(due) do
  expired = expired + delete_live(bucket_ids(ts), now)
  -- delete_live emptied the bucket; a bucket from before layout 2 may still hold ids
  -- of acked messages, and goes too.
  store_bucket(ts, {})
end
if expired > 0 then redis.call('HINCRBY', K_META, 'expired', expired) end
local oldest = redis.call('ZRANGE', K_AGE, 0, 0, 'WITHSCORES')
local next_due = now + retention_ms
if oldest[2] then next_due = tonumber(oldest[2]) + retention_ms end
local more = 0
if next_due <= now then more = 1 end
return {OK, meta[1], expired, next_due, more, redis.call('HLEN', K_DEAD)}
