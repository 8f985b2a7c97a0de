/*
 * test_sink_types.c — every redis.type, tombstones, TTL (config and header), key templates and
 * converters, end to end: records produced to the dev broker, `rkbridge run` with one connector
 * per case (so all groups join at once), then the resulting Redis state is checked.
 */
#include "harness.h"
#include "sink_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

static h_redis_t *redis;
static h_broker_t *broker;

static const char *const topics = "t_string:1,t_hash:1,t_stream:1,t_list:1,t_lpush:1,t_set:1,"
                                  "t_zset:1,t_zfield:1,t_pubsub:1,t_tmpl:1,t_envelope:1,"
                                  "t_ttl:1,t_json:1,t_bytes:1,t_maxlen:1,t_multi:1,t_rx_a:1,t_rx_b:1,"
                                  "t_rx_other:1";

static bool exists(const char *key) {
    return h_redis_int(redis, "EXISTS %s", key) == 1;
}

static void assert_str(const char *key, const char *expected) {
    char *value = h_redis_str(redis, "GET %s", key);
    assert_non_null(value);
    assert_string_equal(value, expected);
    free(value);
}

static void assert_hget(const char *key, const char *field, const char *expected) {
    char *value = h_redis_str(redis, "HGET %s %s", key, field);
    if (!expected) {
        assert_null(value);
        return;
    }
    assert_non_null(value);
    assert_string_equal(value, expected);
    free(value);
}

/* The whole scenario runs once (group joins are slow on the mock); tests check parts of it. */
static h_proc_t *proc;
static redisContext *subscriber;
static int proc_exit = -1;

static void produce_all(void) {
    rd_kafka_t *p = h_producer_new(broker);
    /* STRING: overwrite, tombstone */
    h_produce(p, "t_string", 0, "k1", "v1", NULL);
    h_produce(p, "t_string", 0, "k2", "v2", NULL);
    h_produce(p, "t_string", 0, "k1", "v1b", NULL);
    h_produce(p, "t_string", 0, "k2", NULL, NULL);
    h_produce(p, "t_string", 0, "k3", "v3", NULL);
    /* HASH: the quickstart's pageviews, nested values, tombstone, TTL header */
    h_produce(p, "t_hash", 0, "1451",
              "{\"viewtime\":1451,\"userid\":\"User_6\",\"pageid\":\"Page_35\","
              "\"nested\":{\"a\":1},\"list\":[1,2],\"gone\":null,\"flag\":true}",
              NULL);
    h_produce(p, "t_hash", 0, "1452", "{\"viewtime\":1452}", NULL);
    h_produce(p, "t_hash", 0, "1452", NULL, NULL);
    h_produce(p, "t_hash", 0, "1453", "{\"viewtime\":1453}", "redis.key.ttl", "500", NULL);
    /* STREAM: objects become fields; a non-object becomes field "value"; tombstone ignored */
    h_produce(p, "t_stream", 0, "a", "{\"f\":\"1\",\"g\":2}", NULL);
    h_produce(p, "t_stream", 0, "b", "plain text", NULL);
    h_produce(p, "t_stream", 0, "c", NULL, NULL);
    /* LIST (RPUSH, member = key), LPUSH through the old redis.command spelling; tombstone LREM */
    h_produce(p, "t_list", 0, "a", "x", NULL);
    h_produce(p, "t_list", 0, "b", "x", NULL);
    h_produce(p, "t_list", 0, "c", "x", NULL);
    h_produce(p, "t_list", 0, "b", NULL, NULL);
    h_produce(p, "t_lpush", 0, "a", "x", NULL);
    h_produce(p, "t_lpush", 0, "b", "x", NULL);
    /* SET, tombstone SREM */
    h_produce(p, "t_set", 0, "m1", "x", NULL);
    h_produce(p, "t_set", 0, "m2", "x", NULL);
    h_produce(p, "t_set", 0, "m1", NULL, NULL);
    /* ZSET: score = value; score from a field; tombstone ZREM */
    h_produce(p, "t_zset", 0, "alice", "10.5", NULL);
    h_produce(p, "t_zset", 0, "bob", "3", NULL);
    h_produce(p, "t_zset", 0, "bob", NULL, NULL);
    h_produce(p, "t_zfield", 0, "sku1", "{\"price\":19.99}", NULL);
    /* PUBSUB */
    h_produce(p, "t_pubsub", 0, "k", "hello", NULL);
    h_produce(p, "t_pubsub", 0, "k", "world", NULL);
    /* Templates: key from value field and header; list per user with the whole value */
    h_produce(p, "t_tmpl", 0, "e1", "{\"userid\":\"u7\",\"n\":1}", "tenant", "acme", NULL);
    h_produce(p, "t_tmpl", 0, "e2", "{\"userid\":\"u7\",\"n\":2}", "tenant", "acme", NULL);
    /* JsonConverter envelope with schemas.enable=true */
    h_produce(p, "t_envelope", 0, "e1",
              "{\"schema\":{\"type\":\"struct\"},\"payload\":{\"a\":1,\"b\":\"two\"}}", NULL);
    /* TTL from config on STRING (SET EX) and header override */
    h_produce(p, "t_ttl", 0, "k1", "v", NULL);
    h_produce(p, "t_ttl", 0, "k2", "v", "redis.key.ttl", "30", NULL);
    /* bytes converter, binary-safe */
    h_produce(p, "t_bytes", 0, "bin", "a\tb c", NULL);
    /* STREAM with MAXLEN ~: trimming keeps at least the last 10 entries */
    char value[64];
    for (int i = 0; i < 300; i++) {
        snprintf(value, sizeof(value), "{\"i\":%d}", i);
        h_produce(p, "t_maxlen", 0, "k", value, NULL);
    }
    /* redis.multiexec: the batch in one MULTI/EXEC, TTL's EXPIRE inside it */
    h_produce(p, "t_multi", 0, "a", "x", NULL);
    h_produce(p, "t_multi", 0, "b", "x", NULL);
    /* topics.regex: two matching topics, one not */
    h_produce(p, "t_rx_a", 0, "k", "from a", NULL);
    h_produce(p, "t_rx_b", 0, "k", "from b", NULL);
    h_produce(p, "t_rx_other", 0, "k", "not me", NULL);
    h_producer_flush(p);
    h_producer_destroy(p);
}

