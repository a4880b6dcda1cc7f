-- Shared by every permit script (prepended when the script is built).
-- A room's seats hash holds its bookkeeping under fields starting with '!' (user ids never do):
--   !cap capacity, !occ seats taken elsewhere when the pool was created, !r reserved, !j joined,
--   !seq the last place number handed out in the line, !dl the last departure (ms) and !dg the
--   mean gap between departures (ms, exponentially weighted; absent until one was seen).
-- Every other field is a user's seat or place:
--   "R\t<ticket>\t<expires_ms>[\t<node the seat was handed to a place through>]",
--   "J\t<session>\t<node>\t<ticket it was confirmed with>", or a place in the waiting line,
--   "W\t<ticket>\t<expires_ms>\t<node or ->\t<session or ->\t<taken_at_ms>\t<hold_ms>"
--   (node and session are '-' until the place's socket attaches; hold_ms is how long a seat
--   handed to the attached place is held for it to confirm).
-- The line itself is the sorted set KEYS[2] ("{room}:line"): users scored by place number, so
-- first come first. A user is in it exactly when their field is a "W".
-- Time is Redis's own clock, plus a test-only offset in the ARGV (always 0 in production).
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
  return parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], parts[7]
end

-- A room with no holder and no one in line leaves no key behind (an empty sorted set is
-- removed by Redis itself).
local function drop_if_empty(seats, line)
  local counts = redis.call('HMGET', seats, '!r', '!j')
  if tonumber(counts[1] or 0) + tonumber(counts[2] or 0) <= 0
      and redis.call('ZCARD', line) == 0 then
    redis.call('DEL', seats)
  end
end

-- The weight of the newest gap in the mean gap between departures (as line.rs's Departures).
local GAP_WEIGHT = 0.2

local function record_departure(seats, now)
  local d = redis.call('HMGET', seats, '!dl', '!dg')
  local last = tonumber(d[1]) or now
  local gap = math.max(now - last, 0)
  local mean = tonumber(d[2])
  if mean then
    mean = mean + GAP_WEIGHT * (gap - mean)
  else
    mean = gap
  end
  redis.call('HSET', seats, '!dl', fmt(math.max(last, now)), '!dg', string.format('%.17g', mean))
end

-- A seat was freed: its holder is already out of the hash and out of '!r'/'!j'. Records the
-- departure and, in the same script, hands the seat to the head of the line: the head's place
-- becomes a reservation on its own ticket ('!r' + 1), so the seat never becomes free and no
-- newcomer can take it first. Unopened places past their expiry are given up on the way. With
-- no one (left) in line the seat is simply free: the free count is derived from '!r' + '!j'.
-- Returns the user the seat went to, or nil.
local function seat_freed(seats, line, now, channel)
  record_departure(seats, now)
  local moved = false
  while true do
    local head = redis.call('ZRANGE', line, 0, 0)[1]
    if not head then
      break
    end
    redis.call('ZREM', line, head)
    moved = true
    local value = redis.call('HGET', seats, head)
    if value then
      local kind, ticket, until_ms, node, session, _, hold = split(value)
      if kind == 'W' then
        if session ~= '-' then
          -- The socket is there to confirm at once; the hold only bounds a stuck one.
          redis.call('HSET', seats, head,
            'R\t' .. ticket .. '\t' .. fmt(now + tonumber(hold)) .. '\t' .. node)
          redis.call('HINCRBY', seats, '!r', 1)
          redis.call('PUBLISH', channel, '1')
          return head
        elseif tonumber(until_ms) > now then
          -- Not opened yet: the seat is held for as long as the place would have been.
          redis.call('HSET', seats, head, 'R\t' .. ticket .. '\t' .. until_ms)
          redis.call('HINCRBY', seats, '!r', 1)
          redis.call('PUBLISH', channel, '1')
          return head
        end
        redis.call('HDEL', seats, head)
      end
    end
  end
  if moved then
    redis.call('PUBLISH', channel, '1')
  end
  return nil
end

-- Takes the place of `user` (its field `value` is a "W") out of the line.
local function leave_line(seats, line, user, channel)
  redis.call('HDEL', seats, user)
  redis.call('ZREM', line, user)
  redis.call('PUBLISH', channel, '1')
end
