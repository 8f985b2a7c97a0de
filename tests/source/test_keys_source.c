/*
 * test_keys_source.c — the keys source (keys CDC, SEMANTICS.md §5.3) end to end: `rkbridge run`
 * with a keys connector against one redis-server and the dev broker, Redis changed by the test,
 * the topic read back. The property under test is convergence (§5.3 point 6): once Redis is
 * quiet, the latest record of each matching key equals the key's state in Redis, and a key
 * Redis does not have has a tombstone or no record.
 *
 * Covered: notify-keyspace-events set automatically, and the failure when CONFIG is refused;
 * N-2 upsert/delete mapping; N-3 expired; N-5 missed events (subscriber killed while writing);
 * N-6 a snapshot of 10k keys with writes during it; N-7 coalescing; every value type's
 * encoding; LIVEONLY; redis.keys.timeout; deliveries failing while the broker is down;
 * validation; 10k random SET/HSET/DEL/EXPIRE operations across a SIGKILL and a SIGTERM
 * restart; a Redis restart (run_id change) that empties it. Each test has its own key prefix
 * and topic; the tests that restart Redis come last.
 */
#include "harness.h"
#include "source_test_util.h"

#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#define KEYS_CLASS  "com.redis.kafka.connect.RedisKeysSourceConnector"
#define CONVERGE_MS 120000
#define NOTIFY_HELP                                                                                \
    "set notify-keyspace-events to include K and A (e.g. CONFIG SET notify-keyspace-events KEA)"

static h_redis_t *redis;
static h_broker_t *broker;