static bool hash_field_is(const char *key, const char *field, const char *expected) {
    char *value = h_redis_str(redis, "HGET %s %s", key, field);
    bool same = value && !strcmp(value, expected);
    free(value);
    return same;
}

static bool all_written(void) {
    return exists("t_string:k3") && !exists("t_string:k2") && exists("t_hash:1453") &&
           !exists("t_hash:1452") && h_redis_int(redis, "XLEN t_stream") == 2 &&
           h_redis_int(redis, "LLEN t_list") == 2 && h_redis_int(redis, "LLEN t_lpush") == 2 &&
           h_redis_int(redis, "SCARD t_set") == 1 && h_redis_int(redis, "ZCARD t_zset") == 1 &&
           exists("prices") && h_redis_int(redis, "LLEN events:u7") == 2 &&
           hash_field_is("acme:user:u7", "n", "2") && exists("t_envelope:e1") &&
           exists("t_ttl:k2") && exists("bin") && h_redis_int(redis, "XLEN t_maxlen") >= 10 &&
           h_redis_int(redis, "LLEN t_multi") == 2 && exists("t_rx_a:k") && exists("t_rx_b:k") &&
           /* PUBLISH leaves no state: its committed offset says both were sent */
           h_committed(broker, "connect-c_pubsub", "t_pubsub", 0) == 2;
}

