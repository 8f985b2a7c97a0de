/*
 * test_cache.c — cache maintenance from change events (redis.type=CACHE, SEMANTICS.md §8):
 * the versioned compare-and-set in both delivery modes, Debezium envelopes, invalidate mode,
 * applications' cache-aside fills through `rkbridge cache-script`, and validation.
 *
 * One rkbridge process runs a connector per case (group joins are slow on the mock); the
 * tests then check the Redis state and each connector's stale count from its "sink stopped"
 * line. A second process replays one topic under a new group (C-5).
 */
#include "harness.h"
#include "../sink/sink_test_util.h"
#include "process/cache.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

static h_redis_t *redis;
static h_broker_t *broker;
static h_proc_t *proc;
static int proc_exit = -1;
static char *output; /* the process's output after it stopped */

static const char *const topics = "t_alo:1,t_eos:1,t_dbz:1,t_inv:1,t_x:1,t_x_eos:1,t_val:1,"
                                  "t_replay:1,t_race:1,dlq_x:1,dlq_x_eos:1";

/* ---- helpers ---------------------------------------------------------------------------------- */

static char *hget(const char *key, const char *field) {
    return h_redis_str(redis, "HGET %s %s", key, field);
}

static bool hget_is(const char *key, const char *field, const char *expected) {
    char *value = hget(key, field);
    bool same = value && !strcmp(value, expected);
    free(value);
    return same;
}

static void assert_hget(const char *key, const char *field, const char *expected) {
    char *value = hget(key, field);
    if (!expected) {
        assert_null(value);
        return;
    }
    if (!value || strcmp(value, expected))
        fprintf(stderr, "HGET %s %s: '%s', want '%s'\n", key, field, value ? value : "(nil)",
                expected);
    assert_non_null(value);
    assert_string_equal(value, expected);
    free(value);
}

/* The stale count in connector name's "sink stopped" line of out, or -1. */
static long long stale_count(const char *out, const char *name) {
    char needle[128];
    snprintf(needle, sizeof(needle), "[%s/0] sink stopped:", name);
    const char *line = strstr(out, needle);
    if (!line)
        return -1;
    const char *end = strchr(line, '\n');
    const char *stale = strstr(line, " stale");
    if (!stale || (end && stale > end))
        return -1;
    while (stale > line && stale[-1] >= '0' && stale[-1] <= '9')
        stale--;
    return strtoll(stale, NULL, 10);
}

/* Runs the standalone script as an application would: EVAL text 1 key args... */
static redisReply *app_cas(const char *key, const char *version, const char *op, ...) {
    const char *argv[32];
    int argc = 0;
    size_t len;
    argv[argc++] = "EVAL";
    argv[argc++] = rkb_cache_script(&len);
    argv[argc++] = "1";
    argv[argc++] = key;
    argv[argc++] = version;
    argv[argc++] = op;
    argv[argc++] = "0";  /* ttl */
    argv[argc++] = "60"; /* tombstone ttl */
    va_list ap;
    va_start(ap, op);
    const char *arg;
    while ((arg = va_arg(ap, const char *)) && argc < 30)
        argv[argc++] = arg;
    va_end(ap);
    redisContext *c = redisConnect("127.0.0.1", redis->port);
    assert_true(c && !c->err);
    redisReply *reply = redisCommandArgv(c, argc, argv, NULL);
    redisFree(c);
    assert_non_null(reply);
    return reply;
}

static long long app_cas_int(const char *key, const char *version, const char *op,
                             const char *field, const char *value) {
    redisReply *reply = app_cas(key, version, op, field, value, NULL);
    if (reply->type != REDIS_REPLY_INTEGER)
        fprintf(stderr, "cache script: %s\n", reply->str ? reply->str : "(not an integer)");
    assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
    long long n = reply->integer;
    freeReplyObject(reply);
    return n;
}

static char *user_event(int version, const char *name, const char *op) {
    char *text = NULL;
    if (asprintf(&text, "{\"id\":1,\"version\":%d,\"name\":\"%s\",\"op\":\"%s\"}", version, name,
                 op) < 0)
        abort();
    return text;
}

