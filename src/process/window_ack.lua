-- Acknowledges window results Kafka has (src/process/window.c): removes each field of the
-- pending hash KEYS[1] that still holds the entry that was produced. ARGV: field, entry, ...
-- A field rewritten since (a newer update of that window, left by another owner of the
-- partition after a rebalance) stays, to be emitted in its turn.
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return removed