static int setup(void **state) {
    redis = h_redis_start(NULL);
    broker = h_broker_start(1, topics);

    subscriber = redisConnect("127.0.0.1", redis->port);
    if (!subscriber || subscriber->err)
        return -1;
    redisReply *reply = redisCommand(subscriber, "SUBSCRIBE t_pubsub");
    freeReplyObject(reply);
    struct timeval tv = {.tv_sec = 30};
    redisSetTimeout(subscriber, tv);

    produce_all();

    struct {
        const char *name, *topic, *extra;
    } cases[] = {
        {"c_string", "t_string", "redis.type=STRING\n"},
        {"c_hash", "t_hash", "redis.type=HASH\n"},
        {"c_stream", "t_stream", "redis.type=STREAM\n"},
        {"c_list", "t_list", "redis.type=LIST\n"},
        {"c_lpush", "t_lpush", "redis.command=LPUSH\n"},
        {"c_set", "t_set", "redis.type=SET\n"},
        {"c_zset", "t_zset", "redis.type=ZSET\n"},
        {"c_zfield", "t_zfield", "redis.type=ZSET\nredis.keyspace=prices\n"
                                 "redis.score=${value.price}\n"},
        {"c_pubsub", "t_pubsub", "redis.type=PUBSUB\n"},
        {"c_tmpl_hash", "t_tmpl", "redis.type=HASH\n"
                                  "redis.key.template=${header.tenant}:user:${value.userid}\n"},
        {"c_tmpl_list", "t_tmpl", "redis.type=LIST\nredis.keyspace=events:${value.userid}\n"
                                  "redis.member=${partition}/${offset}/${value}\n"},
        {"c_envelope", "t_envelope", "redis.type=HASH\n"
                                     "value.converter=org.apache.kafka.connect.json.JsonConverter\n"
                                     "value.converter.schemas.enable=true\n"},
        {"c_ttl", "t_ttl", "redis.type=STRING\nredis.key.ttl=1000\n"},
        {"c_bytes", "t_bytes", "redis.type=STRING\nredis.keyspace=\n"
                               "value.converter=org.apache.kafka.connect.converters."
                               "ByteArrayConverter\n"},
        {"c_maxlen", "t_maxlen", "redis.type=STREAM\nredis.stream.maxlen=10\n"},
        {"c_multi", "t_multi", "redis.type=LIST\nredis.multiexec=true\nredis.key.ttl=100\n"},
        {"c_regex", "", "topics.regex=t_rx_(a|b)\nredis.type=STRING\n"},
    };
    const char *argv[64] = {"rkbridge", "run"};
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

    /* Done when the last record of every case is visible (each test then asserts its own
     * part, so a miss names the case). */
    H_WAIT_FOR(all_written(), 60000);
    proc_exit = h_proc_stop(proc, SIGTERM, 30000);
    return 0;
}

static int teardown(void **state) {
    if (subscriber)
        redisFree(subscriber);
    h_proc_free(proc);
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

static void test_clean_shutdown(void **state) {
    if (proc_exit != 0) {
        char *out = h_proc_output(proc);
        fprintf(stderr, "%s\n", out);
        free(out);
    }
    assert_int_equal(proc_exit, 0);
}

/* STRING: SET key value, later records win, tombstone → DEL (SEMANTICS K-3). */
static void test_string(void **state) {
    assert_str("t_string:k1", "v1b");
    assert_false(exists("t_string:k2"));
    assert_str("t_string:k3", "v3");
}

/* HASH: fields of the JSON object; nested values as compact JSON, null members skipped,
 * tombstone → DEL, TTL header → EXPIRE in the same MULTI. */
static void test_hash(void **state) {
    assert_hget("t_hash:1451", "viewtime", "1451");
    assert_hget("t_hash:1451", "userid", "User_6");
    assert_hget("t_hash:1451", "pageid", "Page_35");
    assert_hget("t_hash:1451", "nested", "{\"a\":1}");
    assert_hget("t_hash:1451", "list", "[1,2]");
    assert_hget("t_hash:1451", "flag", "true");
    assert_hget("t_hash:1451", "gone", NULL);
    assert_int_equal(h_redis_int(redis, "TTL t_hash:1451"), -1);
    assert_false(exists("t_hash:1452"));
    long long ttl = h_redis_int(redis, "TTL t_hash:1453");
    assert_true(ttl > 0 && ttl <= 500);
}

static void test_stream(void **state) {
    redisReply *r = h_redis_cmd(redis, "XRANGE t_stream - +");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2); /* the tombstone added nothing */
    redisReply *fields = r->element[0]->element[1];
    assert_int_equal(fields->elements, 4);
    assert_string_equal(fields->element[0]->str, "f");
    assert_string_equal(fields->element[1]->str, "1");
    assert_string_equal(fields->element[2]->str, "g");
    assert_string_equal(fields->element[3]->str, "2");
    fields = r->element[1]->element[1];
    assert_int_equal(fields->elements, 2);
    assert_string_equal(fields->element[0]->str, "value");
    assert_string_equal(fields->element[1]->str, "plain text");
    freeReplyObject(r);
    /* MAXLEN ~ 10 trims approximately: far fewer than the 300 produced, never under 10 */
    long long len = h_redis_int(redis, "XLEN t_maxlen");
    assert_true(len >= 10 && len < 300);
}

