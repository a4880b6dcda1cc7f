-- KEYS[1] seats, KEYS[2] line; ARGV: user, session, offset, line channel
-- Ends a joined seat if `session` still holds it; the seat goes to the head of the line.
local seats, line, user = KEYS[1], KEYS[2], ARGV[1]
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
seat_freed(seats, line, now_ms(ARGV[3]), ARGV[4])
drop_if_empty(seats, line)
return {'ok'}
