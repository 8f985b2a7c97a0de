set -eu
[ "$(redis-cli -p "$REDIS_PORT" hget user:last _v)" = 1 ] && [ "$(redis-cli -p "$REDIS_PORT" dbsize)" -ge 503 ]
