-- rkbridge exactly-once apply script (SEMANTICS.md section 2.4): applies one partition's records
-- and advances the partition's offset kept in Redis, atomically. The KEYS/ARGV layout is
-- described in src/sink/eos.c. Sent as the last part of one chunk, after the libraries that
-- register pseudo-commands (src/process/*.lua): `pseudo` and `counters` are declared before them.
local offset_key = KEYS[1]

local function quote(s)
  if #s > 64 then return "'" .. string.sub(s, 1, 64) .. "...'" end
  return "'" .. s .. "'"
end

-- Redis's own integer rule: optional '-', no leading zero, fits in 64 bits.
local function is_integer(s)
  if s == '0' then return true end
  local digits = string.match(s, '^%-?([1-9]%d*)$')
  if not digits then return false end
  if #digits ~= 19 then return #digits < 19 end
  local limit = '9223372036854775807'
  if string.sub(s, 1, 1) == '-' then limit = '9223372036854775808' end
  for i = 1, 19 do
    local a, b = string.byte(digits, i), string.byte(limit, i)
    if a ~= b then return a < b end
  end
  return true
end

-- A number the float commands accept: no blank or NUL (tonumber would skip them), not NaN,
-- and finite unless allow_inf (ZADD takes inf, INCRBYFLOAT cannot reach it).
local function is_number(s, allow_inf)
  if string.find(s, '[%s%z]') then return false end
  local n = tonumber(s)
  if not n or n ~= n then return false end
  return allow_inf or (n ~= math.huge and n ~= -math.huge)
end

local type_names = {string = 'a string', list = 'a list', set = 'a set',
  zset = 'a sorted set', hash = 'a hash', stream = 'a stream'}
local function type_name(t)
  return type_names[t] or ('a value of type ' .. quote(t))
end

-- Why the command's key cannot take it (nil: absent, or of type want).
local function wrong_type(argv, want)
  local t = redis.call('TYPE', argv[2]).ok
  if t == 'none' or t == want then return nil end
  return 'WRONGTYPE key ' .. quote(argv[2]) .. ' holds ' .. type_name(t) .. ', ' ..
    string.upper(argv[1]) .. ' needs ' .. type_name(want)
end

-- INCRBY/INCRBYFLOAT key n (want 'string') and HINCRBY/HINCRBYFLOAT key field n ('hash').
local function check_counter(argv, want, integer)
  local reason = wrong_type(argv, want)
  if reason then return reason end
  local valid = integer and is_integer or is_number
  local kind = integer and 'an integer' or 'a number'
  local name = string.upper(argv[1])
  local current, where, increment
  if want == 'hash' then
    if not argv[3] then return nil end -- the arity error comes from running it
    current = redis.call('HGET', argv[2], argv[3])
    where = 'field ' .. quote(argv[3]) .. ' of key ' .. quote(argv[2])
    increment = argv[4]
  else
    current = redis.call('GET', argv[2])
    where = 'key ' .. quote(argv[2])
    increment = argv[3]
  end
  if current and not valid(current) then
    return where .. ' holds ' .. quote(current) .. ', not ' .. kind .. ' (' .. name .. ')'
  end
  if increment and not valid(increment) then
    return 'increment ' .. quote(increment) .. ' is not ' .. kind .. ' (' .. name .. ')'
  end
  return nil
end

local zadd_flags = {NX = true, XX = true, GT = true, LT = true, CH = true, INCR = true}
local function check_zadd(argv)
  local reason = wrong_type(argv, 'zset')
  if reason then return reason end
  local i = 3
  while argv[i] and zadd_flags[string.upper(argv[i])] do i = i + 1 end
  while argv[i] do
    if not is_number(argv[i], true) then
      return 'score ' .. quote(argv[i]) .. ' is not a number (ZADD)'
    end
    i = i + 2
  end
  return nil
end

local function of_type(want)
  return function(argv) return wrong_type(argv, want) end
end

-- By command name; SET, DEL, EXPIRE, PUBLISH, module commands (JSON.SET, TS.ADD, TS.DEL:
-- their types cannot be checked from here) and anything else have no check and fail, if
-- they do, when run.
local checks = {
  HSET = of_type('hash'),
  HINCRBY = function(argv) return check_counter(argv, 'hash', true) end,
  HINCRBYFLOAT = function(argv) return check_counter(argv, 'hash', false) end,
  INCRBY = function(argv) return check_counter(argv, 'string', true) end,
  INCRBYFLOAT = function(argv) return check_counter(argv, 'string', false) end,
  RPUSH = of_type('list'), LPUSH = of_type('list'), LREM = of_type('list'),
  SADD = of_type('set'), SREM = of_type('set'),
  ZADD = check_zadd, ZREM = of_type('zset'),
  XADD = of_type('stream'),
}

-- unpack() cannot pass more values than the Lua C stack holds (8000).
local max_argc = 7900

local function check(argv)
  local p = pseudo[string.upper(argv[1])]
  if p then
    if p.check then return p.check(argv) end
    return nil
  end
  if #argv > max_argc then
    return string.upper(argv[1]) .. ' has ' .. #argv ..
      ' arguments, more than the exactly-once script can pass (' .. max_argc .. ')'
  end
  local check_one = checks[string.upper(argv[1])]
  if argv[2] and check_one then return check_one(argv) end
  return nil
end

-- Runs a checked command; a failure is Redis's message first (so that the caller can tell
-- OOM from a data error), then what failed.
local function run(argv)
  local p = pseudo[string.upper(argv[1])]
  if p then return p.run(argv) end
  local reply = redis.pcall(unpack(argv))
  if type(reply) == 'table' and reply.err then
    local what = string.upper(argv[1])
    if argv[2] then what = what .. ' ' .. quote(argv[2]) end
    return reply.err .. ' (' .. what .. ')'
  end
  return nil
end

-- What the pseudo-commands counted ({name = n}), as the reply's fifth element {name, n, ...}.
local function flat_counters()
  local flat = {}
  for name, n in pairs(counters) do
    flat[#flat + 1] = name
    flat[#flat + 1] = n
  end
  return flat
end

local next_offset = -1
local stored = redis.call('GET', offset_key)
if stored then
  if not is_integer(stored) or string.sub(stored, 1, 1) == '-' then
    return redis.error_reply('ERR rkbridge offset key ' .. quote(offset_key) ..
      ' holds ' .. quote(stored) .. ', not an offset')
  end
  next_offset = tonumber(stored)
end
local stored_offset = next_offset
local function store(offset)
  if offset ~= stored_offset then
    redis.call('SET', offset_key, string.format('%d', offset))
  end
end

local applied = 0

-- Records whose only command is a plain SET (no options) are applied as one MSET per run of
-- them: one call into Redis instead of one per record. A run is applied before anything that
-- follows it, so the order of writes is kept; MSET cannot fail for one key alone (it fails as a
-- whole, e.g. OOM), so the run's first record is where the script stops then.
local run_args, run_first, run_records = {}, -1, 0
local function flush_run()
  if run_records == 0 then return nil end
  local reply = redis.pcall('MSET', unpack(run_args))
  if type(reply) == 'table' and reply.err then
    if run_records == 1 then return reply.err .. ' (SET ' .. quote(run_args[1]) .. ')' end
    return reply.err .. ' (MSET of ' .. run_records .. ' keys from ' .. quote(run_args[1]) .. ')'
  end
  applied = applied + run_records
  run_args, run_first, run_records = {}, -1, 0
  return nil
end
local function run_failed(reason)
  store(run_first)
  return {applied, run_first, run_first, reason, flat_counters()}
end

local pos = 2
for _ = 1, tonumber(ARGV[1]) do
  local offset, command_count = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])
  pos = pos + 2
  if command_count == 1 and ARGV[pos] == '3' and string.upper(ARGV[pos + 1]) == 'SET' then
    -- Below the stored offset: applied before (a replay, or a zombie writer).
    if offset >= next_offset then
      if run_records == 0 then run_first = offset end
      run_args[#run_args + 1] = ARGV[pos + 2]
      run_args[#run_args + 1] = ARGV[pos + 3]
      run_records = run_records + 1
      next_offset = offset + 1
      if #run_args >= max_argc - 2 then
        local reason = flush_run()
        if reason then return run_failed(reason) end
      end
    end
    pos = pos + 4
  else
    local commands = {}
    for c = 1, command_count do
      local argc = tonumber(ARGV[pos])
      local argv = {}
      for j = 1, argc do argv[j] = ARGV[pos + j] end
      pos = pos + 1 + argc
      commands[c] = argv
    end
    if offset >= next_offset then
      local reason = flush_run()
      if reason then return run_failed(reason) end
      for c = 1, command_count do
        reason = check(commands[c])
        if reason then break end
      end
      if not reason then
        for c = 1, command_count do
          reason = run(commands[c])
          if reason then break end
        end
      end
      if reason then
        store(offset)
        return {applied, offset, offset, reason, flat_counters()}
      end
      applied = applied + 1
      next_offset = offset + 1
    end
  end
end
local reason = flush_run()
if reason then return run_failed(reason) end
store(next_offset)
return {applied, next_offset, -1, '', flat_counters()}
