/*
 * test_enrich.c — enrichment from Redis reference data (process/enrich.h) in the sink, against
 * a real redis-server and the dev broker: 100k events joined against 10k HASH profiles with
 * misses (every record checked in the output topic and in Redis), each miss mode (pass,
 * default, dead-letter with the dead-letter topic's content), merge under enrich.field vs at
 * the top level, STRING lookups (JSON text, plain text, WRONGTYPE), JSON lookups (RedisJSON, or
 * the clear failure without it), the cache (LRU order and hits counted, stale within the TTL,
 * fresh after it), Redis killed mid-run, exactly-once with an output topic across a crash
 * between the output's acknowledgement and the Redis write, redis.type=NONE, and validation.
 * One Redis and one dev broker serve the file; each test has its own topics and connector.
 */
#include "harness.h"
#include "../sink/sink_test_util.h"
#include "../source/source_test_util.h" /* source_validate: `rkbridge validate` on a text */

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static h_redis_t *redis;
static h_broker_t *broker;

static int setup(void **state) {
    redis = h_redis_start(NULL);
    broker = h_broker_start(1, "big:8,big_out:8,mp:1,mp_out:1,md:1,md_out:1,mdl:1,mdl_out:1,"
                               "mdl_dlq:1,fld:1,fld_out:1,str:1,str_dlq:1,js:1,cl:1,cl_out:1,"
                               "ct:1,ct_out:1,cs:1,cs_out:1,down:4,down_out:4,eos:1,eos_out:1");
    return 0;
}

