-- KEYS[1] seats, KEYS[2] line; ARGV: user, session, offset, line channel
-- The waiting socket of `session` ended: its place is given up if it is still waiting and
-- attached to that socket (a seat, even one the same session joined, is never touched).
local seats, line, user = KEYS[1], KEYS[2], ARGV[1]
local current = redis.call('HGET', seats, user)
if not current then
  return {'noop'}
end
local kind, _, _, _, session = split(current)
if kind ~= 'W' or session ~= ARGV[2] then
  return {'noop'}
end
leave_line(seats, line, user, ARGV[4])
drop_if_empty(seats, line)
return {'ok'}
