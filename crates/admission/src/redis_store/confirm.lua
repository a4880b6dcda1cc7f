-- KEYS[1] seats; ARGV: user, ticket, session, node, offset
local seats, user = KEYS[1], ARGV[1]
local now = now_ms(ARGV[5])
local current = redis.call('HGET', seats, user)
if not current then
  return {'invalid', fmt(now)}
end
local kind, ticket, until_ms, used = split(current)
if kind == 'J' and used == ARGV[2] then
  return {'used', fmt(now)}
end
if kind ~= 'R' or ticket ~= ARGV[2] then
  return {'invalid', fmt(now)}
end
if tonumber(until_ms) <= now then
  redis.call('HDEL', seats, user)
  redis.call('HINCRBY', seats, '!r', -1)
  drop_if_empty(seats)
  return {'expired', fmt(now)}
end
redis.call('HSET', seats, user, 'J\t' .. ARGV[3] .. '\t' .. ARGV[4] .. '\t' .. ARGV[2])
redis.call('HINCRBY', seats, '!r', -1)
redis.call('HINCRBY', seats, '!j', 1)
return {'ok', fmt(now)}