static void assert_list(const char *key, const char *const *expected, size_t cnt) {
    redisReply *r = h_redis_cmd(redis, "LRANGE %s 0 -1", key);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, cnt);
    for (size_t i = 0; i < cnt; i++)
        assert_string_equal(r->element[i]->str, expected[i]);
    freeReplyObject(r);
}

static void test_list(void **state) {
    const char *const rpush[] = {"a", "c"}; /* b removed by its tombstone (LREM) */
    assert_list("t_list", rpush, 2);
    const char *const lpush[] = {"b", "a"};
    assert_list("t_lpush", lpush, 2);
}

static void test_set_zset(void **state) {
    assert_int_equal(h_redis_int(redis, "SISMEMBER t_set m1"), 0);
    assert_int_equal(h_redis_int(redis, "SISMEMBER t_set m2"), 1);
    char *score = h_redis_str(redis, "ZSCORE t_zset alice");
    assert_string_equal(score, "10.5");
    free(score);
    assert_null(h_redis_str(redis, "ZSCORE t_zset bob"));
    score = h_redis_str(redis, "ZSCORE prices sku1");
    assert_non_null(score);
    assert_true(strtod(score, NULL) == 19.99); /* Redis prints 17 digits; the double is exact */
    free(score);
}

static void test_pubsub(void **state) {
    const char *expected[] = {"hello", "world"};
    for (int i = 0; i < 2; i++) {
        redisReply *r = NULL;
        assert_int_equal(redisGetReply(subscriber, (void **)&r), REDIS_OK);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_string_equal(r->element[0]->str, "message");
        assert_string_equal(r->element[1]->str, "t_pubsub");
        assert_string_equal(r->element[2]->str, expected[i]);
        freeReplyObject(r);
    }
}

static void test_templates(void **state) {
    assert_hget("acme:user:u7", "n", "2");
    const char *const members[] = {"0/0/{\"userid\":\"u7\",\"n\":1}", "0/1/{\"userid\":\"u7\",\"n\":2}"};
    assert_list("events:u7", members, 2);
}

static void test_converters(void **state) {
    assert_hget("t_envelope:e1", "a", "1");
    assert_hget("t_envelope:e1", "b", "two");
    assert_hget("t_envelope:e1", "schema", NULL);
    assert_str("bin", "a\tb c"); /* empty keyspace: the raw record key */
}

static void test_ttl(void **state) {
    long long ttl = h_redis_int(redis, "TTL t_ttl:k1");
    assert_true(ttl > 30 && ttl <= 1000);
    ttl = h_redis_int(redis, "TTL t_ttl:k2"); /* the header wins over redis.key.ttl */
    assert_true(ttl > 0 && ttl <= 30);
}

static void test_multiexec_and_regex(void **state) {
    const char *const members[] = {"a", "b"};
    assert_list("t_multi", members, 2);
    long long ttl = h_redis_int(redis, "TTL t_multi");
    assert_true(ttl > 0 && ttl <= 100);
    assert_str("t_rx_a:k", "from a");
    assert_str("t_rx_b:k", "from b");
    assert_false(exists("t_rx_other:k")); /* ^(t_rx_(a|b)) does not match it */
}

/* RedisJSON is not in Debian's Redis: the sink says so clearly and the task fails (the exact
 * JSON.SET command is checked in tests/sink/test_writer.c). */
static void test_json_needs_module(void **state) {
    char *text = sink_config(redis, broker, "c_json", "t_json", "redis.type=JSON\n");
    h_proc_t *json = h_rkbridge_run(text, NULL);
    free(text);
    rd_kafka_t *p = h_producer_new(broker);
    h_produce(p, "t_json", 0, "k", "{\"a\":1}", NULL);
    h_producer_flush(p);
    h_producer_destroy(p);
    int status = h_proc_wait(json, 60000);
    char *out = h_proc_output(json);
    if (status != 1)
        fprintf(stderr, "%s\n", out);
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "redis.type=JSON needs the RedisJSON module"));
    free(out);
    h_proc_free(json);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_shutdown), cmocka_unit_test(test_string),
        cmocka_unit_test(test_hash),           cmocka_unit_test(test_stream),
        cmocka_unit_test(test_list),           cmocka_unit_test(test_set_zset),
        cmocka_unit_test(test_pubsub),         cmocka_unit_test(test_templates),
        cmocka_unit_test(test_converters),     cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_multiexec_and_regex), cmocka_unit_test(test_json_needs_module),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
