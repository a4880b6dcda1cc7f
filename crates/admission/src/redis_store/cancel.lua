-- KEYS[1] seats; ARGV: user, offset
local seats, user = KEYS[1], ARGV[1]
local current = redis.call('HGET', seats, user)
if not current then
  return {'not_found'}
end
local kind, ticket = split(current)
if kind ~= 'R' then
  return {'not_found'}
end
redis.call('HDEL', seats, user)
redis.call('HINCRBY', seats, '!r', -1)
drop_if_empty(seats)
return {'ok', ticket}