static void produce_user(rd_kafka_t *p, const char *topic, const char *key, int version,
                         const char *name, const char *op) {
    char *value = user_event(version, name, op);
    h_produce(p, topic, 0, key, value, NULL);
    free(value);
}

static char *debezium(long lsn, const char *op, const char *name) {
    char *text = NULL;
    if (asprintf(&text,
                 "{\"before\":null,\"after\":%s%s%s,\"source\":{\"lsn\":%ld,\"db\":\"app\"},"
                 "\"op\":\"%s\"}",
                 name ? "{\"id\":1,\"name\":\"" : "null", name ? name : "", name ? "\"}" : "",
                 lsn, op) < 0)
        abort();
    return text;
}

/* ---- the scenario ------------------------------------------------------------------------------ */

static void produce_first(void) {
    rd_kafka_t *p = h_producer_new(broker);
    /* C-1, C-3, C-4 in both modes: v5 A, stale v3, duplicate v5, delete v7, late upsert v6 on
     * k; v8 after a delete brings k2 back. */
    const char *modes[] = {"t_alo", "t_eos"};
    for (size_t i = 0; i < 2; i++) {
        produce_user(p, modes[i], "k", 5, "A", "u");
        produce_user(p, modes[i], "k", 3, "OLD", "u");
        produce_user(p, modes[i], "k", 5, "DUP", "u");
        produce_user(p, modes[i], "k2", 7, "B", "u");
        produce_user(p, modes[i], "k2", 8, "GONE", "d");
        produce_user(p, modes[i], "k2", 6, "RESURRECT", "u");
        produce_user(p, modes[i], "k3", 1, "X", "u");
        produce_user(p, modes[i], "k3", 2, "", "d");
        produce_user(p, modes[i], "k3", 3, "BACK", "u");
        h_produce(p, modes[i], 0, "k4", NULL, NULL); /* a Kafka tombstone: no version */
        produce_user(p, modes[i], "done", 1, "done", "u");
    }
    /* C-6 Debezium: streaming update lsn 6, snapshot read lsn 4 (stale), delete lsn 8, then the
     * Kafka tombstone that follows a delete. */
    char *e;
    h_produce(p, "t_dbz", 0, "1", e = debezium(6, "u", "after-update"), NULL), free(e);
    h_produce(p, "t_dbz", 0, "1", e = debezium(4, "r", "snapshot"), NULL), free(e);
    h_produce(p, "t_dbz", 0, "2", e = debezium(10, "c", "two"), NULL), free(e);
    h_produce(p, "t_dbz", 0, "1", e = debezium(8, "d", NULL), NULL), free(e);
    h_produce(p, "t_dbz", 0, "1", NULL, NULL);
    h_produce(p, "t_dbz", 0, "done", e = debezium(11, "c", "done"), NULL), free(e);
    /* invalidate mode: every event leaves a versioned tombstone */
    produce_user(p, "t_inv", "k", 2, "v2", "u");
    /* C-7: k2's key holds a list (WRONGTYPE): dead-lettered; k1 and k3 applied regardless */
    const char *cross[] = {"t_x", "t_x_eos"};
    for (size_t i = 0; i < 2; i++) {
        produce_user(p, cross[i], "k1", 1, "one", "u");
        produce_user(p, cross[i], "k2", 1, "two", "u");
        produce_user(p, cross[i], "k3", 1, "three", "u");
    }
    /* layout value + TTL */
    produce_user(p, "t_val", "k", 1, "whole", "u");
    /* C-5: v1..v9 of one key */
    for (int v = 1; v <= 9; v++) {
        char name[16];
        snprintf(name, sizeof(name), "v%d", v);
        produce_user(p, "t_replay", "k", v, name, "u");
    }
    h_producer_flush(p);
    h_producer_destroy(p);
}

static bool first_applied(void) {
    return hget_is("alo:done", "_v", "1") && hget_is("eos:done", "_v", "1") &&
           hget_is("dbz:done", "_v", "11") && hget_is("inv:k", "_v", "2") &&
           hget_is("x:k3", "_v", "1") && hget_is("xeos:k3", "_v", "1") &&
           hget_is("val:k", "_v", "1") && hget_is("replay:k", "_v", "9");
}

