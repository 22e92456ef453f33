-- Frees a queue name, if it still points at the given queue.
-- KEYS: K_NAMES, the account's name -> queue id hash
-- ARGV[1]: name   ARGV[2]: queue id
-- Returns: {OK} released, {ABSENT} the name points elsewhere or nowhere

if redis.call('HGET', K_NAMES, ARGV[1]) == ARGV[2] then
  redis.call('HDEL', K_NAMES, ARGV[1])
  return {OK}
end
return {ABSENT}
