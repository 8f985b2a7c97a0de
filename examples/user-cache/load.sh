# Three versions of user 1, a replayed old version, user 2 created then deleted, and 500 more
# users, then a marker event.
set -euo pipefail
{
    echo '1|{"type":"UserCreated","user_id":"1","version":1,"name":"Ada","email":"ada@old.example"}'
    echo '1|{"type":"UserUpdated","user_id":"1","version":2,"name":"Ada","email":"ada@example.com"}'
    echo '1|{"type":"UserUpdated","user_id":"1","version":3,"name":"Ada Lovelace","email":"ada@example.com"}'
    echo '1|{"type":"UserUpdated","user_id":"1","version":2,"name":"Ada","email":"ada@example.com"}'
    echo '2|{"type":"UserCreated","user_id":"2","version":1,"name":"Bob"}'
    echo '2|{"type":"UserDeleted","user_id":"2","version":2}'
    for i in $(seq 3 502); do echo "$i|{\"type\":\"UserCreated\",\"user_id\":\"$i\",\"version\":1,\"name\":\"User $i\"}"; done
    echo 'last|{"type":"UserCreated","user_id":"last","version":1,"name":"marker"}'
} >"$WORK/user-events.txt"
kcat -P -b "$BOOTSTRAP" -t user-events -K '|' -l "$WORK/user-events.txt"
echo "user-cache: $(wc -l <"$WORK/user-events.txt") events in topic 'user-events'"