static int setup(void **state) {
    redis = h_redis_start(NULL);
    broker = h_broker_start(1, topics);
    h_redis_int(redis, "RPUSH x:k2 not-a-hash");
    h_redis_int(redis, "RPUSH xeos:k2 not-a-hash");
    produce_first();

    struct {
        const char *name, *topic, *extra;
    } cases[] = {
        {"c_alo", "t_alo", "redis.type=CACHE\nredis.keyspace=alo\n"},
        {"c_eos", "t_eos", "redis.type=CACHE\nredis.keyspace=eos\nredis.delivery=exactly-once\n"},
        {"c_dbz", "t_dbz",
         "redis.type=CACHE\nredis.keyspace=dbz\nredis.cache.version=${value.source.lsn}\n"
         "redis.cache.value.field=after\n"},
        {"c_inv", "t_inv", "redis.type=CACHE\nredis.keyspace=inv\nredis.cache.mode=invalidate\n"},
        {"c_x", "t_x",
         "redis.type=CACHE\nredis.keyspace=x\nerrors.tolerance=all\n"
         "errors.deadletterqueue.topic.name=dlq_x\n"},
        {"c_x_eos", "t_x_eos",
         "redis.type=CACHE\nredis.keyspace=xeos\nerrors.tolerance=all\n"
         "errors.deadletterqueue.topic.name=dlq_x_eos\nredis.delivery=exactly-once\n"},
        {"c_val", "t_val",
         "redis.type=CACHE\nredis.keyspace=val\nredis.cache.layout=value\nredis.key.ttl=1000\n"},
        {"c_replay1", "t_replay", "redis.type=CACHE\nredis.keyspace=replay\n"},
        {"c_race", "t_race", "redis.type=CACHE\nredis.keyspace=race\n"},
    };
    const char *argv[32] = {"rkbridge", "run"};
    int argc = 2;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = sink_config(redis, broker, cases[i].name, cases[i].topic, "%s",
                                 cases[i].extra);
        char file[64];
        snprintf(file, sizeof(file), "%s.properties", cases[i].name);
        argv[argc++] = h_write_file(file, text);
        free(text);
    }
    argv[argc] = NULL;
    proc = h_rkbridge_spawn(argv, NULL);
    if (!H_WAIT_FOR(first_applied(), 60000)) {
        sink_dump_output(proc);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    free(output);
    h_proc_free(proc);
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

/* The tests below run in order against the one process; test_stop ends it. */

/* C-2: a reader misses, reads the database (v1, version 1); a writer commits v2 and its change
 * event reaches the cache through rkbridge; the reader's late fill of v1 loses. Also: the
 * at-least-once mode reloads its script after SCRIPT FLUSH (NOSCRIPT). */
static void test_c2_cache_aside_race(void **state) {
    /* (the reader has read version 1 from the database here) */
    redisReply *flushed = h_redis_cmd(redis, "SCRIPT FLUSH");
    assert_int_equal(flushed->type, REDIS_REPLY_STATUS);
    freeReplyObject(flushed);
    rd_kafka_t *p = h_producer_new(broker);
    produce_user(p, "t_race", "k", 2, "v2", "u");
    h_producer_flush(p);
    h_producer_destroy(p);
    assert_true(H_WAIT_FOR(hget_is("race:k", "_v", "2"), 30000));
    /* the reader fills what it read, through the same script */
    assert_int_equal(app_cas_int("race:k", "1", "upsert", "name", "v1"), 0);
    assert_hget("race:k", "_v", "2");
    assert_hget("race:k", "name", "v2");
    /* a fill that read the new row is a duplicate: no write */
    assert_int_equal(app_cas_int("race:k", "2", "upsert", "name", "v2"), 0);
    /* and a fill on a missing entry is applied */
    assert_int_equal(app_cas_int("race:other", "1", "upsert", "name", "o"), 1);
    assert_hget("race:other", "name", "o");
}

/* C-2 with redis.cache.mode=invalidate: the event leaves a tombstone at version 2; the stale
 * fill (version 1) loses; a fill that read version 2 fills the entry. */
static void test_c2_invalidate_mode(void **state) {
    assert_hget("inv:k", "_deleted", "1");
    assert_true(h_redis_int(redis, "TTL inv:k") > 0);
    assert_int_equal(app_cas_int("inv:k", "1", "upsert", "name", "v1"), 0);
    assert_hget("inv:k", "_deleted", "1");
    assert_int_equal(app_cas_int("inv:k", "2", "upsert", "name", "v2"), 1);
    assert_hget("inv:k", "name", "v2");
    assert_hget("inv:k", "_deleted", NULL);
    assert_int_equal(h_redis_int(redis, "TTL inv:k"), -1);
}

/* C-4: the same change twice: the second returns 0 and writes nothing (its TTL stays). */
static void test_c4_duplicate(void **state) {
    redisReply *reply = app_cas("dup:k", "5", "upsert", "name", "A", NULL);
    assert_int_equal(reply->integer, 1);
    freeReplyObject(reply);
    h_redis_int(redis, "EXPIRE dup:k 1000");
    reply = app_cas("dup:k", "5", "upsert", "name", "B", NULL);
    assert_int_equal(reply->integer, 0);
    freeReplyObject(reply);
    assert_hget("dup:k", "name", "A");
    assert_true(h_redis_int(redis, "TTL dup:k") > 900);
    /* versions compare part by part, numerically */
    assert_int_equal(app_cas_int("dup:k", "10", "upsert", "name", "C"), 1);
    assert_int_equal(app_cas_int("dup:k", "9:99", "upsert", "name", "D"), 0);
    assert_int_equal(app_cas_int("dup:k", "10:0", "upsert", "name", "E"), 1);
    assert_int_equal(app_cas_int("dup:k", "0010:1", "upsert", "name", "F"), 1);
    assert_hget("dup:k", "name", "F");
    /* a version that is not one is refused, naming it */
    reply = app_cas("dup:k", "abc", "upsert", "name", "G", NULL);
    assert_int_equal(reply->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(reply->str, "\"abc\""));
    freeReplyObject(reply);
}

static void test_stop(void **state) {
    proc_exit = h_proc_stop(proc, SIGTERM, 30000);
    output = h_proc_output(proc);
    if (proc_exit != 0)
        fprintf(stderr, "%s\n", output);
    assert_int_equal(proc_exit, 0);
}

/* C-1 (stale dropped and counted), C-3 (delete then older upsert: tombstone stays), a delete
 * then a newer upsert, a Kafka tombstone changing nothing — at-least-once and exactly-once. */
static void check_mode(const char *prefix, const char *name) {
    char key[64];
    snprintf(key, sizeof(key), "%s:k", prefix);
    assert_hget(key, "_v", "5");
    assert_hget(key, "name", "A");
    assert_hget(key, "id", "1");
    snprintf(key, sizeof(key), "%s:k2", prefix);
    assert_hget(key, "_v", "8");
    assert_hget(key, "_deleted", "1");
    assert_hget(key, "name", NULL);
    assert_true(h_redis_int(redis, "TTL %s", key) > 0);
    snprintf(key, sizeof(key), "%s:k3", prefix);
    assert_hget(key, "_v", "3");
    assert_hget(key, "name", "BACK");
    assert_hget(key, "_deleted", NULL);
    assert_int_equal(h_redis_int(redis, "TTL %s", key), -1);
    snprintf(key, sizeof(key), "%s:k4", prefix);
    assert_int_equal(h_redis_int(redis, "EXISTS %s", key), 0);
    /* v3 (older) and v5 (duplicate) on k, v6 after the delete on k2 */
    assert_int_equal(stale_count(output, name), 3);
}

static void test_c1_c3_at_least_once(void **state) {
    check_mode("alo", "c_alo");
}

static void test_c1_c3_exactly_once(void **state) {
    check_mode("eos", "c_eos");
    char *offset = h_redis_str(redis, "GET rkbridge:offset:{t_eos:0}:c_eos");
    assert_non_null(offset);
    assert_string_equal(offset, "11");
    free(offset);
}

/* C-6: Debezium envelopes: version from source.lsn, state from after; the snapshot read
 * (lsn 4) after the streaming update (lsn 6) is rejected; the delete leaves a tombstone. */
static void test_c6_debezium(void **state) {
    assert_hget("dbz:1", "_v", "8");
    assert_hget("dbz:1", "_deleted", "1");
    assert_hget("dbz:2", "name", "two");
    assert_hget("dbz:2", "_v", "10");
    assert_int_equal(stale_count(output, "c_dbz"), 1);
}

/* C-7: keys are independent: k2 cannot take the entry (it holds a list) and goes to the
 * dead-letter topic; k1 and k3 are applied, in both modes. */
static void check_cross_key(const char *prefix, const char *dlq) {
    char key[64];
    snprintf(key, sizeof(key), "%s:k1", prefix);
    assert_hget(key, "name", "one");
    snprintf(key, sizeof(key), "%s:k3", prefix);
    assert_hget(key, "name", "three");
    assert_int_equal(h_redis_int(redis, "LLEN %s:k2", prefix), 1);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, dlq, &msgs);
    assert_int_equal(cnt, 1);
    assert_int_equal(msgs[0]->key_len, 2);
    assert_memory_equal(msgs[0]->key, "k2", 2);
    h_messages_free(msgs, cnt);
}