static int setup(void **state) {
    (void)state;
    /* notify-keyspace-events is left at Redis's default (off): the source turns it on. */
    redis = h_redis_start(NULL);
    broker = h_broker_start(1, "k_auto:1,k_acl:1,k_n2:2,k_n3:1,k_n7:1,k_types:1,k_n5:2,"
                               "k_n6:3,k_bd:1,k_idle:1,k_lo:1,k_big:3,k_rr:1");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

/* A command whose reply does not matter (hiredis format: split at spaces, then %s/%d/%b). */
#define cmd(...) freeReplyObject(h_redis_cmd(redis, __VA_ARGS__))

/* A keys connector: name, topic, pattern and extra lines. Caller frees. */
static char *keys_config(const char *name, const char *topic, const char *pattern,
                         const char *extra) {
    return source_config(redis, broker, name, KEYS_CLASS, "topic=%s\nredis.keys.pattern=%s\n%s",
                         topic, pattern, extra ? extra : "");
}

static h_proc_t *start_source(const char *name, const char *topic, const char *pattern,
                              const char *extra) {
    char *text = keys_config(name, topic, pattern, extra);
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    return proc;
}

/* Waits for a line of the process's log; fails the test (with the log) if it never comes. */
static void wait_output(h_proc_t *proc, const char *needle) {
    if (!H_WAIT_FOR(source_output_has(proc, needle), CONVERGE_MS)) {
        source_dump_output(proc);
        fail_msg("'%s' never appeared in the log", needle);
    }
}

static void stop_source(h_proc_t *proc) {
    int status = h_proc_stop(proc, SIGTERM, 60000);
    if (status != 0)
        source_dump_output(proc);
    assert_int_equal(status, 0);
    h_proc_free(proc);
}

/* ---- what Redis holds, encoded as the source must encode it ------------------------------- */

/* The record value the source must send for key (malloc'd; caller frees), or NULL when the key
 * does not exist. jansson builds the JSON: an encoder independent of the one under test. */
static char *expected_value(const char *key, size_t *len) {
    redisReply *type = h_redis_cmd(redis, "TYPE %s", key);
    char *value = NULL;
    *len = 0;
    if (!strcmp(type->str, "string")) {
        redisReply *reply = h_redis_cmd(redis, "GET %s", key);
        if (reply->type == REDIS_REPLY_STRING) {
            value = malloc(reply->len + 1);
            memcpy(value, reply->str, reply->len + 1);
            *len = reply->len;
        }
        freeReplyObject(reply);
    } else if (!strcmp(type->str, "hash")) {
        redisReply *reply = h_redis_cmd(redis, "HGETALL %s", key);
        if (reply->elements) {
            json_t *object = json_object();
            for (size_t i = 0; i + 1 < reply->elements; i += 2)
                json_object_set_new(object, reply->element[i]->str,
                                    json_string(reply->element[i + 1]->str));
            value = json_dumps(object, JSON_COMPACT | JSON_SORT_KEYS);
            *len = strlen(value);
            json_decref(object);
        }
        freeReplyObject(reply);
    } else if (strcmp(type->str, "none")) {
        fail_msg("%s: type %s is not used by this test", key, type->str);
    }
    freeReplyObject(type);
    return value;
}

/* True when the topic's latest record of every key matching `match` equals Redis's state, and
 * every other key the topic has a value for is gone from Redis (its latest record must be a
 * tombstone). why says what differs. */
static bool converged(const char *topic, const char *match, char *why, size_t why_size) {
    source_latest_t latest;
    source_latest_read(broker, topic, &latest);
    bool ok = true;
    size_t redis_cnt = 0;
    char cursor[32] = "0";
    snprintf(why, why_size, "converged");
    do {
        redisReply *page = h_redis_cmd(redis, "SCAN %s MATCH %s COUNT 1000", cursor, match);
        snprintf(cursor, sizeof(cursor), "%s", page->element[0]->str);
        for (size_t i = 0; i < page->element[1]->elements && ok; i++) {
            const char *key = page->element[1]->element[i]->str;
            size_t len;
            char *value = expected_value(key, &len);
            if (!value)
                continue; /* expired as we read it */
            redis_cnt++;
            const rd_kafka_message_t *msg = source_latest_find(&latest, key);
            if (!msg || !msg->payload) {
                snprintf(why, why_size, "%s: Redis has '%.100s', the topic %s", key, value,
                         msg ? "a tombstone" : "nothing");
                ok = false;
            } else if (msg->len != len || memcmp(msg->payload, value, len)) {
                snprintf(why, why_size, "%s: Redis has '%.100s', the topic '%.*s'", key, value,
                         (int)(msg->len < 100 ? msg->len : 100), (const char *)msg->payload);
                ok = false;
            }
            free(value);
        }
        freeReplyObject(page);
    } while (ok && strcmp(cursor, "0"));
    size_t live_cnt = 0;
    for (size_t i = 0; i < latest.cnt; i++)
        live_cnt += latest.latest[i]->payload != NULL;
    if (ok && live_cnt != redis_cnt) {
        snprintf(why, why_size, "the topic holds a value for %zu keys, Redis has %zu", live_cnt,
                 redis_cnt);
        ok = false;
    }
    source_latest_free(&latest);
    return ok;
}

static void assert_converges(h_proc_t *proc, const char *topic, const char *match) {
    char why[512];
    if (!H_WAIT_FOR(converged(topic, match, why, sizeof(why)), CONVERGE_MS)) {
        source_dump_output(proc);
        fail_msg("%s did not converge on Redis's %s keys: %s", topic, match, why);
    }
}

/* The latest record of key in topic: value (NULL: tombstone) and header values. The test
 * fails if the topic has no record of key. */
typedef struct latest_s {
    char *value; /* NUL-terminated copy, or NULL for a tombstone */
    size_t len;
    char *event, *type, *ttl;
} latest_t;

static latest_t latest_of(const char *topic, const char *key) {
    source_latest_t all;
    source_latest_read(broker, topic, &all);
    const rd_kafka_message_t *msg = source_latest_find(&all, key);
    if (!msg)
        fail_msg("%s: no record of %s", topic, key);
    latest_t out = {0};
    if (msg->payload) {
        out.value = malloc(msg->len + 1);
        memcpy(out.value, msg->payload, msg->len);
        out.value[msg->len] = '\0';
        out.len = msg->len;
    }
    out.event = source_header(msg, "redis-event");
    out.type = source_header(msg, "redis-type");
    out.ttl = source_header(msg, "redis-ttl");
    source_latest_free(&all);
    return out;
}

static void latest_free(latest_t *latest) {
    free(latest->value);
    free(latest->event);
    free(latest->type);
    free(latest->ttl);
}

/* True when the latest record of key in topic has exactly value (NULL: a tombstone). */
static bool latest_is(const char *topic, const char *key, const char *value) {
    source_latest_t all;
    source_latest_read(broker, topic, &all);
    const rd_kafka_message_t *msg = source_latest_find(&all, key);
    bool is = msg && (value ? msg->payload && msg->len == strlen(value) &&
                                  !memcmp(msg->payload, value, msg->len)
                            : !msg->payload);
    source_latest_free(&all);
    return is;
}

static void wait_latest(h_proc_t *proc, const char *topic, const char *key, const char *value) {
    if (!H_WAIT_FOR(latest_is(topic, key, value), CONVERGE_MS)) {
        source_dump_output(proc);
        fail_msg("%s: the latest record of %s never became %s", topic, key,
                 value ? value : "a tombstone");
    }
}

static void assert_latest(const latest_t *latest, const char *value, const char *event,
                          const char *type) {
    if (value) {
        assert_non_null(latest->value);
        assert_string_equal(latest->value, value);
    } else {
        assert_null(latest->value);
    }
    assert_non_null(latest->event);
    assert_string_equal(latest->event, event);
    assert_non_null(latest->type);
    assert_string_equal(latest->type, type);
}

/* ---- notify-keyspace-events --------------------------------------------------------------- */

/* Redis starts with notifications off and a flag of its own set: the source adds K and A and
 * keeps E and x; a key set after the snapshot can only reach the topic through an event. */
static void test_notify_set_automatically(void **state) {
    (void)state;
    cmd("CONFIG SET notify-keyspace-events Ex");
    h_proc_t *proc = start_source("kauto", "k_auto", "auto:*", NULL);
    wait_output(proc, "snapshot of keys matching 'auto:*'");
    assert_true(source_output_has(proc, "notify-keyspace-events was '"));
    cmd("SET auto:1 after-snapshot");
    wait_latest(proc, "k_auto", "auto:1", "after-snapshot");
    redisReply *reply = h_redis_cmd(redis, "CONFIG GET notify-keyspace-events");
    const char *flags = reply->element[1]->str;
    assert_non_null(strchr(flags, 'K'));
    assert_non_null(strchr(flags, 'A'));
    assert_non_null(strchr(flags, 'E'));
    freeReplyObject(reply);
    stop_source(proc);
}

/* An ACL user without +config: the task fails and says what to set. */
static void test_config_refused(void **state) {
    (void)state;
    cmd("CONFIG SET notify-keyspace-events %s", "");
    cmd("ACL SETUSER noconfig on >secret ~* &* +@all -config");
    char *text =
        keys_config("kacl", "k_acl", "acl:*", "redis.username=noconfig\nredis.password=secret\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    int status = h_proc_wait(proc, 60000);
    if (status != 1 || !source_output_has(proc, NOTIFY_HELP) || !source_output_has(proc, "NOPERM"))
        source_dump_output(proc);
    assert_int_equal(status, 1);
    assert_true(source_output_has(proc, "task FAILED"));
    assert_true(source_output_has(proc, NOTIFY_HELP));
    assert_true(source_output_has(proc, "NOPERM"));
    h_proc_free(proc);
    cmd("ACL DELUSER noconfig");
    /* Still off: nothing was changed behind the user's back. */
    redisReply *reply = h_redis_cmd(redis, "CONFIG GET notify-keyspace-events");
    assert_string_equal(reply->element[1]->str, "");
    freeReplyObject(reply);
}

/* ---- the mapping ---------------------------------------------------------------------------- */

/* N-2: SET user:1 a; HSET user:2 name x; DEL user:1 -> user:1 = NULL, user:2 = {name: x}. */
static void test_n2_upsert_delete(void **state) {
    (void)state;
    h_proc_t *proc = start_source("kn2", "k_n2", "user:*", NULL);
    wait_output(proc, "snapshot of keys matching 'user:*'");
    cmd("SET user:1 a");
    cmd("HSET user:2 name x");
    cmd("DEL user:1");
    wait_latest(proc, "k_n2", "user:1", NULL);
    wait_latest(proc, "k_n2", "user:2", "{\"name\":\"x\"}");
    latest_t user1 = latest_of("k_n2", "user:1"), user2 = latest_of("k_n2", "user:2");
    assert_latest(&user1, NULL, "del", "none");
    assert_latest(&user2, "{\"name\":\"x\"}", "hset", "hash");
    assert_null(user2.ttl);
    latest_free(&user1);
    latest_free(&user2);
    stop_source(proc);
}

/* N-3: SET s:1 v PX 50, wait, GET s:1 (forces the expiry) -> tombstone, event "expired". */
static void test_n3_expired(void **state) {
    (void)state;
    h_proc_t *proc = start_source("kn3", "k_n3", "s:*", NULL);
    wait_output(proc, "snapshot of keys matching 's:*'");
    cmd("SET s:1 v PX 50");
    h_sleep_ms(100);
    char *value = h_redis_str(redis, "GET s:1");
    assert_null(value);
    wait_latest(proc, "k_n3", "s:1", NULL);
    latest_t s1 = latest_of("k_n3", "s:1");
    assert_latest(&s1, NULL, "expired", "none");
    latest_free(&s1);
    stop_source(proc);
}

/* N-7: SET k 1; SET k 2; SET k 3 in one go -> the last record of k is 3. */
static void test_n7_coalescing(void **state) {
    (void)state;
    h_proc_t *proc = start_source("kn7", "k_n7", "n7:*", NULL);
    wait_output(proc, "snapshot of keys matching 'n7:*'");
    cmd("EVAL %s 1 n7:k", "redis.call('SET', KEYS[1], '1'); redis.call('SET', KEYS[1], '2'); "
                          "redis.call('SET', KEYS[1], '3')");
    cmd("SET n7:j 1");
    cmd("SET n7:j 2");
    cmd("SET n7:j 3");
    assert_converges(proc, "k_n7", "n7:*");
    latest_t k = latest_of("k_n7", "n7:k"), j = latest_of("k_n7", "n7:j");
    assert_latest(&k, "3", "set", "string");
    assert_latest(&j, "3", "set", "string");
    latest_free(&k);
    latest_free(&j);
    stop_source(proc);
}

/* Every type's value, from the snapshot (keys made before the start). */
static void test_value_types(void **state) {
    (void)state;
    freeReplyObject(h_redis_cmd(redis, "SET t:bin %b", "\x00\xff", (size_t)2));
    freeReplyObject(h_redis_cmd(redis, "HSET t:hash b 2 a 1 %b %b q %b", "\xff", (size_t)1,
                                "\xc3\xa9", (size_t)2, "\"\n", (size_t)2));
    cmd("RPUSH t:list c a b");
    cmd("SADD t:set c a b");
    cmd("ZADD t:zset 1.5 x 1 y +inf z -inf w");
    cmd("XADD t:stream * f v");
    cmd("SET t:ttl v EX 1000");
    h_proc_t *proc = start_source("ktypes", "k_types", "t:*", NULL);
    wait_output(proc, "snapshot of keys matching 't:*'");

    static const struct {
        const char *key, *value, *type;
    } cases[] = {
        {"t:hash", "{\"a\":\"1\",\"b\":\"2\",\"q\":\"\\\"\\u000a\",\"\\u00ff\":\"\xc3\xa9\"}",
         "hash"},
        {"t:list", "[\"c\",\"a\",\"b\"]", "list"},
        {"t:set", "[\"a\",\"b\",\"c\"]", "set"},
        {"t:zset", "[[\"w\",\"-inf\"],[\"y\",1],[\"x\",1.5],[\"z\",\"inf\"]]", "zset"},
        {"t:ttl", "v", "string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wait_latest(proc, "k_types", cases[i].key, cases[i].value);
        latest_t got = latest_of("k_types", cases[i].key);
        assert_latest(&got, cases[i].value, "snapshot", cases[i].type);
        if (!strcmp(cases[i].key, "t:ttl")) {
            assert_non_null(got.ttl);
            long long ttl = atoll(got.ttl);
            assert_true(ttl > 0 && ttl <= 1000000);
        } else {
            assert_null(got.ttl);
        }
        latest_free(&got);
    }
    latest_t bin = latest_of("k_types", "t:bin");
    assert_int_equal(bin.len, 2);
    assert_memory_equal(bin.value, "\x00\xff", 2);
    assert_string_equal(bin.type, "string");
    latest_free(&bin);

    /* A stream is not sent (use the stream source)... */
    source_latest_t all;
    source_latest_read(broker, "k_types", &all);
    assert_null(source_latest_find(&all, "t:stream"));
    source_latest_free(&all);
    /* ...and a key that the topic holds a value for and that becomes a stream gets a
     * tombstone, since the value is out of date. */
    cmd("DEL t:bin");
    cmd("XADD t:bin * f v");
    wait_latest(proc, "k_types", "t:bin", NULL);
    stop_source(proc);
}

/* ---- loss of events ---------------------------------------------------------------------------
 */

/* N-5: the subscriber connection is killed over and over while keys change; the resyncs take
 * new snapshots, and b (emitted before) gets its tombstone. */
static void test_n5_missed_events_resync(void **state) {
    (void)state;
    cmd("SET n5:b 1");
    h_proc_t *proc = start_source("kn5", "k_n5", "n5:*", NULL);
    wait_latest(proc, "k_n5", "n5:b", "1");
    for (int i = 0; i < 20; i++) {
        h_redis_int(redis, "CLIENT KILL TYPE pubsub");
        cmd("SET n5:a %d", i);
        cmd("DEL n5:b");
        cmd("SET n5:c %d", i);
    }
    assert_converges(proc, "k_n5", "n5:*");
    wait_latest(proc, "k_n5", "n5:a", "19");
    wait_latest(proc, "k_n5", "n5:b", NULL);
    wait_latest(proc, "k_n5", "n5:c", "19");
    assert_true(source_output_has(proc, "lost the keyspace notifications"));
    stop_source(proc);
}

/* N-6: 10k keys; while the snapshot runs (small batches, so it takes a while), a writer keeps
 * updating key 5000, creating keys above 10000 and deleting low ones. */
static void test_n6_snapshot_race(void **state) {
    (void)state;
    cmd("EVAL %s 0", "for i = 1, 10000 do redis.call('SET', 'race:' .. i, 'v' .. i) end");
    h_proc_t *proc = start_source("kn6", "k_n6", "race:*", "batch.size=20\n");
    int i = 0;
    bool snapshot_done = false;
    int64_t until = h_now_ms() + CONVERGE_MS;
    while (!(snapshot_done = source_output_has(proc, "snapshot of keys matching 'race:*'")) &&
           h_now_ms() < until) {
        for (int j = 0; j < 20; j++, i++) {
            cmd("SET race:5000 w%d", i);
            cmd("SET race:%d new", 10001 + i);
            cmd("DEL race:%d", 1 + i);
        }
    }
    assert_true(snapshot_done);
    assert_true(i > 0);
    assert_converges(proc, "k_n6", "race:*");
    stop_source(proc);
}

/* The broker stops answering while keys change: deliveries time out, their keys are sent
 * again, and the topic still converges (a value and a tombstone among them). */
static void test_deliveries_fail_while_broker_down(void **state) {
    (void)state;
    cmd("SET bd:gone 1");
    h_proc_t *proc = start_source("kbd", "k_bd", "bd:*", "kafka.message.timeout.ms=1500\n");
    wait_latest(proc, "k_bd", "bd:gone", "1");
    assert_int_equal(h_broker_ctl(broker, "down all"), 0);
    for (int i = 0; i < 50; i++)
        cmd("SET bd:%d v%d", i, i);
    cmd("DEL bd:gone");
    wait_output(proc, "delivery to k_bd failed");
    assert_int_equal(h_broker_ctl(broker, "up all"), 0);
    assert_converges(proc, "k_bd", "bd:*");
    wait_latest(proc, "k_bd", "bd:gone", NULL);
    stop_source(proc);
}

/* ---- modes and settings --------------------------------------------------------------------- */

/* LIVEONLY: no snapshot (a key made before the start is not sent), changes are; a lost
 * subscription is logged as a gap. */
static void test_liveonly(void **state) {
    (void)state;
    cmd("SET lo:old 1");
    h_proc_t *proc = start_source("klo", "k_lo", "lo:*", "mode=LIVEONLY\n");
    wait_output(proc, "subscribed to __keyspace@0__:lo:*");
    cmd("SET lo:new 2");
    wait_latest(proc, "k_lo", "lo:new", "2");
    source_latest_t all;
    source_latest_read(broker, "k_lo", &all);
    assert_null(source_latest_find(&all, "lo:old"));
    source_latest_free(&all);
    h_redis_int(redis, "CLIENT KILL TYPE pubsub");
    wait_output(proc, "mode=LIVEONLY: changes made meanwhile are not sent");
    assert_false(source_output_has(proc, "snapshot of keys"));
    stop_source(proc);
}

/* redis.keys.timeout: no change for that long and the task stops by itself (exit 0). */
static void test_idle_timeout(void **state) {
    (void)state;
    h_proc_t *proc = start_source("kidle", "k_idle", "idle:*", "redis.keys.timeout=1000\n");
    int status = h_proc_wait(proc, 60000);
    if (status != 0)
        source_dump_output(proc);
    assert_int_equal(status, 0);
    assert_true(source_output_has(proc, "no change for 1000 ms (redis.keys.timeout)"));
    h_proc_free(proc);
}

static void test_validate(void **state) {
    (void)state;
    static const struct {
        const char *extra, *expected;
    } cases[] = {
        {"topic=t\nredis.keys.pattern=*\ntasks.max=2\n", "tasks.max: must be 1"},
        {"topic=keys-${channel}\n", "topic: the keys source writes to one fixed topic"},
        {"topic=bad topic\n", "is not a valid Kafka topic name"},
        {"redis.keys.pattern=\n", "redis.keys.pattern: must not be empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = source_config(redis, broker, "kv", KEYS_CLASS, "%s", cases[i].extra);
        char *out = NULL;
        int rc = source_validate(text, &out);
        if (rc != 2 || !strstr(out, cases[i].expected))
            fail_msg("case %zu: exit %d, output:\n%s", i, rc, out);
        free(out);
        free(text);
    }
    /* The defaults are valid (topic rediskeys, pattern *). */
    char *text = source_config(redis, broker, "kv", KEYS_CLASS, NULL);
    char *out = NULL;
    if (source_validate(text, &out) != 0)
        fail_msg("defaults refused:\n%s", out);
    free(out);
    free(text);
}

/* ---- the big one ------------------------------------------------------------------------------
 */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) { /* xorshift64*: the same sequence on every run */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* Operations [from, to) of the random workload over 500 keys: SET, HSET, DEL, and EXPIRE in a
 * few ms followed (a few operations later) by an access that forces the expiry. */
static void random_ops(int from, int to) {
    for (int i = from; i < to; i++) {
        int key = (int)(rng() % 500);
        switch (rng() % 8) {
        case 0:
        case 1:
        case 2:
            cmd("SET big:%d s%d", key, i);
            break;
        case 3:
        case 4:
            /* On a string key this is a WRONGTYPE error: no change, no event. */
            cmd("HSET big:%d f%d %d f%d x", key, (int)(rng() % 4), i, (int)(rng() % 4));
            break;
        case 5:
            cmd("DEL big:%d", key);
            break;
        case 6:
            cmd("PEXPIRE big:%d %d", key, 1 + (int)(rng() % 5));
            break;
        case 7:
            cmd("EXISTS big:%d", key); /* forces the expiry of a key past its TTL */
            break;
        }
    }
}

/* Every key past its TTL is removed now (the accesses publish "expired"). */
static void force_expiries(void) {
    h_sleep_ms(20);
    for (int key = 0; key < 500; key++)
        cmd("EXISTS big:%d", key);
}

/* 10k random operations while the source runs, is killed (SIGKILL: queued records and
 * buffered events lost), starts again, is stopped (SIGTERM), starts again; operations go on
 * while it is down. At the end the topic's latest record per key equals Redis. */
static void test_random_ops_with_restarts(void **state) {
    (void)state;
    random_ops(0, 1000); /* keys before the first start: the snapshot sends them */
    h_proc_t *proc = start_source("kbig", "k_big", "big:*", NULL);
    random_ops(1000, 3000);
    h_proc_stop(proc, SIGKILL, 10000);
    h_proc_free(proc);
    random_ops(3000, 5000); /* while it is down */
    proc = start_source("kbig", "k_big", "big:*", NULL);
    wait_output(proc, "subscribed to"); /* so that SIGTERM finds the handler installed */
    random_ops(5000, 7500);
    stop_source(proc);
    random_ops(7500, 8500);
    proc = start_source("kbig", "k_big", "big:*", NULL);
    random_ops(8500, 10000);
    force_expiries();
    assert_converges(proc, "k_big", "big:*");
    stop_source(proc);
}

/* Redis restarts empty (no persistence) under a running source: the new run_id is noticed,
 * notify-keyspace-events (reset by the restart) is set again, and every key the topic held
 * gets its tombstone; a key made after the restart is sent. */
static void test_redis_restart(void **state) {
    (void)state;
    for (int i = 1; i <= 5; i++)
        cmd("SET rr:%d v%d", i, i);
    h_proc_t *proc = start_source("krr", "k_rr", "rr:*", NULL);
    assert_converges(proc, "k_rr", "rr:*");
    h_redis_kill(redis);
    h_redis_restart(redis);
    cmd("SET rr:9 x");
    wait_output(proc, "Redis restarted (run_id");
    assert_converges(proc, "k_rr", "rr:*");
    wait_latest(proc, "k_rr", "rr:1", NULL);
    wait_latest(proc, "k_rr", "rr:9", "x");
    cmd("SET rr:10 y"); /* notifications are on again */
    wait_latest(proc, "k_rr", "rr:10", "y");
    stop_source(proc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_config_refused),
        cmocka_unit_test(test_notify_set_automatically),
        cmocka_unit_test(test_n2_upsert_delete),
        cmocka_unit_test(test_n3_expired),
        cmocka_unit_test(test_n7_coalescing),
        cmocka_unit_test(test_value_types),
        cmocka_unit_test(test_liveonly),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_n5_missed_events_resync),
        cmocka_unit_test(test_n6_snapshot_race),
        cmocka_unit_test(test_deliveries_fail_while_broker_down),
        cmocka_unit_test(test_random_ops_with_restarts),
        /* Restarts Redis (empty afterwards). */
        cmocka_unit_test(test_redis_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
