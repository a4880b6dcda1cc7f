-- KEYS[1] pending room hash; ARGV: ttl_ms, creator, title, capacity, password_hash ('' = none), offset
-- The key's own expiry removes a registration nobody materialized: no reaper needed, no leak.
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[6])
local expires = now + tonumber(ARGV[1])
local held = redis.call('HGET', key, 'expires_at')
if held and tonumber(held) > now then
  return {'pending'}
end
redis.call('DEL', key)
redis.call('HSET', key, 'creator', ARGV[2], 'title', ARGV[3], 'capacity', ARGV[4],
  'password', ARGV[5], 'expires_at', string.format('%d', expires), 'taken', '0')
redis.call('PEXPIRE', key, tonumber(ARGV[1]))
return {'ok', string.format('%d', expires)}