static int teardown(void **state) {
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void produce_values(const char *topic, int n, const char *const *keys,
                           const char *const *values) {
    rd_kafka_t *p = h_producer_new(broker);
    for (int i = 0; i < n; i++)
        h_produce(p, topic, -1, keys[i], values[i], NULL);
    h_producer_flush(p);
    h_producer_destroy(p);
}

static h_proc_t *start(const char *name, const char *topic, const char *extra_fmt, ...) {
    char extra[4096];
    va_list ap;
    va_start(ap, extra_fmt);
    vsnprintf(extra, sizeof(extra), extra_fmt, ap);
    va_end(ap);
    char *text = sink_config(redis, broker, name, topic, "%s", extra);
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    return proc;
}

/* Waits for the group's commits to reach `expected` on topic's partitions, then SIGTERM. */
static void finish(h_proc_t *proc, const char *name, const char *topic, int partitions,
                   int64_t expected) {
    char group[128];
    snprintf(group, sizeof(group), "connect-%s", name);
    bool done = H_WAIT_FOR(sink_committed_sum(broker, group, topic, partitions) == expected,
                           120000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    int status = h_proc_stop(proc, SIGTERM, 30000);
    if (status != 0)
        sink_dump_output(proc);
    assert_int_equal(status, 0);
}

/* N of a message keyed "kN" or "tN". */
static int key_index(const rd_kafka_message_t *msg) {
    char key[32];
    snprintf(key, sizeof(key), "%.*s", (int)msg->key_len, (const char *)msg->key);
    return atoi(key + 1);
}

/* The JSON of a message value (caller decrefs); fails the test if it is not JSON. */
static json_t *msg_json(const rd_kafka_message_t *msg) {
    json_error_t error;
    json_t *json = json_loadb(msg->payload, msg->len, 0, &error);
    if (!json)
        fail_msg("not JSON: %.*s (%s)", (int)msg->len, (const char *)msg->payload, error.text);
    return json;
}

static json_t *parse(const char *text) {
    json_error_t error;
    json_t *json = json_loads(text, 0, &error);
    if (!json)
        fail_msg("bad expected JSON %s: %s", text, error.text);
    return json;
}

static void assert_json_equal(const json_t *got, const json_t *expected, const char *what) {
    if (json_equal(got, expected))
        return;
    char *g = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *e = json_dumps(expected, JSON_SORT_KEYS | JSON_ENCODE_ANY);
    fail_msg("%s: got %s, expected %s", what, g, e);
}

/* The message of topic with key, as JSON (the last one with that key); NULL if none. */
static json_t *topic_value(const char *topic, const char *key) {
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, topic, &msgs);
    json_t *found = NULL;
    for (size_t i = 0; i < cnt; i++) {
        if (msgs[i]->key_len == strlen(key) && !memcmp(msgs[i]->key, key, msgs[i]->key_len)) {
            json_decref(found);
            found = msg_json(msgs[i]);
        }
    }
    h_messages_free(msgs, cnt);
    return found;
}

static void assert_topic_value(const char *topic, const char *key, const char *expected) {
    json_t *got = topic_value(topic, key);
    if (!got)
        fail_msg("%s: no record with key %s", topic, key);
    json_t *want = parse(expected);
    assert_json_equal(got, want, key);
    json_decref(got);
    json_decref(want);
}

/* GET key as JSON equal to expected (expected NULL: the key does not exist). */
static void assert_redis_json(const char *key, const char *expected) {
    char *got = h_redis_str(redis, "GET %s", key);
    if (!expected) {
        if (got)
            fail_msg("%s: expected no key, got %s", key, got);
        return;
    }
    if (!got)
        fail_msg("%s: no such key", key);
    json_t *g = parse(got), *want = parse(expected);
    assert_json_equal(g, want, key);
    json_decref(g);
    json_decref(want);
    free(got);
}

static const char *header(const rd_kafka_message_t *msg, const char *name, char *buf,
                          size_t size) {
    rd_kafka_headers_t *hdrs;
    const void *value;
    size_t len;
    if (rd_kafka_message_headers(msg, &hdrs) ||
        rd_kafka_header_get_last(hdrs, name, &value, &len))
        return NULL;
    snprintf(buf, size, "%.*s", (int)len, value ? (const char *)value : "");
    return buf;
}

/* The counter `what` ("lookups", "cache hits", "misses", "produced") of the "sink stopped"
 * line (single task), or -1. */
static long long stopped_counter(h_proc_t *proc, const char *what) {
    char *out = h_proc_output(proc);
    const char *line = strstr(out, "sink stopped:");
    const char *at = line ? strstr(line, "enrichment:") : NULL;
    long long value = -1;
    while (at && *at && *at != '\n') {
        char *end;
        long long n = strtoll(at, &end, 10);
        if (end != at && !strncmp(end + 1, what, strlen(what))) {
            value = n;
            break;
        }
        at = end != at ? end : at + 1;
    }
    free(out);
    return value;
}

/* ---- 100k events against 10k profiles --------------------------------------------------- */

enum { BIG_N = 100000, USERS = 11000 };

/* Profile u exists for u < 10000 except every u ending in 7 (2000 of 11000 users missing). */
static bool has_profile(int u) {
    return u < 10000 && u % 10 != 7;
}
static const char *const tiers[] = {"gold", "silver", "bronze"};
static int big_user(int i) {
    return (int)(((long long)i * 7919) % USERS);
}

/* What event i must become: its own members, then the profile's (or the default). */
static json_t *big_expected(int i) {
    int u = big_user(i);
    json_t *v = json_pack("{s:i,s:i}", "txn", i, "amount", i % 1000);
    char user[16];
    snprintf(user, sizeof(user), "u%d", u);
    json_object_set_new(v, "user", json_string(user));
    if (has_profile(u)) {
        char name[32], since[16];
        snprintf(name, sizeof(name), "Name %d", u);
        snprintf(since, sizeof(since), "%d", 2000 + u % 20);
        json_object_set_new(v, "name", json_string(name));
        json_object_set_new(v, "tier", json_string(tiers[u % 3]));
        json_object_set_new(v, "since", json_string(since));
    } else {
        json_object_set_new(v, "tier", json_string("unknown"));
    }
    return v;
}

/* The text HSET stored for a JSON member. */
static void member_text(const json_t *m, char *buf, size_t size) {
    if (json_is_string(m))
        snprintf(buf, size, "%s", json_string_value(m));
    else
        snprintf(buf, size, "%lld", (long long)json_integer_value(m));
}

static void test_100k_events_10k_profiles(void **state) {
    freeReplyObject(h_redis_cmd(
        redis, "EVAL %s 0",
        "local tiers = {'gold', 'silver', 'bronze'} "
        "for u = 0, 9999 do if u % 10 ~= 7 then "
        "redis.call('HSET', 'profile:u' .. u, 'name', 'Name ' .. u, 'tier', tiers[u % 3 + 1], "
        "'since', tostring(2000 + u % 20)) end end return 1"));

    rd_kafka_t *p = h_producer_new(broker);
    char key[16], value[128], trace[16];
    for (int i = 0; i < BIG_N; i++) {
        snprintf(key, sizeof(key), "t%d", i);
        snprintf(value, sizeof(value), "{\"txn\":%d,\"user\":\"u%d\",\"amount\":%d}", i,
                 big_user(i), i % 1000);
        snprintf(trace, sizeof(trace), "tr%d", i);
        h_produce(p, "big", -1, key, value, "trace", trace, NULL);
    }
    h_producer_flush(p);
    h_producer_destroy(p);

    int64_t t0 = h_now_ms();
    h_proc_t *proc = start("big", "big",
                           "redis.type=HASH\nredis.keyspace=txn\ntasks.max=2\n"
                           "enrich.key=profile:${value.user}\nenrich.on.miss=default\n"
                           "enrich.default={\"tier\":\"unknown\"}\nenrich.output.topic=big_out\n");
    finish(proc, "big", "big", 8, BIG_N);
    fprintf(stderr, "100k events enriched and written in %lld ms\n",
            (long long)(h_now_ms() - t0));
    h_proc_free(proc);

    /* The output topic: every event exactly once (nothing failed in this run), with its key,
     * its header, its timestamp and exactly the right profile or the default. */
    rd_kafka_message_t **in, **out;
    size_t in_cnt = h_consume_all(broker, "big", &in);
    size_t out_cnt = h_consume_all(broker, "big_out", &out);
    assert_int_equal(in_cnt, BIG_N);
    assert_int_equal(out_cnt, BIG_N);
    int64_t *in_ts = calloc(BIG_N, sizeof(*in_ts));
    bool *seen = calloc(BIG_N, sizeof(*seen));
    for (size_t k = 0; k < in_cnt; k++) {
        int i = key_index(in[k]);
        in_ts[i] = rd_kafka_message_timestamp(in[k], NULL);
    }
    for (size_t k = 0; k < out_cnt; k++) {
        snprintf(key, sizeof(key), "%.*s", (int)out[k]->key_len, (const char *)out[k]->key);
        int i = atoi(key + 1);
        assert_true(i >= 0 && i < BIG_N);
        assert_false(seen[i]);
        seen[i] = true;
        json_t *got = msg_json(out[k]), *want = big_expected(i);
        assert_json_equal(got, want, key);
        json_decref(got);
        json_decref(want);
        snprintf(trace, sizeof(trace), "tr%d", i);
        char buf[64];
        assert_string_equal(header(out[k], "trace", buf, sizeof(buf)), trace);
        assert_int_equal(rd_kafka_message_timestamp(out[k], NULL), in_ts[i]);
    }
    h_messages_free(in, in_cnt);
    h_messages_free(out, out_cnt);
    free(in_ts);
    free(seen);

    /* Redis: every event's hash holds exactly the enriched members (pipelined HGETALLs). */
    assert_int_equal(h_redis_int(redis, "DBSIZE"), 9000 + BIG_N);
    redisContext *c = redis->client;
    for (int base = 0; base < BIG_N; base += 1000) {
        for (int i = base; i < base + 1000; i++)
            redisAppendCommand(c, "HGETALL txn:t%d", i);
        for (int i = base; i < base + 1000; i++) {
            redisReply *r = NULL;
            assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
            json_t *want = big_expected(i);
            assert_int_equal(r->type, REDIS_REPLY_ARRAY);
            assert_int_equal(r->elements, 2 * json_object_size(want));
            for (size_t j = 0; j < r->elements; j += 2) {
                const json_t *m = json_object_get(want, r->element[j]->str);
                if (!m)
                    fail_msg("txn:t%d: unexpected field %s", i, r->element[j]->str);
                char text[64];
                member_text(m, text, sizeof(text));
                assert_string_equal(r->element[j + 1]->str, text);
            }
            json_decref(want);
            freeReplyObject(r);
        }
    }
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* ---- miss modes, merge, lookups ----------------------------------------------------------- */

static const char *const miss_keys[] = {"a", "b", "c"};
static const char *const miss_values[] = {
    "{\"n\":1,\"user\":\"alice\"}", "{\"n\":2,\"user\":\"nobody\"}", "{\"n\":3,\"user\":\"bob\"}"};

static void load_two_profiles(void) {
    h_redis_int(redis, "HSET mp:alice name Alice tier gold");
    h_redis_int(redis, "HSET mp:bob name Bob tier silver");
}

/* pass: a miss goes on unchanged, to the output topic and to Redis (STRING: the whole
 * enriched value is what SET writes). */
static void test_miss_pass(void **state) {
    load_two_profiles();
    produce_values("mp", 3, miss_keys, miss_values);
    h_proc_t *proc = start("mp", "mp",
                           "redis.type=STRING\nredis.keyspace=mp_out\n"
                           "enrich.key=mp:${value.user}\nenrich.output.topic=mp_out\n");
    finish(proc, "mp", "mp", 1, 3);
    assert_int_equal(stopped_counter(proc, "misses"), 1);
    assert_int_equal(stopped_counter(proc, "produced"), 3);
    h_proc_free(proc);
    const char *const expected[] = {
        "{\"n\":1,\"user\":\"alice\",\"name\":\"Alice\",\"tier\":\"gold\"}",
        "{\"n\":2,\"user\":\"nobody\"}",
        "{\"n\":3,\"user\":\"bob\",\"name\":\"Bob\",\"tier\":\"silver\"}",
    };
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof(key), "mp_out:%s", miss_keys[i]);
        assert_redis_json(key, expected[i]);
        assert_topic_value("mp_out", miss_keys[i], expected[i]);
    }
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* default: enrich.default is merged instead, under enrich.field here. */
static void test_miss_default_under_field(void **state) {
    load_two_profiles();
    produce_values("md", 3, miss_keys, miss_values);
    h_proc_t *proc = start("md", "md",
                           "redis.type=STRING\nredis.keyspace=md_out\n"
                           "enrich.key=mp:${value.user}\nenrich.field=profile\n"
                           "enrich.on.miss=default\nenrich.default={\"tier\":\"none\"}\n"
                           "enrich.output.topic=md_out\n");
    finish(proc, "md", "md", 1, 3);
    h_proc_free(proc);
    const char *const expected[] = {
        "{\"n\":1,\"user\":\"alice\",\"profile\":{\"name\":\"Alice\",\"tier\":\"gold\"}}",
        "{\"n\":2,\"user\":\"nobody\",\"profile\":{\"tier\":\"none\"}}",
        "{\"n\":3,\"user\":\"bob\",\"profile\":{\"name\":\"Bob\",\"tier\":\"silver\"}}",
    };
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof(key), "md_out:%s", miss_keys[i]);
        assert_redis_json(key, expected[i]);
        assert_topic_value("md_out", miss_keys[i], expected[i]);
    }
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* dead-letter: the miss goes to the dead-letter topic as consumed (original value and headers,
 * stage TRANSFORMATION, the reason), neither to the output topic nor to Redis; the offsets
 * move past it. */
