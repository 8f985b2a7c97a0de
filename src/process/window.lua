-- Windowed aggregation on event time: the RKB.WINDOW pseudo-command of the exactly-once apply
-- script (SEMANTICS.md sections 6.3 and 7.2). The rules, the Redis key layout and the result
-- records are described in src/process/window.h; the C side (src/process/window.c) encodes
-- the records and emits what this leaves pending. Part of one chunk with src/sink/apply.lua:
-- everything here runs atomically with the partition's offset, so each record changes the
-- window state exactly once.
--
--   RKB.WINDOW  state spec time group value element
--     state    rkbridge:window:{TOPIC:PARTITION}:NAMESPACE, the partition's hash (clock,
--              counters, seq); STATE:open (zset of open windows, score = the clock value that
--              closes them) and STATE:pending (results not yet acknowledged by Kafka)
--     spec     the window config, see parse_spec
--     time     the event time in ms since the epoch, -1 when the record has none
--     group    what the record is aggregated under
--     value    a canonical number for sum/min/max/avg ('' when none is configured)
--     element  what distinct counts ('' when not configured)
--   RKB.WINDOW.LATE  state
--     the pass past a late record that went to the dead-letter topic: counts it (once: the
--     pass moves the offset past it in the same script).

-- Parsed specs by text, for this call.
local window_specs = {}
-- Partition state keys whose types were checked in this call.
local window_checked = {}

