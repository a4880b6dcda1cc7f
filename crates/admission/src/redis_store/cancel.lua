-- KEYS[1] seats, KEYS[2] line; ARGV: user, offset, line channel
-- Gives back an unconfirmed reservation (its seat goes to the head of the line, if anyone
-- waits) or a place in line.
local seats, line, user = KEYS[1], KEYS[2], ARGV[1]
local current = redis.call('HGET', seats, user)
if not current then
  return {'not_found'}
end
local kind, ticket = split(current)
if kind == 'R' then
  redis.call('HDEL', seats, user)
  redis.call('HINCRBY', seats, '!r', -1)
  seat_freed(seats, line, now_ms(ARGV[2]), ARGV[3])
elseif kind == 'W' then
  leave_line(seats, line, user, ARGV[3])
else
  return {'not_found'}
end
drop_if_empty(seats, line)
return {'ok', ticket}
