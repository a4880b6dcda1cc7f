-- KEYS[1] seats, KEYS[2] line; ARGV: user, ticket, session, node, offset
-- Where the place of `user`, attached to `session`, stands. A seat handed to it (a reservation
-- on the place's own ticket) is joined by `session` here, in the same step.
local seats, line, user = KEYS[1], KEYS[2], ARGV[1]
local now = now_ms(ARGV[5])
local current = redis.call('HGET', seats, user)
if not current then
  return {'gone'}
end
local kind, ticket, until_ms, _, session = split(current)
if kind == 'W' and session == ARGV[3] then
  local rank = redis.call('ZRANK', line, user)
  local position = rank and rank + 1 or 1
  return {'waiting', fmt(position), redis.call('HGET', seats, '!dg') or ''}
end
if kind == 'R' and ticket == ARGV[2] and tonumber(until_ms) > now then
  redis.call('HSET', seats, user, 'J\t' .. ARGV[3] .. '\t' .. ARGV[4] .. '\t' .. ARGV[2])
  redis.call('HINCRBY', seats, '!r', -1)
  redis.call('HINCRBY', seats, '!j', 1)
  return {'seat'}
end
-- Not this place's seat, or held past its time by a socket that did not look: the reaper
-- gives such a seat on.
return {'gone'}