-- "KIND SIZE ADVANCE GAP GRACE AGGREGATES EMIT OUTPUT LATE STATE_TTL RESULT_TTL PREFIX", e.g.
-- "tumbling 10000 10000 0 2000 count,sum final 1 drop 604800000 86400000 win:c1:"
local function parse_spec(text)
  local spec = window_specs[text]
  if spec then return spec end
  local kind, size, advance, gap, grace, aggregates, emit, output, late, state_ttl, result_ttl,
    prefix = string.match(text, '^(%a+) (%d+) (%d+) (%d+) (%d+) ([%a,]+) (%a+) ([01]) ([%a%-]+) ' ..
      '(%d+) (%d+) (.*)$')
  if not kind then return nil end
  spec = {kind = kind, size = tonumber(size), advance = tonumber(advance), gap = tonumber(gap),
    grace = tonumber(grace), update = emit == 'update', output = output == '1',
    dead_letter = late == 'dead-letter', state_ttl = tonumber(state_ttl),
    result_ttl = tonumber(result_ttl), prefix = prefix, aggregates = {}, has = {}}
  for name in string.gmatch(aggregates, '[^,]+') do
    spec.aggregates[#spec.aggregates + 1] = name
    spec.has[name] = true
  end
  spec.needs_sum = spec.has.sum or spec.has.avg
  window_specs[text] = spec
  return spec
end

-- Integers as integers (up to 2^53: event times, counts), others with the fewest digits that
-- read back as the same double: the same number always prints the same, valid JSON.
local function num_text(x)
  if x == math.floor(x) and math.abs(x) < 9007199254740992 then
    return string.format('%d', x)
  end
  for _, f in ipairs({'%.15g', '%.16g'}) do
    local s = string.format(f, x)
    if tonumber(s) == x then return s end
  end
  return string.format('%.17g', x)
end

local function window_quote(s)
  if #s > 64 then return "'" .. string.sub(s, 1, 64) .. "...'" end
  return "'" .. s .. "'"
end

-- Why key cannot serve as a `want` ('hash', 'zset', 'hll'); nil: absent, or usable.
local function window_wrong_type(key, want)
  local t = redis.call('TYPE', key).ok
  if t == 'none' or t == want then return nil end
  if want == 'hll' and t == 'string' then
    if redis.call('GETRANGE', key, 0, 3) == 'HYLL' then return nil end
    return 'WRONGTYPE key ' .. window_quote(key) .. ' is not a HyperLogLog (window distinct)'
  end
  local names = {hash = 'a hash', zset = 'a sorted set', hll = 'a HyperLogLog'}
  return 'WRONGTYPE key ' .. window_quote(key) .. ' holds a ' .. t .. ', the window needs ' ..
    names[want]
end

-- What one record works on: its spec and the partition's keys.
local function window_context(argv)
  local state = argv[2]
  return {spec = argv[3] and parse_spec(argv[3]), state = state, open = state .. ':open',
    pending = state .. ':pending'}
end

-- Adds n to a drop counter, in the partition's hash and in the reply.
local function window_count(w, name, n)
  redis.call('HINCRBY', w.state, name, n)
  counters[name] = (counters[name] or 0) + n
end

local function hash_of(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- ---- results ------------------------------------------------------------------------------

-- The aggregates of window hash h: the bare number when one is configured, else an object in
-- the configured order. avg and distinct come from h when stored (closed), else computed.
local function aggregate_json(spec, h)
  local values = {}
  for i, name in ipairs(spec.aggregates) do
    local v = h[name]
    if name == 'avg' and not v then
      local count = tonumber(h.count or '0')
      if count > 0 then v = num_text(tonumber(h.sum or '0') / count) end
    elseif name == 'count' or name == 'sum' or name == 'distinct' then
      v = v or '0'
    end
    values[i] = v or 'null'
  end
  if #values == 1 then return values[1] end
  local parts = {}
  for i, name in ipairs(spec.aggregates) do parts[i] = '"' .. name .. '":' .. values[i] end
  return '{' .. table.concat(parts, ',') .. '}'
end

local function result_json(spec, h, final)
  local t = {'{"key":', cjson.encode(h.g), ',"window_start":', h.start, ',"window_end":', h['end']}
  if spec.kind == 'session' then t[#t + 1] = ',"end_inclusive":true' end
  t[#t + 1] = ',"type":"' .. spec.kind .. '","value":' .. aggregate_json(spec, h)
  if spec.has.distinct then t[#t + 1] = ',"approx":true' end
  t[#t + 1] = ',"final":' .. (final and 'true' or 'false') .. '}'
  return table.concat(t)
end

-- Puts a result (value nil: a tombstone) into the pending hash, one field per window instance
-- (so a window changed several times before the emission is emitted once, as it is now), with
-- a sequence number that orders the emission:
--   "SEQ TIMESTAMP START END KEY_LEN VALUE_LEN\nKEYVALUE"   (VALUE_LEN -1: tombstone)
-- The record timestamp is window_end - 1, a session's window_end (its last record).
local function pend(w, g, start, stop, value)
  if not w.spec.output then return end
  local seq = redis.call('HINCRBY', w.state, 'seq', 1)
  local ts = stop
  if w.spec.kind ~= 'session' then ts = stop - 1 end
  local entry = string.format('%d %d %d %d %d %d\n', seq, ts, start, stop, #g,
    value and #value or -1) .. g .. (value or '')
  redis.call('HSET', w.pending, num_text(start) .. ':' .. num_text(stop) .. ':' .. g, entry)
  counters.pending = (counters.pending or 0) + 1
end

local function emit(w, h, final)
  pend(w, h.g, tonumber(h.start), tonumber(h['end']), result_json(w.spec, h, final))
end

-- The current state of an open window, for an update result.
local function current(w, key)
  local h = hash_of(key)
  if w.spec.has.distinct then
    h.distinct = string.format('%d', redis.call('PFCOUNT', key .. ':distinct'))
  end
  return h
end

-- ---- state --------------------------------------------------------------------------------

local function session_base(spec, g) return spec.prefix .. g .. ':' end
local function session_index(spec, g) return spec.prefix .. g .. ':sessions' end

-- Adds one record to the window hash at key (count, sum, min, max, the HLL), renewing the
-- wall-clock safety expiry.
local function add_value(spec, key, value, element)
  redis.call('HINCRBY', key, 'count', 1)
  if spec.needs_sum then redis.call('HINCRBYFLOAT', key, 'sum', value) end
  if spec.has.min then
    local cur = redis.call('HGET', key, 'min')
    if not cur or tonumber(value) < tonumber(cur) then redis.call('HSET', key, 'min', value) end
  end
  if spec.has.max then
    local cur = redis.call('HGET', key, 'max')
    if not cur or tonumber(value) > tonumber(cur) then redis.call('HSET', key, 'max', value) end
  end
  if spec.has.distinct then
    redis.call('PFADD', key .. ':distinct', element)
    redis.call('PEXPIRE', key .. ':distinct', spec.state_ttl)
  end
  redis.call('PEXPIRE', key, spec.state_ttl)
end

-- Session merge: folds the window hash src (and its HLL) into dst, then deletes src.
local function merge_into(spec, dst, src)
  local h = hash_of(src)
  if h.count then
    redis.call('HINCRBY', dst, 'count', h.count)
    if spec.needs_sum and h.sum then redis.call('HINCRBYFLOAT', dst, 'sum', h.sum) end
    for _, name in ipairs({'min', 'max'}) do
      if spec.has[name] and h[name] then
        local cur = redis.call('HGET', dst, name)
        local v = tonumber(h[name])
        if not cur or (name == 'min' and v < tonumber(cur)) or (name == 'max' and v > tonumber(cur)) then
          redis.call('HSET', dst, name, h[name])
        end
      end
    end
  end
  if spec.has.distinct then
    redis.call('PFMERGE', dst .. ':distinct', src .. ':distinct')
    redis.call('PEXPIRE', dst .. ':distinct', spec.state_ttl)
  end
  redis.call('DEL', src, src .. ':distinct')
end

-- Closes the window at key: final aggregates into its hash (final=1, avg, distinct), kept for
-- window.result.ttl.ms; the HLL is dropped (a session keeps it as long as its result, since a
-- later record may still merge it, as in Kafka Streams); the final result is left pending.
-- A session moves to its closed name PREFIX<group>:<start>:<end>.
local function close_window(w, key)
  local spec = w.spec
  local h = hash_of(key)
  if not h.count then return end -- its state expired (window.state.ttl.ms): nothing to report
  local hll = key .. ':distinct'
  if spec.has.avg then h.avg = num_text(tonumber(h.sum) / tonumber(h.count)) end
  if spec.has.distinct then h.distinct = string.format('%d', redis.call('PFCOUNT', hll)) end
  local final_key = key
  if spec.kind == 'session' then
    final_key = session_base(spec, h.g) .. h.start .. ':' .. h['end']
    redis.call('RENAME', key, final_key)
    local index = session_index(spec, h.g)
    redis.call('ZREM', index, key)
    redis.call('ZADD', index, h['end'], final_key)
    redis.call('PEXPIRE', index, math.max(spec.state_ttl, spec.result_ttl))
    if spec.has.distinct and redis.call('EXISTS', hll) == 1 then
      redis.call('RENAME', hll, final_key .. ':distinct')
      redis.call('PEXPIRE', final_key .. ':distinct', spec.result_ttl)
    end
  elseif spec.has.distinct then
    redis.call('DEL', hll)
  end
  local fields = {'final', '1'}
  if h.avg then fields[#fields + 1] = 'avg'; fields[#fields + 1] = h.avg end
  if h.distinct then fields[#fields + 1] = 'distinct'; fields[#fields + 1] = h.distinct end
  redis.call('HSET', final_key, unpack(fields))
  redis.call('PEXPIRE', final_key, spec.result_ttl)
  counters.windows_closed = (counters.windows_closed or 0) + 1
  emit(w, h, true)
end

-- Closes every open window of the partition that the clock has reached, in closing order.
local function close_due(w, clock)
  local due = redis.call('ZRANGEBYSCORE', w.open, '-inf', num_text(clock))
  for _, key in ipairs(due) do close_window(w, key) end
  if #due > 0 then redis.call('ZREMRANGEBYSCORE', w.open, '-inf', num_text(clock)) end
end

-- ---- assignment (SEMANTICS.md 6.1, as Kafka Streams) --------------------------------------

-- Tumbling and hopping: the windows [start, start + size) holding ts, epoch-aligned, never
-- starting below 0 (TimeWindows.windowsFor). Each is closed once clock >= end + grace, or when
-- its hash already says final=1 (another partition's clock closed it: the group is not
-- partitioned like the topic). check: also return why a key cannot be used.
local function time_plan(w, ts, clock, g, check)
  local spec = w.spec
  local open, closed = {}, 0
  local start = math.floor(math.max(0, ts - spec.size + spec.advance) / spec.advance) * spec.advance
  while start <= ts do
    local stop = start + spec.size
    local key = spec.prefix .. g .. ':' .. num_text(start)
    if check then
      local reason = window_wrong_type(key, 'hash') or
        (spec.has.distinct and window_wrong_type(key .. ':distinct', 'hll'))
      if reason then return nil, nil, reason end
    end
    if clock >= stop + spec.grace or redis.call('HGET', key, 'final') == '1' then
      closed = closed + 1
    else
      open[#open + 1] = {key = key, start = start, stop = stop}
    end
    start = start + spec.advance
  end
  return open, closed
end

-- Sessions: every session of the group (open, or closed and still kept) with end >= ts - gap
-- and start <= ts + gap merges with the record into [min start, max end] (Kafka Streams'
-- rule); the record is late when that merged session is closed: clock > end + gap + grace.
local function session_plan(w, ts, clock, g, check)
  local spec = w.spec
  local base = session_base(spec, g)
  local plan = {index = session_index(spec, g), base = base, cands = {}, start = ts, stop = ts}
  if check then
    local reason = window_wrong_type(plan.index, 'zset')
    if reason then return nil, reason end
  end
  local found = redis.call('ZRANGEBYSCORE', plan.index, num_text(ts - spec.gap), '+inf',
    'WITHSCORES')
  for i = 1, #found, 2 do
    local key = found[i]
    local start_text, tail = string.match(string.sub(key, #base + 1), '^(%d+):(.*)$')
    local start = tonumber(start_text)
    if start and start <= ts + spec.gap then
      if redis.call('EXISTS', key) == 1 then
        local stop = tonumber(found[i + 1])
        plan.cands[#plan.cands + 1] = {key = key, start = start, stop = stop,
          closed = tail ~= 'open'}
        if start < plan.start then plan.start = start end
        if stop > plan.stop then plan.stop = stop end
      elseif not check then
        redis.call('ZREM', plan.index, key) -- its result expired (window.result.ttl.ms)
      end
    end
  end
  plan.key = base .. num_text(plan.start) .. ':open'
  if check then
    for _, c in ipairs(plan.cands) do
      local reason = window_wrong_type(c.key, 'hash') or
        (spec.has.distinct and window_wrong_type(c.key .. ':distinct', 'hll'))
      if reason then return nil, reason end
    end
    local reason = window_wrong_type(plan.key, 'hash') or
      (spec.has.distinct and window_wrong_type(plan.key .. ':distinct', 'hll'))
    if reason then return nil, reason end
  end
  plan.late = clock > plan.stop + spec.gap + spec.grace
  return plan
end

local function time_apply(w, g, value, element, open)
  local spec = w.spec
  for _, win in ipairs(open) do
    if redis.call('HSETNX', win.key, 'start', num_text(win.start)) == 1 then
      redis.call('HSET', win.key, 'g', g, 'end', num_text(win.stop))
      redis.call('ZADD', w.open, num_text(win.stop + spec.grace), win.key)
    end
    add_value(spec, win.key, value, element)
    if spec.update then emit(w, current(w, win.key), false) end
  end
end

-- Merges the record and its candidate sessions into one open session named after its start.
-- The open candidate with the lowest start keeps its state (renamed if the start moved); the
-- others are folded into it. Tombstones: in update mode for every session instance that
-- changed or went away; in both modes for a closed session merged away (its final result was
-- emitted, and the new session now covers it).
local function session_apply(w, g, value, element, plan)
  local spec = w.spec
  local survivor
  for _, c in ipairs(plan.cands) do
    if not c.closed and (not survivor or c.start < survivor.start) then survivor = c end
  end
  if survivor then
    if survivor.key ~= plan.key then
      redis.call('RENAME', survivor.key, plan.key)
      if spec.has.distinct and redis.call('EXISTS', survivor.key .. ':distinct') == 1 then
        redis.call('RENAME', survivor.key .. ':distinct', plan.key .. ':distinct')
      end
      redis.call('ZREM', plan.index, survivor.key)
      redis.call('ZREM', w.open, survivor.key)
    end
    if spec.update and (survivor.start ~= plan.start or survivor.stop ~= plan.stop) then
      pend(w, g, survivor.start, survivor.stop, nil)
    end
  end
  for _, c in ipairs(plan.cands) do
    if c ~= survivor then
      merge_into(spec, plan.key, c.key)
      redis.call('ZREM', plan.index, c.key)
      if not c.closed then redis.call('ZREM', w.open, c.key) end
      if c.closed or spec.update then pend(w, g, c.start, c.stop, nil) end
    end
  end
  redis.call('HSET', plan.key, 'g', g, 'start', num_text(plan.start), 'end', num_text(plan.stop))
  redis.call('ZADD', plan.index, num_text(plan.stop), plan.key)
  redis.call('PEXPIRE', plan.index, math.max(spec.state_ttl, spec.result_ttl))
  redis.call('ZADD', w.open, num_text(plan.stop + spec.gap + spec.grace + 1), plan.key)
  add_value(spec, plan.key, value, element)
  if spec.update then emit(w, current(w, plan.key), false) end
end

-- ---- the pseudo-commands ------------------------------------------------------------------

local function event_time(argv)
  local ts = tonumber(argv[4])
  if not ts or ts < 0 or ts ~= math.floor(ts) then return nil end
  return ts
end

local function stored_clock(w)
  return tonumber(redis.call('HGET', w.state, 'clock') or '-1')
end

-- Reads only: the types of every key the record will touch, and (window.late=dead-letter)
-- whether it is late, so that the script stops at it before writing anything of it.
local function window_check(argv)
  if #argv ~= 7 then return 'RKB.WINDOW: wrong number of arguments' end
  local w = window_context(argv)
  if not w.spec then return 'RKB.WINDOW: malformed window spec ' .. window_quote(argv[3]) end
  local reason
  if not window_checked[w.state] then
    reason = window_wrong_type(w.state, 'hash') or window_wrong_type(w.open, 'zset') or
      window_wrong_type(w.pending, 'hash')
    if reason then return reason end
    window_checked[w.state] = true -- only this script writes them from here on
  end
  local ts = event_time(argv)
  if not ts then return nil end
  local clock = math.max(stored_clock(w), ts)
  local late
  if w.spec.kind == 'session' then
    local plan
    plan, reason = session_plan(w, ts, clock, argv[5], true)
    late = plan and plan.late
  else
    local open, closed
    open, closed, reason = time_plan(w, ts, clock, argv[5], true)
    late = open and #open == 0
  end
  if reason then return reason end
  if late and w.spec.dead_letter then
    return 'window-closed: event time ' .. num_text(ts) .. ' of group ' .. window_quote(argv[5]) ..
      ' is behind every open window (partition clock ' .. num_text(clock) ..
      ', window.grace.ms ' .. num_text(w.spec.grace) .. ')'
  end
  return nil
end

local function window_run(argv)
  local w = window_context(argv)
  local spec = w.spec
  local ts = event_time(argv)
  if not ts then
    window_count(w, 'dropped_invalid_ts', 1)
    return nil
  end
  -- The clock includes this record before anything is decided (Kafka Streams' stream time);
  -- windows it reaches close first, so their final results precede this record's effects.
  local clock = stored_clock(w)
  if ts > clock then
    clock = ts
    redis.call('HSET', w.state, 'clock', num_text(clock))
    close_due(w, clock)
  end
  local g, value, element = argv[5], argv[6], argv[7]
  if spec.kind == 'session' then
    local plan = session_plan(w, ts, clock, g, false)
    if plan.late then
      window_count(w, 'dropped_late_records', 1)
      return nil
    end
    session_apply(w, g, value, element, plan)
  else
    local open, closed = time_plan(w, ts, clock, g, false)
    if #open == 0 then
      window_count(w, 'dropped_late_records', 1)
      return nil
    end
    -- Hopping: the record still counts in its open windows; the closed ones it missed are
    -- counted apart (Kafka Streams drops it once per closed window).
    if closed > 0 then window_count(w, 'dropped_late_windows', closed) end
    time_apply(w, g, value, element, open)
  end
  return nil
end

-- A failure the checks could not foresee (a key changed type between records) stops the
-- script at this record with Redis's message instead of raising past the stored offset.
local function window_guarded(fn)
  return function(argv)
    local ok, err = pcall(fn, argv)
    if ok then return err end
    if type(err) == 'table' then err = err.err end
    return tostring(err) .. ' (RKB.WINDOW)'
  end
end

pseudo['RKB.WINDOW'] = {check = window_check, run = window_guarded(window_run)}
pseudo['RKB.WINDOW.LATE'] = {
  check = function(argv)
    if #argv ~= 2 then return 'RKB.WINDOW.LATE: wrong number of arguments' end
    return window_wrong_type(argv[2], 'hash')
  end,
  run = window_guarded(function(argv)
    window_count(window_context(argv), 'dropped_late_records', 1)
    return nil
  end),
}
