-- Frees a queue name, if it still points at the given queue.
-- KEYS[1]: the account's name -> queue id hash
-- ARGV[1]: name   ARGV[2]: queue id
-- Returns: 1 released, 0 the name points elsewhere or nowhere

if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