static void test_miss_dead_letter(void **state) {
    load_two_profiles();
    rd_kafka_t *p = h_producer_new(broker);
    for (int i = 0; i < 3; i++)
        h_produce(p, "mdl", -1, miss_keys[i], miss_values[i], "trace", miss_keys[i], NULL);
    h_producer_flush(p);
    h_producer_destroy(p);
    h_proc_t *proc = start("mdl", "mdl",
                           "redis.type=STRING\nredis.keyspace=mdl_out\n"
                           "enrich.key=mp:${value.user}\nenrich.on.miss=dead-letter\n"
                           "enrich.output.topic=mdl_out\nerrors.tolerance=all\n"
                           "errors.deadletterqueue.topic.name=mdl_dlq\n"
                           "errors.deadletterqueue.context.headers.enable=true\n");
    finish(proc, "mdl", "mdl", 1, 3);
    h_proc_free(proc);

    assert_redis_json("mdl_out:a", "{\"n\":1,\"user\":\"alice\",\"name\":\"Alice\",\"tier\":\"gold\"}");
    assert_redis_json("mdl_out:b", NULL);
    assert_redis_json("mdl_out:c", "{\"n\":3,\"user\":\"bob\",\"name\":\"Bob\",\"tier\":\"silver\"}");
    json_t *none = topic_value("mdl_out", "b");
    assert_null(none);

    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "mdl_dlq", &msgs);
    assert_int_equal(cnt, 1);
    char buf[512];
    assert_int_equal(msgs[0]->key_len, 1);
    assert_memory_equal(msgs[0]->key, "b", 1);
    assert_int_equal(msgs[0]->len, strlen(miss_values[1]));
    assert_memory_equal(msgs[0]->payload, miss_values[1], msgs[0]->len); /* as consumed */
    assert_string_equal(header(msgs[0], "trace", buf, sizeof(buf)), "b");
    assert_string_equal(header(msgs[0], "__connect.errors.stage", buf, sizeof(buf)),
                        "TRANSFORMATION");
    assert_string_equal(header(msgs[0], "__connect.errors.offset", buf, sizeof(buf)), "1");
    assert_non_null(header(msgs[0], "__connect.errors.exception.message", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "enrich.key 'mp:nobody': no reference data"));
    h_messages_free(msgs, cnt);
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* Under enrich.field vs at the top level: at the top level the reference data's members replace
 * the record's members of the same name; under a field the record keeps its own. A tombstone
 * passes (DEL), a value that is not a JSON object is a data error (skipped here). */
