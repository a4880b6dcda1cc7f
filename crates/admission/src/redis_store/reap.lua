-- KEYS[1] seats; ARGV: offset, dead node ids...
-- Reclaims reservations past their TTL and joined seats of nodes that stopped renewing their lease.
local seats = KEYS[1]
local now = now_ms(ARGV[1])
local dead = {}
for i = 2, #ARGV do
  dead[ARGV[i]] = true
end
local fields = redis.call('HGETALL', seats)
local reservations, joined = 0, 0
for i = 1, #fields, 2 do
  local user, value = fields[i], fields[i + 1]
  if string.sub(user, 1, 1) ~= '!' then
    local kind, a, b = split(value)
    if kind == 'R' and tonumber(b) <= now then
      redis.call('HDEL', seats, user)
      reservations = reservations + 1
    elseif kind == 'J' and dead[b] then
      redis.call('HDEL', seats, user)
      joined = joined + 1
    end
  end
end
if reservations > 0 then
  redis.call('HINCRBY', seats, '!r', -reservations)
end
if joined > 0 then
  redis.call('HINCRBY', seats, '!j', -joined)
end
if #fields > 0 then
  drop_if_empty(seats)
end
return {reservations, joined, redis.call('EXISTS', seats)}
