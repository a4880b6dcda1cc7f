-- KEYS[1] pending room hash; ARGV: offset. Hands the registration over exactly once.
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local fields = redis.call('HGETALL', key)
if #fields == 0 then
  return {'not_found'}
end
local entry = {}
for i = 1, #fields, 2 do
  entry[fields[i]] = fields[i + 1]
end
if entry['taken'] == '1' then
  return {'not_found'}
end
if tonumber(entry['expires_at']) <= now then
  return {'expired'}
end
redis.call('HSET', key, 'taken', '1')
return {'ok', entry['creator'], entry['title'], entry['capacity'], entry['password'], entry['expires_at']}
