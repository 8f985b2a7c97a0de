# 100 user profiles in Redis, 1000 transactions (every 10th from an unknown user) in Kafka.
set -euo pipefail
for i in $(seq 1 100); do
    echo "HSET user:$i name User_$i home_country $([ $((i % 3)) = 0 ] && echo DE || echo FR) risk $([ $((i % 7)) = 0 ] && echo high || echo low)"
done | redis-cli -p "$REDIS_PORT" >/dev/null
awk 'BEGIN { srand(3); for (i = 1; i <= 1000; i++) {
         u = (i % 10 == 0) ? 1000 + i : int(rand() * 100) + 1
         printf "t%d|{\"tx\":\"t%d\",\"user_id\":\"%d\",\"amount\":%.2f,\"country\":\"FR\"}\n", i, i, u, rand() * 500 } }' \
    >"$WORK/transactions.txt"
kcat -P -b "$BOOTSTRAP" -t transactions -K '|' -l "$WORK/transactions.txt"
echo "fraud-enrichment: 100 profiles in Redis, 1000 transactions in topic 'transactions'"
