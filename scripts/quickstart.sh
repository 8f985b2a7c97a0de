#!/usr/bin/env bash
# The quickstart, end to end on one machine: installs and builds, starts a local redis-server
# and the dev broker, produces sample pageviews, runs the pageviews sink and shows the result in
# Redis. Everything it starts is stopped when it ends; its files stay in .quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
work=.quickstart
rm -rf "$work" && mkdir -p "$work"
RKBRIDGE=./build/rkbridge
. scripts/local-stack.sh
stack_start "$work" pageviews:4
port=$REDIS_PORT
bootstrap=$BOOTSTRAP
echo "quickstart: redis-server on 127.0.0.1:$port, dev broker on $bootstrap"

# 1000 sample pageviews keyed by viewtime; the first is {"viewtime":1451,"userid":"User_6","pageid":"Page_35"}
awk 'BEGIN { srand(7); for (i = 0; i < 1000; i++) {
         t = 1451 + i; u = i ? int(rand() * 9) + 1 : 6; p = i ? int(rand() * 90) + 10 : 35;
         printf "%d|{\"viewtime\":%d,\"userid\":\"User_%d\",\"pageid\":\"Page_%d\"}\n", t, t, u, p } }' \
    >"$work/pageviews.txt"
kcat -P -b "$bootstrap" -t pageviews -K '|' -l "$work/pageviews.txt"
echo "quickstart: produced $(wc -l <"$work/pageviews.txt") pageviews to topic 'pageviews'"

sed "s#^redis.uri=.*#redis.uri=redis://127.0.0.1:$port#" examples/pageviews-sink.properties \
    >"$work/pageviews-sink.properties"
./build/rkbridge validate "$work/pageviews-sink.properties"
./build/rkbridge run --kafka-bootstrap "$bootstrap" "$work/pageviews-sink.properties" \
    2>"$work/rkbridge.log" &
rkb=$!
stack_pids+=($rkb)
expected=$(wc -l <"$work/pageviews.txt")
for _ in $(seq 1 300); do
    [ "$(redis-cli -p "$port" dbsize)" -ge "$expected" ] && break
    sleep 0.1
done
kill -TERM "$rkb" && wait "$rkb" || true

echo
echo "quickstart: redis-cli -p $port HGETALL pageviews:1451"
redis-cli -p "$port" HGETALL pageviews:1451
echo "quickstart: redis-cli -p $port DBSIZE  →  $(redis-cli -p "$port" dbsize) hashes, one per pageview"
echo
cat <<NEXT
What to try next:
  - The connector file: examples/pageviews-sink.properties (all keys: docs/configuration.md).
  - Other types: set redis.type=STRING|JSON|STREAM|LIST|SET|ZSET|TIMESERIES|PUBSUB.
  - Key templates: redis.key.template=user:\${value.userid}:\${key}
  - TTL: redis.key.ttl=60, or a per-record header redis.key.ttl.
  - Check a file without running it: ./build/rkbridge validate FILE.properties
  - Logs of this run: $work/rkbridge.log
NEXT
