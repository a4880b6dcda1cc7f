-- KEYS[1] seats, KEYS[2] line; ARGV: user, capacity, occupied, ttl_ms, new_ticket, offset,
-- max_waiting ('-' = do not wait)
local seats, line, user = KEYS[1], KEYS[2], ARGV[1]
local now = now_ms(ARGV[6])
local expires = now + tonumber(ARGV[4])
local wait = ARGV[7] ~= '-'
if redis.call('EXISTS', seats) == 0 then
  redis.call('HSET', seats, '!cap', ARGV[2], '!occ', ARGV[3], '!r', 0, '!j', 0, '!dl', fmt(now))
end
local current = redis.call('HGET', seats, user)
if current then
  local kind, ticket, until_ms, node, session, taken_at, hold = split(current)
  if kind == 'J' then
    return {'already_joined'}
  end
  if kind == 'W' then
    -- A seat is only ever handed to the head: without wait there is none for this user.
    if not wait then
      return {'full', redis.call('HGET', seats, '!cap')}
    end
    local position = fmt((redis.call('ZRANK', line, user) or 0) + 1)
    if session ~= '-' or tonumber(until_ms) > now then
      return {'queued_existing', ticket, until_ms, position}
    end
    -- Never opened and past its expiry, but not reaped yet: same place, fresh ticket.
    redis.call('HSET', seats, user, 'W\t' .. ARGV[5] .. '\t' .. fmt(expires) .. '\t-\t-\t'
      .. taken_at .. '\t' .. hold)
    return {'queued_replaced', ARGV[5], fmt(expires), position, ticket}
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
local waiting = redis.call('ZCARD', line)
-- While anyone waits there is no seat for a newcomer (no barging).
if waiting == 0 and r + j + occ < cap then
  redis.call('HSET', seats, user, 'R\t' .. ARGV[5] .. '\t' .. fmt(expires))
  redis.call('HINCRBY', seats, '!r', 1)
  return {'ok', ARGV[5], fmt(expires)}
end
if not wait then
  drop_if_empty(seats, line)
  return {'full', fmt(cap)}
end
if waiting >= tonumber(ARGV[7]) then
  drop_if_empty(seats, line)
  return {'queue_full'}
end
local number = redis.call('HINCRBY', seats, '!seq', 1)
redis.call('ZADD', line, number, user)
redis.call('HSET', seats, user, 'W\t' .. ARGV[5] .. '\t' .. fmt(expires) .. '\t-\t-\t'
  .. fmt(now) .. '\t' .. ARGV[4])
-- No wake-up: a place joining at the back moves no one's position. (Waking every waiter of the
-- room for it cost each of them a look at its place, a round trip, for nothing.)
return {'queued', ARGV[5], fmt(expires), fmt(waiting + 1)}
