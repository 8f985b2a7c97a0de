set -eu
echo "unique-users: kcat -C -t unique-users"
kcat -C -b "$BOOTSTRAP" -t unique-users -o beginning -e -q -f '%s\n'
echo
echo "unique-users: redis-cli HGETALL win:unique-users:shop:1700000040000"
redis-cli -p "$REDIS_PORT" HGETALL win:unique-users:shop:1700000040000