static void test_c7_cross_key(void **state) {
    check_cross_key("x", "dlq_x");
    check_cross_key("xeos", "dlq_x_eos");
}

/* redis.cache.layout=value: the state as JSON text in field val; redis.key.ttl on the entry. */
static void test_layout_value(void **state) {
    char *val = hget("val:k", "val");
    assert_non_null(val);
    json_t *json = json_loads(val, 0, NULL);
    assert_non_null(json);
    assert_string_equal(json_string_value(json_object_get(json, "name")), "whole");
    json_decref(json);
    free(val);
    long long ttl = h_redis_int(redis, "TTL val:k");
    assert_true(ttl > 0 && ttl <= 1000);
}

/* C-5: a new group replays v1..v9 of a key whose entry holds v9: all nine are stale and the
 * entry stays v9. */
static void test_c5_replay(void **state) {
    char *text = sink_config(redis, broker, "c_replay2", "t_replay",
                             "redis.type=CACHE\nredis.keyspace=replay\n");
    h_proc_t *replay = h_rkbridge_run(text, NULL);
    free(text);
    bool done = H_WAIT_FOR(h_committed(broker, "connect-c_replay2", "t_replay", 0) == 9, 60000);
    int rc = h_proc_stop(replay, SIGTERM, 30000);
    char *out = h_proc_output(replay);
    if (!done || rc != 0)
        fprintf(stderr, "%s\n", out);
    assert_true(done);
    assert_int_equal(rc, 0);
    assert_int_equal(stale_count(out, "c_replay2"), 9);
    assert_hget("replay:k", "_v", "9");
    assert_hget("replay:k", "name", "v9");
    free(out);
    h_proc_free(replay);
}

/* Bad settings name their key. */
static void test_validation(void **state) {
    char *text = sink_config(redis, broker, "c_bad", "t_alo",
                             "redis.type=CACHE\nredis.cache.version=${value.v\n");
    const char *path = h_write_file("c_bad.properties", text);
    free(text);
    const char *argv[] = {h_rkbridge_bin(), "validate", path, NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(h_run(argv, &out, &err), 2);
    assert_non_null(strstr(err, "redis.cache.version"));
    free(out);
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c2_cache_aside_race),
        cmocka_unit_test(test_c2_invalidate_mode),
        cmocka_unit_test(test_c4_duplicate),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_c1_c3_at_least_once),
        cmocka_unit_test(test_c1_c3_exactly_once),
        cmocka_unit_test(test_c6_debezium),
        cmocka_unit_test(test_c7_cross_key),
        cmocka_unit_test(test_layout_value),
        cmocka_unit_test(test_c5_replay),
        cmocka_unit_test(test_validation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
