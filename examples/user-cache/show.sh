set -eu
r() { echo "> redis-cli $*"; redis-cli -p "$REDIS_PORT" "$@"; }
r HGETALL user:1
r HGETALL user:2
echo "user-cache: an application's stale cache-aside fill (it read version 2 before the update):"
sha=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$("$RKBRIDGE" cache-script)")
r EVALSHA "$sha" 1 user:1 2 upsert 3600 86400 name Ada email ada@example.com
echo "user-cache: 0 = refused; user:1 still holds version 3"
r HGET user:1 _v
