-- KEYS[1] seats, KEYS[2] line; ARGV: offset, line channel, dead node ids...
-- Reclaims reservations past their TTL, unopened places past theirs, and the joined seats,
-- places and handed-over seats of nodes that stopped renewing their lease. Every seat freed so
-- goes to the head of the line, if anyone still waits.
local seats, line = KEYS[1], KEYS[2]
local now = now_ms(ARGV[1])
local channel = ARGV[2]
local dead = {}
for i = 3, #ARGV do
  dead[ARGV[i]] = true
end
local fields = redis.call('HGETALL', seats)
local reservations, joined, places = 0, 0, 0
for i = 1, #fields, 2 do
  local user, value = fields[i], fields[i + 1]
  if string.sub(user, 1, 1) ~= '!' then
    local kind, a, b, c, d = split(value)
    if kind == 'R' and (tonumber(b) <= now or (c and dead[c])) then
      redis.call('HDEL', seats, user)
      reservations = reservations + 1
    elseif kind == 'J' and dead[b] then
      redis.call('HDEL', seats, user)
      joined = joined + 1
    elseif kind == 'W' and ((d == '-' and tonumber(b) <= now) or dead[c]) then
      redis.call('HDEL', seats, user)
      redis.call('ZREM', line, user)
      places = places + 1
    end
  end
end
if reservations > 0 then
  redis.call('HINCRBY', seats, '!r', -reservations)
end
if joined > 0 then
  redis.call('HINCRBY', seats, '!j', -joined)
end
if places > 0 then
  redis.call('PUBLISH', channel, '1')
end
for _ = 1, reservations + joined do
  seat_freed(seats, line, now, channel)
end
if #fields > 0 then
  drop_if_empty(seats, line)
end
return {reservations + places, joined, redis.call('EXISTS', seats)}
