-- rkbridge cache compare-and-set (SEMANTICS.md section 8.2): one cache entry, a hash, changes
-- only when the change carries a newer version than the entry holds.
--
-- The entry:   _v  the version of the state it holds (integers joined by ':')
--              the state: the JSON object's members as fields (layout "fields"), or the whole
--              state as JSON text in field val (layout "value")
-- A delete:    _v and _deleted = 1, kept for tombstone_ttl seconds, so that an older change
--              arriving later (a replay, a slow producer, a stale cache-aside fill) still loses.
--              Readers treat an entry with _deleted as a miss.
--
-- Arguments, from args[first] on:
--   version        "123" or "1700000000000:5" (each part a non-negative integer, compared
--                  numerically, part by part; "5" < "5:0")
--   op             "upsert" or "delete"
--   ttl            seconds an upserted entry lives; 0: no expiry
--   tombstone_ttl  seconds a delete's tombstone lives
--   field value... the new state (upsert)
-- Returns 1 if the change was applied, 0 if it was stale (not newer: equal is a duplicate, but
-- an upsert may fill the state of the version a tombstone holds).
--
-- Sent to Redis in two ways (src/process/cache.c): inside the sink's exactly-once script as the
-- RKB.CACHE pseudo-command, and as a script of its own (rkbridge cache-script prints it) that
-- the sink's at-least-once mode and applications' cache-aside fills call with
--   EVALSHA <sha> 1 <key> <version> upsert <ttl> <tombstone_ttl> field value ...

-- Splits a version into its parts with leading zeros removed; nil if it is not one.
local function cache_version_parts(text)
  if type(text) ~= 'string' or text == '' or #text > 200 then return nil end
  local parts = {}
  for part in string.gmatch(text .. ':', '([^:]*):') do
    if not string.match(part, '^%d+$') then return nil end
    part = string.gsub(part, '^0+', '')
    parts[#parts + 1] = part == '' and '0' or part
  end
  return parts
end

-- -1, 0 or 1 as version a is older than, equal to or newer than b (parts lists).
local function cache_version_compare(a, b)
  for i = 1, math.max(#a, #b) do
    local x, y = a[i], b[i]
    if x == nil then return -1 end
    if y == nil then return 1 end
    if #x ~= #y then return #x < #y and -1 or 1 end
    if x ~= y then return x < y and -1 or 1 end
  end
  return 0
end

-- Why key cannot hold a cache entry (nil: it can).
local function cache_wrong_type(key)
  local t = redis.call('TYPE', key).ok
  if t == 'none' or t == 'hash' then return nil end
  return 'WRONGTYPE key ' .. string.format('%q', key) .. ' holds a ' .. t ..
    ', a cache entry is a hash'
end

local function rkb_cache_cas(key, args, first)
  local version, op = args[first], args[first + 1]
  local ttl, tombstone_ttl = tonumber(args[first + 2]), tonumber(args[first + 3])
  local parts = cache_version_parts(version)
  if not parts then
    return redis.error_reply('ERR cache version ' .. string.format('%q', tostring(version)) ..
      ' is not a non-negative integer or integers joined by :')
  end
  if (op ~= 'upsert' and op ~= 'delete') or not ttl or not tombstone_ttl then
    return redis.error_reply('ERR cache arguments: version op ttl tombstone_ttl field value ...')
  end
  local why = cache_wrong_type(key)
  if why then return redis.error_reply(why) end

  local stored = cache_version_parts(redis.call('HGET', key, '_v'))
  -- An entry without a readable version was not written through this script: the change wins.
  if stored then
    local order = cache_version_compare(parts, stored)
    -- Equal is a duplicate, except for the state of the version a tombstone names: with
    -- redis.cache.mode=invalidate the row still exists at that version, and a cache-aside fill
    -- that read it must be able to fill (a real delete leaves no row to read at its version).
    if order < 0 or (order == 0 and (op == 'delete' or
        redis.call('HEXISTS', key, '_deleted') == 0)) then
      return 0
    end
  end

  redis.call('DEL', key)
  if op == 'delete' then
    redis.call('HSET', key, '_v', version, '_deleted', '1')
    redis.call('EXPIRE', key, tombstone_ttl)
    return 1
  end
  local fields = {'_v', version}
  for i = first + 4, #args, 2 do
    fields[#fields + 1] = args[i]
    fields[#fields + 1] = args[i + 1] or ''
  end
  redis.call('HSET', key, unpack(fields))
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  return 1
end

-- In the exactly-once script: RKB.CACHE key version op ttl tombstone_ttl field value ...
-- A stale change is not an error; it is counted.
pseudo['RKB.CACHE'] = {
  check = function(argv)
    if #argv > 7900 then return 'the cache entry has too many fields (' .. #argv .. ' arguments)' end
    return cache_wrong_type(argv[2])
  end,
  run = function(argv)
    local reply = rkb_cache_cas(argv[2], argv, 3)
    if type(reply) == 'table' and reply.err then return reply.err end
    if reply == 0 then counters.stale = (counters.stale or 0) + 1 end
    return nil
  end,
}
