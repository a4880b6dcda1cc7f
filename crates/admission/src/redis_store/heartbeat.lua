-- KEYS[1] nodes zset; ARGV: node, offset. Returns 1 when the node was not known (new, or
-- declared dead and reaped: its seats are gone and its sessions must end).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
return redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[1])