static void test_field_vs_top_level(void **state) {
    h_redis_int(redis, "HSET fp:1 n 100 city Paris");
    const char *const keys[] = {"a", "b", "c"};
    const char *const values[] = {"{\"n\":1,\"u\":1}", "[1,2]", "{\"n\":3,\"u\":1}"};
    produce_values("fld", 3, keys, values);
    rd_kafka_t *p = h_producer_new(broker);
    h_produce(p, "fld", -1, "a", NULL, NULL); /* tombstone of a */
    h_producer_flush(p);
    h_producer_destroy(p);
    freeReplyObject(h_redis_cmd(redis, "SET top:a old"));

    /* Top level, STRING: a is enriched then deleted by its tombstone. */
    h_proc_t *proc = start("fld_top", "fld",
                           "redis.type=STRING\nredis.keyspace=top\n"
                           "enrich.key=fp:${value.u}\nerrors.tolerance=all\n"
                           "enrich.output.topic=fld_out\n");
    finish(proc, "fld_top", "fld", 1, 4);
    h_proc_free(proc);
    assert_redis_json("top:a", NULL);
    assert_redis_json("top:b", NULL);
    assert_redis_json("top:c", "{\"n\":\"100\",\"u\":1,\"city\":\"Paris\"}");
    /* The output topic has a's enriched record then its tombstone, c, and not b. */
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "fld_out", &msgs);
    assert_int_equal(cnt, 3);
    assert_memory_equal(msgs[0]->key, "a", 1);
    json_t *a = msg_json(msgs[0]), *want = parse("{\"n\":\"100\",\"u\":1,\"city\":\"Paris\"}");
    assert_json_equal(a, want, "a");
    json_decref(a);
    json_decref(want);
    assert_memory_equal(msgs[1]->key, "c", 1);
    assert_memory_equal(msgs[2]->key, "a", 1);
    assert_null(msgs[2]->payload); /* the tombstone, passed on */
    h_messages_free(msgs, cnt);

    /* Under a field, HASH: the record's n stays. */
    proc = start("fld_field", "fld",
                 "redis.type=HASH\nredis.keyspace=fh\nenrich.key=fp:${value.u}\n"
                 "enrich.field=ref\nerrors.tolerance=all\n");
    finish(proc, "fld_field", "fld", 1, 4);
    h_proc_free(proc);
    char *n = h_redis_str(redis, "HGET fh:c n"), *ref = h_redis_str(redis, "HGET fh:c ref");
    assert_string_equal(n, "3");
    json_t *got = parse(ref);
    want = parse("{\"n\":\"100\",\"city\":\"Paris\"}");
    assert_json_equal(got, want, "fh:c ref");
    json_decref(got);
    json_decref(want);
    free(n);
    free(ref);
    assert_int_equal(h_redis_int(redis, "EXISTS fh:a fh:b"), 0);
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* STRING lookups: JSON text is parsed; plain text is merged as a string under enrich.field, and
 * at the top level it is a data error; a key of the wrong type (WRONGTYPE) is a data error; a
 * key template that cannot be expanded is a data error naming the token. */
