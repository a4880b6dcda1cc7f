-- KEYS[1] seats; ARGV: user, capacity, occupied, ttl_ms, new_ticket, offset
local seats, user = KEYS[1], ARGV[1]
local now = now_ms(ARGV[6])
local expires = now + tonumber(ARGV[4])
if redis.call('EXISTS', seats) == 0 then
  redis.call('HSET', seats, '!cap', ARGV[2], '!occ', ARGV[3], '!r', 0, '!j', 0)
end
local current = redis.call('HGET', seats, user)
if current then
  local kind, ticket, until_ms = split(current)
  if kind == 'J' then
    return {'already_joined'}
  end
  if tonumber(until_ms) > now then
    return {'existing', ticket, until_ms}
  end
  -- Expired but not reaped yet: the permit is still ours; only the ticket is reissued.
  redis.call('HSET', seats, user, 'R\t' .. ARGV[5] .. '\t' .. fmt(expires))
  return {'replaced', ARGV[5], fmt(expires), ticket}
end
local book = redis.call('HMGET', seats, '!cap', '!occ', '!r', '!j')
local cap, occ, r, j = tonumber(book[1]), tonumber(book[2]), tonumber(book[3]), tonumber(book[4])
if r + j + occ >= cap then
  drop_if_empty(seats)
  return {'full', fmt(cap)}
end
redis.call('HSET', seats, user, 'R\t' .. ARGV[5] .. '\t' .. fmt(expires))
redis.call('HINCRBY', seats, '!r', 1)
return {'ok', ARGV[5], fmt(expires)}
