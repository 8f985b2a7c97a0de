# Sourced by scripts/quickstart.sh and examples/run: a throwaway local stack, a redis-server on
# a free loopback port and the dev broker, stopped when the calling script exits.
#   stack_start WORK_DIR TOPIC:PARTITIONS...   sets REDIS_PORT and BOOTSTRAP
#   stack_spawn CMD...                        runs CMD in the background, stopped at exit
# Needs RKBRIDGE (the binary) set.

stack_pids=()
stack_cleanup() {
    for pid in "${stack_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stack_cleanup EXIT

stack_spawn() {
    "$@" &
    stack_pids+=($!)
}

stack_start() {
    local work=$1
    shift
    # A free loopback port (6379 may be a system Redis already).
    REDIS_PORT=16379
    while redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do REDIS_PORT=$((REDIS_PORT + 1)); done
    stack_spawn redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$work" >"$work/redis.log" 2>&1
    until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done

    local args=()
    for topic in "$@"; do args+=(--topic "$topic"); done
    rm -f "$work/bootstrap"
    stack_spawn "$RKBRIDGE" dev-broker "${args[@]}" --bootstrap-file "$work/bootstrap" \
        >"$work/broker.out" 2>"$work/broker.log" </dev/null
    until [ -s "$work/bootstrap" ]; do sleep 0.1; done
    BOOTSTRAP=$(cat "$work/bootstrap")
    export REDIS_PORT BOOTSTRAP
}
