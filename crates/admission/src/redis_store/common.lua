-- Shared by every permit script (prepended when the script is built).
-- A room's seats hash holds its bookkeeping under fields starting with '!' (user ids never do):
--   !cap capacity, !occ seats taken elsewhere when the pool was created, !r reserved, !j joined.
-- Every other field is a user's seat: "R\t<ticket>\t<expires_ms>" or
-- "J\t<session>\t<node>\t<ticket it was confirmed with>".
-- Time is Redis's own clock, plus a test-only offset in the last ARGV (always 0 in production).
local function now_ms(offset)
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(offset)
end

local function fmt(n)
  return string.format('%d', n)
end

local function split(value)
  local parts = {}
  for part in string.gmatch(value, '[^\t]+') do
    parts[#parts + 1] = part
  end
  return parts[1], parts[2], parts[3], parts[4]
end

-- A room with no holder leaves no key behind.
local function drop_if_empty(seats)
  local counts = redis.call('HMGET', seats, '!r', '!j')
  if tonumber(counts[1] or 0) + tonumber(counts[2] or 0) <= 0 then
    redis.call('DEL', seats)
  end
end
