-- KEYS[1] seats, KEYS[2] line; ARGV: user, ticket, session, node, offset, places ('1' = a place's
-- ticket may attach its socket; '0' = only a reservation's ticket is accepted), line channel
local seats, line, user = KEYS[1], KEYS[2], ARGV[1]
local now = now_ms(ARGV[5])
local current = redis.call('HGET', seats, user)
if not current then
  return {'invalid', fmt(now)}
end
local kind, ticket, until_ms, node, session, taken_at, hold = split(current)
-- A joined seat's fourth field is the ticket it was confirmed with.
if kind == 'J' and node == ARGV[2] then
  return {'used', fmt(now)}
end
if kind == 'W' and ticket == ARGV[2] then
  if ARGV[6] ~= '1' then
    -- Refused without consuming anything: the ticket still opens the waiting socket.
    return {'place', fmt(now)}
  end
  if session ~= '-' then
    return {'used', fmt(now)}
  end
  if tonumber(until_ms) <= now then
    leave_line(seats, line, user, ARGV[7])
    drop_if_empty(seats, line)
    return {'expired', fmt(now)}
  end
  redis.call('HSET', seats, user, 'W\t' .. ticket .. '\t' .. until_ms .. '\t' .. ARGV[4] .. '\t'
    .. ARGV[3] .. '\t' .. taken_at .. '\t' .. hold)
  return {'attached', fmt(now), taken_at}
end
if kind ~= 'R' or ticket ~= ARGV[2] then
  return {'invalid', fmt(now)}
end
if tonumber(until_ms) <= now then
  redis.call('HDEL', seats, user)
  redis.call('HINCRBY', seats, '!r', -1)
  seat_freed(seats, line, now, ARGV[7])
  drop_if_empty(seats, line)
  return {'expired', fmt(now)}
end
redis.call('HSET', seats, user, 'J\t' .. ARGV[3] .. '\t' .. ARGV[4] .. '\t' .. ARGV[2])
redis.call('HINCRBY', seats, '!r', -1)
redis.call('HINCRBY', seats, '!j', 1)
return {'ok', fmt(now)}