static void test_string_lookups(void **state) {
    freeReplyObject(h_redis_cmd(redis, "SET sref:json {\"score\":0.5,\"tags\":[\"x\"]}"));
    freeReplyObject(h_redis_cmd(redis, "SET sref:plain hello"));
    h_redis_int(redis, "RPUSH sref:list x");
    const char *const keys[] = {"json", "plain", "list", "nofield"};
    const char *const values[] = {"{\"r\":\"json\"}", "{\"r\":\"plain\"}", "{\"r\":\"list\"}",
                                  "{\"other\":1}"};
    produce_values("str", 4, keys, values);

    h_proc_t *proc = start("str_field", "str",
                           "redis.type=STRING\nredis.keyspace=sf\nenrich.lookup=STRING\n"
                           "enrich.key=sref:${value.r}\nenrich.field=ref\n"
                           "errors.tolerance=all\nerrors.deadletterqueue.topic.name=str_dlq\n"
                           "errors.deadletterqueue.context.headers.enable=true\n");
    finish(proc, "str_field", "str", 1, 4);
    h_proc_free(proc);
    assert_redis_json("sf:json", "{\"r\":\"json\",\"ref\":{\"score\":0.5,\"tags\":[\"x\"]}}");
    assert_redis_json("sf:plain", "{\"r\":\"plain\",\"ref\":\"hello\"}");
    assert_redis_json("sf:list", NULL);
    assert_redis_json("sf:nofield", NULL);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "str_dlq", &msgs);
    assert_int_equal(cnt, 2);
    char buf[512];
    assert_memory_equal(msgs[0]->key, "list", 4);
    header(msgs[0], "__connect.errors.exception.message", buf, sizeof(buf));
    assert_non_null(strstr(buf, "enrich.key 'sref:list': WRONGTYPE"));
    assert_memory_equal(msgs[1]->key, "nofield", 7);
    header(msgs[1], "__connect.errors.exception.message", buf, sizeof(buf));
    assert_non_null(strstr(buf, "enrich.key: ${value.r}"));
    h_messages_free(msgs, cnt);

    /* At the top level: the JSON object merges, plain text cannot. */
    proc = start("str_top", "str",
                 "redis.type=STRING\nredis.keyspace=st\nenrich.lookup=STRING\n"
                 "enrich.key=sref:${value.r}\nerrors.tolerance=all\nerrors.log.enable=true\n");
    finish(proc, "str_top", "str", 1, 4);
    char *out = h_proc_output(proc);
    assert_non_null(strstr(out, "str[0]@1 at stage TRANSFORMATION: enrich.key 'sref:plain': "
                                "the reference data is a string: merging at the top level "
                                "needs a JSON object"));
    free(out);
    h_proc_free(proc);
    assert_redis_json("st:json", "{\"r\":\"json\",\"score\":0.5,\"tags\":[\"x\"]}");
    assert_redis_json("st:plain", NULL);
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* JSON lookups need RedisJSON (JSON.GET). Without it the task says so at start and fails;
 * with it, the document is merged. */
