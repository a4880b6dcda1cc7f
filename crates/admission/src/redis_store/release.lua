-- KEYS[1] seats; ARGV: user, session, offset
local seats, user = KEYS[1], ARGV[1]
local current = redis.call('HGET', seats, user)
if not current then
  return {'noop'}
end
local kind, session = split(current)
if kind ~= 'J' or session ~= ARGV[2] then
  return {'noop'}
end
redis.call('HDEL', seats, user)
redis.call('HINCRBY', seats, '!j', -1)
drop_if_empty(seats)
return {'ok'}