static void test_json_lookup(void **state) {
    redisReply *info = h_redis_cmd(redis, "COMMAND INFO JSON.GET");
    bool has_json = info->type == REDIS_REPLY_ARRAY && info->elements == 1 &&
                    info->element[0]->type == REDIS_REPLY_ARRAY;
    freeReplyObject(info);
    const char *const keys[] = {"k"};
    const char *const values[] = {"{\"u\":\"1\"}"};
    produce_values("js", 1, keys, values);
    h_proc_t *proc = start("js", "js",
                           "redis.type=STRING\nredis.keyspace=jo\nenrich.lookup=JSON\n"
                           "enrich.key=jref:${value.u}\n");
    if (!has_json) {
        int status = h_proc_wait(proc, 60000);
        char *out = h_proc_output(proc);
        if (status != 1)
            fprintf(stderr, "%s\n", out);
        assert_int_equal(status, 1);
        assert_non_null(
            strstr(out, "enrich.lookup=JSON needs the RedisJSON module: this Redis does not "
                        "know JSON.GET"));
        free(out);
        h_proc_free(proc);
        skip(); /* the merge of a JSON document needs a Redis with RedisJSON */
    }
    freeReplyObject(h_redis_cmd(redis, "JSON.SET jref:1 $ {\"a\":[1,2]}"));
    finish(proc, "js", "js", 1, 1);
    h_proc_free(proc);
    assert_redis_json("jo:k", "{\"u\":\"1\",\"a\":[1,2]}");
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* ---- the cache --------------------------------------------------------------------------- */

/* Produces one record (key, {"user": user}) and waits until the group committed past it. */
static void produce_one_and_wait(const char *topic, const char *name, int64_t *count,
                                 const char *key, const char *user) {
    char value[64], group[64];
    snprintf(value, sizeof(value), "{\"user\":\"%s\"}", user);
    const char *const keys[] = {key};
    const char *const values[] = {value};
    produce_values(topic, 1, keys, values);
    ++*count;
    snprintf(group, sizeof(group), "connect-%s", name);
    assert_true(H_WAIT_FOR(h_committed(broker, group, topic, 0) == *count, 60000));
}

/* LRU order, with one record per batch: A B C A C B through a 2-entry cache is 5 lookups and
 * 1 hit (C's second time). */
static void test_cache_lru(void **state) {
    h_redis_int(redis, "HSET cu:A n a");
    h_redis_int(redis, "HSET cu:B n b");
    h_redis_int(redis, "HSET cu:C n c");
    h_proc_t *proc = start("cl", "cl",
                           "redis.type=NONE\nbatch.size=1\nenrich.key=cu:${value.user}\n"
                           "enrich.cache.max.entries=2\nenrich.cache.ttl.ms=600000\n"
                           "enrich.output.topic=cl_out\n");
    int64_t count = 0;
    const char *const users[] = {"A", "B", "C", "A", "C", "B"};
    for (int i = 0; i < 6; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        produce_one_and_wait("cl", "cl", &count, key, users[i]);
    }
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    assert_int_equal(stopped_counter(proc, "lookups"), 5);
    assert_int_equal(stopped_counter(proc, "cache hits"), 1);
    assert_int_equal(stopped_counter(proc, "produced"), 6);
    h_proc_free(proc);
    assert_topic_value("cl_out", "k4", "{\"user\":\"C\",\"n\":\"c\"}");
    /* redis.type=NONE wrote nothing. */
    assert_int_equal(h_redis_int(redis, "DBSIZE"), 3);
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* Within the TTL the cached profile is used (a change in Redis is not seen yet: proof that the
 * cache answered, and hits are counted); after the TTL the changed profile is read. */
static void test_cache_ttl(void **state) {
    h_redis_int(redis, "HSET cp:A tier gold");
    /* A TTL far longer than the test: stale data is served. */
    h_proc_t *proc = start("ct", "ct",
                           "redis.type=NONE\nenrich.key=cp:${value.user}\n"
                           "enrich.cache.max.entries=10\nenrich.cache.ttl.ms=600000\n"
                           "enrich.output.topic=ct_out\n");
    int64_t count = 0;
    produce_one_and_wait("ct", "ct", &count, "k0", "A");
    h_redis_int(redis, "HSET cp:A tier silver");
    for (int i = 1; i <= 3; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        produce_one_and_wait("ct", "ct", &count, key, "A");
    }
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    assert_int_equal(stopped_counter(proc, "lookups"), 1);
    assert_int_equal(stopped_counter(proc, "cache hits"), 3);
    h_proc_free(proc);
    assert_topic_value("ct_out", "k3", "{\"user\":\"A\",\"tier\":\"gold\"}");

    /* A short TTL: after it has passed since the change, the change is seen. */
    h_redis_int(redis, "HSET cs:A tier gold");
    proc = start("cs", "cs",
                 "redis.type=NONE\nenrich.key=cs:${value.user}\n"
                 "enrich.cache.max.entries=10\nenrich.cache.ttl.ms=1000\n"
                 "enrich.output.topic=cs_out\n");
    count = 0;
    produce_one_and_wait("cs", "cs", &count, "k0", "A");
    h_redis_int(redis, "HSET cs:A tier silver");
    h_sleep_ms(1200); /* longer than the TTL since the change: the cached entry is older */
    produce_one_and_wait("cs", "cs", &count, "k1", "A");
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    assert_topic_value("cs_out", "k0", "{\"user\":\"A\",\"tier\":\"gold\"}");
    assert_topic_value("cs_out", "k1", "{\"user\":\"A\",\"tier\":\"silver\"}");
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* ---- failures ------------------------------------------------------------------------------ */

/* Redis killed while records arrive: lookups fail, intake pauses, and when Redis is back every
 * record is enriched, produced and written: nothing lost. */
static void test_redis_killed(void **state) {
    enum { HALF = 5000 };
    h_redis_t *shared = redis;
    redis = h_redis_start("--appendonly yes --appendfsync always");
    freeReplyObject(h_redis_cmd(redis, "EVAL %s 0",
                                "for u = 0, 99 do redis.call('HSET', 'dp:' .. u, 'u', u) end "
                                "return 1"));
    h_proc_t *proc = start("down", "down",
                           "redis.type=STRING\nredis.keyspace=do\nredis.timeout=1\n"
                           "enrich.key=dp:${value.u}\nenrich.output.topic=down_out\n");
    rd_kafka_t *p = h_producer_new(broker);
    char key[16], value[64];
    for (int i = 0; i < 2 * HALF; i++) {
        if (i == HALF) {
            h_producer_flush(p);
            assert_true(H_WAIT_FOR(h_redis_int(redis, "DBSIZE") == 100 + HALF, 60000));
            h_redis_kill(redis);
        }
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(value, sizeof(value), "{\"i\":%d,\"u\":%d}", i, i % 100);
        h_produce(p, "down", -1, key, value, NULL);
    }
    h_producer_flush(p);
    h_producer_destroy(p);
    char *out = NULL;
    bool failing = H_WAIT_FOR((free(out), out = h_proc_output(proc),
                               strstr(out, "writes failing: pausing intake") != NULL),
                              60000);
    free(out);
    assert_true(failing);
    h_redis_restart(redis);
    finish(proc, "down", "down", 4, 2 * HALF);
    h_proc_free(proc);

    /* Every record in Redis and in the output topic with its profile (the output may repeat
     * a record: at-least-once). */
    bool *seen = calloc(2 * HALF, sizeof(*seen));
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "down_out", &msgs);
    for (size_t k = 0; k < cnt; k++) {
        int i = key_index(msgs[k]);
        json_t *got = msg_json(msgs[k]);
        json_t *want = json_pack("{s:i}", "i", i);
        char u[8];
        snprintf(u, sizeof(u), "%d", i % 100);
        json_object_set_new(want, "u", json_string(u)); /* the profile's u (hash text) wins */
        assert_json_equal(got, want, "output");
        json_decref(got);
        json_decref(want);
        seen[i] = true;
    }
    h_messages_free(msgs, cnt);
    for (int i = 0; i < 2 * HALF; i++) {
        if (!seen[i])
            fail_msg("k%d missing from the output topic", i);
        snprintf(key, sizeof(key), "do:k%d", i);
        snprintf(value, sizeof(value), "{\"i\":%d,\"u\":\"%d\"}", i, i % 100);
        assert_redis_json(key, value);
    }
    free(seen);
    h_redis_stop(redis);
    redis = shared;
}

/* Exactly-once with an output topic: the process dies right after the output topic
 * acknowledged record 1234 and before its batch reached Redis, then right after Redis applied
 * the batch of record 2345. Each restart starts at the offset stored in Redis: the output holds
 * every record (1234 twice: duplicated, not lost; what Redis applied was produced before) and
 * the Redis list holds every enriched record exactly once, in order. */
static void test_exactly_once_output(void **state) {
    enum { N = 3000 };
    h_redis_int(redis, "HSET ep:x region eu");
    rd_kafka_t *p = h_producer_new(broker);
    char key[16], value[64];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(value, sizeof(value), "{\"i\":%d,\"p\":\"x\"}", i);
        h_produce(p, "eos", 0, key, value, NULL);
    }
    h_producer_flush(p);
    h_producer_destroy(p);
    char *text = sink_config(redis, broker, "eos", "eos",
                             "redis.type=LIST\nredis.keyspace=eos_list\nredis.member=${value}\n"
                             "redis.delivery=exactly-once\nbatch.size=100\n"
                             "enrich.key=ep:${value.p}\nenrich.output.topic=eos_out\n");
    const char *const crash_env[] = {"RKB_FAILPOINT=crash_after_output_produce@1234", NULL};
    h_proc_t *proc = h_rkbridge_run(text, crash_env);
    int status = h_proc_wait(proc, 60000);
    if (status != 128 + SIGKILL)
        sink_dump_output(proc);
    assert_int_equal(status, 128 + SIGKILL);
    h_proc_free(proc);
    char *stored = h_redis_str(redis, "GET rkbridge:offset:{eos:0}:eos");
    assert_non_null(stored);
    assert_true(atoll(stored) <= 1234);
    free(stored);

    const char *const crash_env2[] = {"RKB_FAILPOINT=crash_after_redis_apply@2345", NULL};
    proc = h_rkbridge_run(text, crash_env2);
    status = h_proc_wait(proc, 60000);
    if (status != 128 + SIGKILL)
        sink_dump_output(proc);
    assert_int_equal(status, 128 + SIGKILL);
    h_proc_free(proc);

    proc = h_rkbridge_run(text, NULL);
    free(text);
    finish(proc, "eos", "eos", 1, N);
    h_proc_free(proc);

    assert_int_equal(h_redis_int(redis, "LLEN eos_list"), N);
    redisReply *list = h_redis_cmd(redis, "LRANGE eos_list 0 -1");
    for (int i = 0; i < N; i++) {
        snprintf(value, sizeof(value), "{\"i\":%d,\"p\":\"x\",\"region\":\"eu\"}", i);
        assert_string_equal(list->element[i]->str, value);
    }
    freeReplyObject(list);
    int *times = calloc(N, sizeof(*times));
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "eos_out", &msgs);
    for (size_t k = 0; k < cnt; k++) {
        int i = key_index(msgs[k]);
        snprintf(value, sizeof(value), "{\"i\":%d,\"p\":\"x\",\"region\":\"eu\"}", i);
        assert_int_equal(msgs[k]->len, strlen(value));
        assert_memory_equal(msgs[k]->payload, value, msgs[k]->len);
        times[i]++;
    }
    h_messages_free(msgs, cnt);
    for (int i = 0; i < N; i++)
        if (times[i] < 1)
            fail_msg("k%d missing from the output topic", i);
    assert_true(times[1234] >= 2);
    free(times);
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* ---- validation ------------------------------------------------------------------------- */

static void test_validation(void **state) {
    /* sink_config writes 7 lines; the first extra line is line 8. */
    static const struct {
        const char *extra, *expected;
    } cases[] = {
        {"enrich.key=user:${valu.id}\n", "validate.properties:8: enrich.key: "},
        {"enrich.key=user:${value.id}\nenrich.default={nope\n",
         "validate.properties:9: enrich.default: not JSON"},
        {"enrich.key=user:${value.id}\nenrich.on.miss=default\nenrich.default=[1]\n",
         "validate.properties:10: enrich.default: is an array: merged at the top level it "
         "must be a JSON object"},
        {"enrich.key=user:${value.id}\nenrich.on.miss=dead-letter\n",
         "validate.properties:9: enrich.on.miss: dead-letter needs errors.tolerance=all and "
         "errors.deadletterqueue.topic.name"},
        {"enrich.key=user:${value.id}\nenrich.on.miss=dead-letter\nerrors.tolerance=all\n",
         "validate.properties:9: enrich.on.miss: dead-letter needs"},
        {"redis.type=NONE\nenrich.key=user:${value.id}\n",
         "validate.properties:8: redis.type: NONE writes nothing to Redis: it needs "
         "enrich.output.topic"},
        {"enrich.output.topic=out\n", "validate.properties:8: enrich.output.topic: needs "
                                      "enrich.key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = sink_config(redis, broker, "val", "val", "%s", cases[i].extra);
        char *out = NULL;
        int rc = source_validate(text, &out);
        if (rc != 2 || !strstr(out, cases[i].expected))
            fail_msg("case %zu: exit %d, output:\n%s", i, rc, out);
        free(out);
        free(text);
    }
    /* Valid: each mode as documented. */
    static const char *const valid[] = {
        "enrich.key=user:${value.id}\n",
        "redis.type=NONE\nenrich.key=user:${value.id}\nenrich.output.topic=out\n",
        "enrich.key=u:${key}\nenrich.on.miss=default\nenrich.field=p\nenrich.default=\"x\"\n",
        "enrich.key=u:${key}\nenrich.on.miss=dead-letter\nerrors.tolerance=all\n"
        "errors.deadletterqueue.topic.name=dlq\nenrich.lookup=STRING\n",
    };
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        char *text = sink_config(redis, broker, "val", "val", "%s", valid[i]);
        char *out = NULL;
        if (source_validate(text, &out) != 0)
            fail_msg("valid case %zu refused:\n%s", i, out);
        free(out);
        free(text);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_miss_pass),
        cmocka_unit_test(test_miss_default_under_field),
        cmocka_unit_test(test_miss_dead_letter),
        cmocka_unit_test(test_field_vs_top_level),
        cmocka_unit_test(test_string_lookups),
        cmocka_unit_test(test_json_lookup),
        cmocka_unit_test(test_cache_lru),
        cmocka_unit_test(test_cache_ttl),
        cmocka_unit_test(test_redis_killed),
        cmocka_unit_test(test_exactly_once_output),
        cmocka_unit_test(test_100k_events_10k_profiles),
    };
    if (getenv("RKB_TEST_FILTER")) /* e.g. RKB_TEST_FILTER=test_cache_* */
        cmocka_set_test_filter(getenv("RKB_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
