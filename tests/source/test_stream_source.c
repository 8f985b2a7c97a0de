/*
 * test_stream_source.c — the Redis Streams → Kafka source (src/source/stream.c) against a real
 * redis-server (AOF, fsync always: one test kills it) and the dev broker, SEMANTICS.md §4.4:
 * S-1/RKC key compatibility, S-2 order/headers/timestamps, S-3 crash before the delivery
 * report, S-4 crash after it and before XACK (failpoint crash_before_xack), S-5 failed
 * deliveries stay pending, S-7 trimmed pending entries counted as lost, S-8 stream deleted
 * while running, pattern discovery, key/value modes, at-most-once, trim.acked, Redis killed
 * mid-run, a fatal producer error, and two processes sharing one group where one is killed and
 * the other claims its pending entries (100k entries), and pipelined reads (order, one XACK
 * each, a crash before an XACK mid-run; at-most-once too). Plus the validation messages.
 */
#include "harness.h"

#include "config/config.h"
#include "source/stream.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP   "kafka-consumer-group" /* redis-kafka-connect's default */
#define WAIT_MS 60000

static h_redis_t *redis;
static h_broker_t *broker;

static int setup(void **state) {
    /* Durable: test_redis_killed_mid_run restarts it from its AOF. */
    redis = h_redis_start("--appendonly yes --appendfsync always");
    broker = h_broker_start(1, "s2:1,s3:1,s4:1,s5:1,s7:1,s8:1,rkc:1,kv:1,je:1,amo:1,tr:1,"
                               "fatal:1,rdown:1,pd.a:1,pd.b:1,shared:8,pipe:1,pipeamo:1");
    return 0;
}

static int teardown(void **state) {
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

/* Every test starts with the brokers up, also after one that failed with them down. */
static int brokers_up(void **state) {
    assert_int_equal(h_broker_ctl(broker, "up all"), 0);
    return 0;
}

/* ---- helpers --------------------------------------------------------------------------------- */

/* A stream source connector file: name, streams (redis.stream.name, omitted when NULL) and
 * extra "key=value\n" lines (printf-style). The returned text is malloc'd (caller frees). */
static char *source_config(const char *name, const char *streams, const char *extra_fmt, ...) {
    char extra[4096] = "";
    if (extra_fmt) {
        va_list ap;
        va_start(ap, extra_fmt);
        vsnprintf(extra, sizeof(extra), extra_fmt, ap);
        va_end(ap);
    }
    char stream_line[512] = "";
    if (streams)
        snprintf(stream_line, sizeof(stream_line), "redis.stream.name=%s\n", streams);
    char *text = NULL;
    if (asprintf(&text,
                 "name=%s\n"
                 "connector.class=com.redis.kafka.connect.RedisStreamSourceConnector\n"
                 "redis.uri=%s\n"
                 "kafka.bootstrap.servers=%s\n"
                 "%s%s",
                 name, h_redis_uri(redis), broker->bootstrap, stream_line, extra) < 0)
        abort();
    return text;
}

static h_proc_t *run_source(const char *name, const char *streams, const char *extra,
                            const char *const *env) {
    char *text = source_config(name, streams, "%s", extra ? extra : "");
    h_proc_t *proc = h_rkbridge_run(text, env);
    free(text);
    return proc;
}

static void dump_output(h_proc_t *proc) {
    char *out = h_proc_output(proc);
    fprintf(stderr, "---- rkbridge output ----\n%s\n-------------------------\n", out);
    free(out);
}

static bool output_has(h_proc_t *proc, const char *needle) {
    char *out = h_proc_output(proc);
    bool has = strstr(out, needle) != NULL;
    free(out);
    return has;
}

static int output_count(h_proc_t *proc, const char *needle) {
    char *out = h_proc_output(proc);
    int n = 0;
    for (const char *p = out; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(out);
    return n;
}

/* Waits for cond; on a timeout prints the process output and fails the test. */
#define WAIT_OR_FAIL(proc, cond)                                                                   \
    do {                                                                                           \
        bool ok_ = H_WAIT_FOR((cond), WAIT_MS);                                                    \
        if (!ok_) {                                                                                \
            fprintf(stderr, "timed out waiting for: %s\n", #cond);                                 \
            dump_output(proc);                                                                     \
        }                                                                                          \
        assert_true(ok_);                                                                          \
    } while (0)

/* SIGTERM and expect an orderly exit 0. */
static void stop_ok(h_proc_t *proc) {
    int status = h_proc_stop(proc, SIGTERM, 30000);
    if (status != 0)
        dump_output(proc);
    assert_int_equal(status, 0);
}

/* XPENDING summary count of group on stream (-1 when the group or stream is missing). */
static long long pending(const char *stream, const char *group) {
    redisReply *reply = h_redis_cmd(redis, "XPENDING %s %s", stream, group);
    long long cnt =
        reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 ? reply->element[0]->integer : -1;
    freeReplyObject(reply);
    return cnt;
}

/* The pending count of one consumer (0 when it has none). */
static long long consumer_pending(const char *stream, const char *group, const char *consumer) {
    redisReply *reply = h_redis_cmd(redis, "XPENDING %s %s", stream, group);
    long long cnt = 0;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
        reply->element[3]->type == REDIS_REPLY_ARRAY) {
        const redisReply *owners = reply->element[3];
        for (size_t i = 0; i < owners->elements; i++)
            if (!strcmp(owners->element[i]->element[0]->str, consumer))
                cnt = atoll(owners->element[i]->element[1]->str);
    }
    freeReplyObject(reply);
    return cnt;
}

/* An integer field of XINFO GROUPS for group (pending, lag, entries-read), -1 if absent. */
static long long group_info(const char *stream, const char *group, const char *field) {
    redisReply *reply = h_redis_cmd(redis, "XINFO GROUPS %s", stream);
    long long value = -1;
    for (size_t g = 0; reply->type == REDIS_REPLY_ARRAY && g < reply->elements; g++) {
        const redisReply *info = reply->element[g];
        bool ours = false;
        for (size_t i = 0; i + 1 < info->elements; i += 2)
            if (!strcmp(info->element[i]->str, "name") && !strcmp(info->element[i + 1]->str, group))
                ours = true;
        for (size_t i = 0; ours && i + 1 < info->elements; i += 2)
            if (!strcmp(info->element[i]->str, field) &&
                info->element[i + 1]->type == REDIS_REPLY_INTEGER)
                value = info->element[i + 1]->integer;
    }
    freeReplyObject(reply);
    return value;
}

/* The last header name of a message as a malloc'd string, or NULL. */
static char *header(const rd_kafka_message_t *m, const char *name) {
    rd_kafka_headers_t *hdrs = NULL;
    const void *value;
    size_t size;
    if (rd_kafka_message_headers(m, &hdrs) || rd_kafka_header_get_last(hdrs, name, &value, &size))
        return NULL;
    return strndup(value, size);
}

static size_t topic_count(const char *topic) {
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, topic, &msgs);
    h_messages_free(msgs, cnt);
    return cnt;
}

/* How many records of topic carry redis-id id. */
static int id_count(rd_kafka_message_t **msgs, size_t cnt, const char *id) {
    int n = 0;
    for (size_t i = 0; i < cnt; i++) {
        char *h = header(msgs[i], "redis-id");
        n += h && !strcmp(h, id);
        free(h);
    }
    return n;
}

static void assert_value(const rd_kafka_message_t *m, const char *expected) {
    if (!expected) {
        assert_null(m->payload);
        return;
    }
    assert_non_null(m->payload);
    assert_int_equal(m->len, strlen(expected));
    assert_memory_equal(m->payload, expected, m->len);
}

static void assert_key(const rd_kafka_message_t *m, const char *expected) {
    if (!expected) {
        assert_null(m->key);
        return;
    }
    assert_int_equal(m->key_len, strlen(expected));
    assert_memory_equal(m->key, expected, m->key_len);
}

/* Adds n entries (IDs *) with ~120 bytes of fields each, in one script per 10000. */
static void xadd_n(const char *stream, int n) {
    static const char script[] =
        "for i = 1, tonumber(ARGV[1]) do\n"
        "  redis.call('XADD', KEYS[1], '*', 'n', tostring(i), 'user', 'User_' .. (i % 97),\n"
        "             'page', 'Page_' .. (i % 13), 'pad', string.rep('x', 80))\n"
        "end\n"
        "return 1\n";
    for (int done = 0; done < n; done += 10000) {
        int chunk = n - done < 10000 ? n - done : 10000;
        redisReply *r;
        /* Just restarted from its AOF, Redis answers LOADING for a while. */
        while ((r = h_redis_cmd(redis, "EVAL %s 1 %s %d", script, stream, chunk))->type ==
                   REDIS_REPLY_ERROR &&
               !strncmp(r->str, "LOADING", 7)) {
            freeReplyObject(r);
            h_sleep_ms(20);
        }
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        freeReplyObject(r);
    }
}

/* ---- validation ------------------------------------------------------------------------------ */

/* Runs both validations on a file; returns the problems (caller clears errs). */
static void validate_text(const char *text, rkb_errors_t *errs) {
    rkb_errors_init(errs);
    const char *path = h_write_file("v.properties", text);
    rkb_config_t *conf = rkb_config_new();
    rkb_config_load_file(conf, path, errs);
    if (!errs->cnt)
        rkb_config_validate(conf, errs);
    if (!errs->cnt)
        rkb_stream_source_validate(conf, errs);
    rkb_config_destroy(conf);
}

static bool errs_have(const rkb_errors_t *errs, const char *needle) {
    for (size_t i = 0; i < errs->cnt; i++)
        if (strstr(errs->msgs[i], needle))
            return true;
    for (size_t i = 0; i < errs->cnt; i++)
        fprintf(stderr, "problem: %s\n", errs->msgs[i]);
    return false;
}

#define HEAD "name=v\nconnector.class=com.redis.kafka.connect.RedisStreamSourceConnector\n"

static void test_validate(void **state) {
    rkb_errors_t errs;

    /* redis-kafka-connect's keys, spelled out, are valid. */
    validate_text(HEAD "redis.stream.name=orders\nredis.stream.offset=0-0\nredis.stream.block=100\n"
                       "batch.size=500\nredis.stream.consumer.group=kafka-consumer-group\n"
                       "redis.stream.consumer.name=consumer-${task}\n"
                       "redis.stream.delivery=at-least-once\ntopic=${stream}\n",
                  &errs);
    assert_int_equal(errs.cnt, 0);
    rkb_errors_clear(&errs);

    validate_text(HEAD "redis.stream.pattern=orders.*\nredis.stream.key=field.user\n"
                       "redis.stream.value=field.payload\ntopic=all-$${stream}-${stream}\n"
                       "redis.stream.offset=$\n",
                  &errs);
    assert_int_equal(errs.cnt, 0);
    rkb_errors_clear(&errs);

    validate_text(HEAD, &errs);
    assert_int_equal(errs.cnt, 1);
    assert_true(errs_have(&errs, "v.properties:2: redis.stream.name: set redis.stream.name, "
                                 "redis.stream.pattern, or both"));
    rkb_errors_clear(&errs);

    validate_text(HEAD "redis.stream.name=s\nredis.stream.key=field.\nredis.stream.value=avro\n"
                       "topic=t-${topic}\nredis.stream.consumer.name=c-${task}-${stream}\n"
                       "redis.stream.offset=12-x\n",
                  &errs);
    assert_int_equal(errs.cnt, 5);
    assert_true(errs_have(&errs, "v.properties:4: redis.stream.key: must be stream, id or "
                                 "field.NAME, got 'field.'"));
    assert_true(errs_have(&errs, "v.properties:5: redis.stream.value: must be json or "
                                 "field.NAME, got 'avro'"));
    assert_true(errs_have(&errs, "v.properties:6: topic: unknown token '${topic}' at column 3 "
                                 "(only ${stream} is known)"));
    assert_true(errs_have(&errs, "v.properties:7: redis.stream.consumer.name: unknown token "
                                 "'${stream}'"));
    assert_true(errs_have(&errs, "v.properties:8: redis.stream.offset: must be an entry ID"));
    rkb_errors_clear(&errs);

    /* Stream names that are not topic names need a topic. */
    validate_text(HEAD "redis.stream.name=ok,orders:eu\n", &errs);
    assert_int_equal(errs.cnt, 1);
    assert_true(errs_have(&errs, "v.properties:3: topic: stream 'orders:eu' gives topic "
                                 "'orders:eu', which is not a legal Kafka topic name"));
    rkb_errors_clear(&errs);
    validate_text(HEAD "redis.stream.name=orders:eu\ntopic=orders\n", &errs);
    assert_int_equal(errs.cnt, 0);
    rkb_errors_clear(&errs);

    /* SEMANTICS.md §4.3 step 6: min idle above the delivery timeout. */
    validate_text(HEAD "redis.stream.name=s\nkafka.message.timeout.ms=5000\n"
                       "redis.stream.claim.min.idle.ms=5000\n",
                  &errs);
    assert_int_equal(errs.cnt, 1);
    assert_true(errs_have(&errs, "v.properties:5: redis.stream.claim.min.idle.ms: 5000 must be "
                                 "above kafka.message.timeout.ms (5000)"));
    rkb_errors_clear(&errs);
    validate_text(HEAD "redis.stream.name=s\nkafka.message.timeout.ms=600000\n", &errs);
    assert_int_equal(errs.cnt, 1);
    assert_true(errs_have(&errs, "default: redis.stream.claim.min.idle.ms: 330000 must be above"));
    rkb_errors_clear(&errs);
    validate_text(HEAD "redis.stream.name=s\nkafka.delivery.timeout.ms=0\n", &errs);
    assert_int_equal(errs.cnt, 1);
    assert_true(errs_have(&errs, "v.properties:4: kafka.delivery.timeout.ms: 0 (no delivery "
                                 "timeout)"));
    rkb_errors_clear(&errs);
}

/* ---- behaviour ------------------------------------------------------------------------------- */

/* S-2: three entries reach the topic in order, keyed by the stream, with headers redis-stream
 * and redis-id, the ID's milliseconds as timestamp, a JSON value; nothing stays pending. */
static void test_s2_order_headers_timestamps(void **state) {
    freeReplyObject(h_redis_cmd(redis, "XADD s2 1000-0 f a"));
    freeReplyObject(h_redis_cmd(redis, "XADD s2 1000-1 f b"));
    freeReplyObject(h_redis_cmd(redis, "XADD s2 2000-0 f c"));
    h_proc_t *proc = run_source("s2", "s2", NULL, NULL);
    WAIT_OR_FAIL(proc, topic_count("s2") == 3 && pending("s2", GROUP) == 0);
    stop_ok(proc);
    assert_true(output_has(proc, "3 read, 3 produced, 3 acked, 0 lost"));
    h_proc_free(proc);

    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "s2", &msgs);
    assert_int_equal(cnt, 3);
    const char *ids[] = {"1000-0", "1000-1", "2000-0"};
    const char *values[] = {"{\"f\":\"a\"}", "{\"f\":\"b\"}", "{\"f\":\"c\"}"};
    const int64_t timestamps[] = {1000, 1000, 2000};
    for (size_t i = 0; i < cnt; i++) {
        assert_key(msgs[i], "s2");
        assert_value(msgs[i], values[i]);
        char *id = header(msgs[i], "redis-id"), *stream = header(msgs[i], "redis-stream");
        assert_string_equal(id, ids[i]);
        assert_string_equal(stream, "s2");
        free(id);
        free(stream);
        rd_kafka_timestamp_type_t type;
        assert_int_equal(rd_kafka_message_timestamp(msgs[i], &type), timestamps[i]);
        assert_int_equal(type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
    }
    h_messages_free(msgs, cnt);
    assert_int_equal(pending("s2", GROUP), 0);
}

/* S-1 and redis-kafka-connect's keys: a group that already exists (created at $) is used as
 * it is; consumers are named consumer-${task}; key id puts the entry ID in the key. */
static void test_s1_rkc_keys_existing_group(void **state) {
    freeReplyObject(h_redis_cmd(redis, "XADD rkc 1-0 f before"));
    freeReplyObject(h_redis_cmd(redis, "XGROUP CREATE rkc " GROUP " $ MKSTREAM"));
    freeReplyObject(h_redis_cmd(redis, "XADD rkc 2-0 f after"));
    h_proc_t *proc = run_source("rkc", "rkc",
                                "tasks.max=2\nredis.stream.offset=0-0\nredis.stream.block=100\n"
                                "batch.size=500\nredis.stream.consumer.name=consumer-${task}\n"
                                "redis.stream.delivery=at-least-once\ntopic=${stream}\n"
                                "redis.stream.key=id\n",
                                NULL);
    WAIT_OR_FAIL(proc, topic_count("rkc") == 1 && pending("rkc", GROUP) == 0);
    /* Both tasks joined the group under their names. */
    WAIT_OR_FAIL(proc, ({
                     redisReply *r = h_redis_cmd(redis, "XINFO CONSUMERS rkc " GROUP);
                     bool both = r->type == REDIS_REPLY_ARRAY && r->elements == 2;
                     for (size_t i = 0; both && i < 2; i++)
                         both = !strcmp(r->element[i]->element[1]->str,
                                        i ? "consumer-1" : "consumer-0");
                     freeReplyObject(r);
                     both;
                 }));
    stop_ok(proc);
    h_proc_free(proc);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "rkc", &msgs);
    assert_int_equal(cnt, 1); /* 1-0 came before the group's $ */
    assert_key(msgs[0], "2-0");
    assert_value(msgs[0], "{\"f\":\"after\"}");
    h_messages_free(msgs, cnt);
}

/* redis.stream.key/value = field.NAME: the field's raw bytes; a missing field gives a null key
 * or value (logged), never a dropped entry. */
static void test_field_key_and_value(void **state) {
    freeReplyObject(h_redis_cmd(redis, "XADD kv 1-0 k key1 v payload1"));
    freeReplyObject(h_redis_cmd(redis, "XADD kv 2-0 v payload2"));
    freeReplyObject(h_redis_cmd(redis, "XADD kv 3-0 k key3 x y"));
    freeReplyObject(h_redis_cmd(redis, "XADD kv 4-0 v %b", "a\0b\xff", (size_t)4));
    h_proc_t *proc =
        run_source("kv", "kv", "redis.stream.key=field.k\nredis.stream.value=field.v\n", NULL);
    WAIT_OR_FAIL(proc, topic_count("kv") == 4 && pending("kv", GROUP) == 0);
    assert_true(output_has(proc, "kv 2-0 has no field 'k': produced with a null key"));
    assert_true(output_has(proc, "kv 3-0 has no field 'v': produced with a null value"));
    stop_ok(proc);
    assert_true(output_has(proc, "3 missing fields"));
    h_proc_free(proc);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "kv", &msgs);
    assert_int_equal(cnt, 4);
    assert_key(msgs[0], "key1");
    assert_value(msgs[0], "payload1");
    assert_key(msgs[1], NULL);
    assert_value(msgs[1], "payload2");
    assert_key(msgs[2], "key3");
    assert_value(msgs[2], NULL);
    assert_int_equal(msgs[3]->len, 4);
    assert_memory_equal(msgs[3]->payload, "a\0b\xff", 4);
    char *id = header(msgs[2], "redis-id");
    assert_string_equal(id, "3-0");
    free(id);
    h_messages_free(msgs, cnt);
}

/* The json value: fields in order, escaped as JSON needs, invalid UTF-8 as U+FFFD. */
static void test_json_value_encoding(void **state) {
    freeReplyObject(h_redis_cmd(redis, "XADD je 1-0 %b %b uni %s bin %b ctl %b", "a\"b", (size_t)3,
                                "x\ny\\", (size_t)4, "\xc3\xa9\xe2\x82\xac", "\xff\xc3", (size_t)2,
                                "\x01\t", (size_t)2));
    h_proc_t *proc = run_source("je", "je", "redis.stream.key=id\n", NULL);
    WAIT_OR_FAIL(proc, topic_count("je") == 1 && pending("je", GROUP) == 0);
    stop_ok(proc);
    h_proc_free(proc);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "je", &msgs);
    assert_int_equal(cnt, 1);
    assert_key(msgs[0], "1-0");
    assert_value(msgs[0], "{\"a\\\"b\":\"x\\ny\\\\\",\"uni\":\"\xc3\xa9\xe2\x82\xac\","
                          "\"bin\":\"\xef\xbf\xbd\xef\xbf\xbd\",\"ctl\":\"\\u0001\\t\"}");
    h_messages_free(msgs, cnt);
}

/* The recovery tests look at one consumer's pending entries across restarts: they name it
 * themselves (the default holds ${worker}, the process's name among workers). */
#define PINNED_CONSUMER "redis.stream.consumer.name=consumer-${task}\n"

/* S-3: the broker is down, the daemon reads a,b,c (pending for consumer-0) and is killed
 * before any delivery report; after a restart the recovery pass reads them again from ID 0:
 * the topic has a,b,c exactly once, nothing stays pending. */
static void test_s3_crash_before_delivery(void **state) {
    assert_int_equal(h_broker_ctl(broker, "down all"), 0);
    freeReplyObject(h_redis_cmd(redis, "XADD s3 1-0 f a"));
    freeReplyObject(h_redis_cmd(redis, "XADD s3 2-0 f b"));
    freeReplyObject(h_redis_cmd(redis, "XADD s3 3-0 f c"));
    h_proc_t *proc = run_source("s3", "s3", PINNED_CONSUMER, NULL);
    WAIT_OR_FAIL(proc, consumer_pending("s3", GROUP, "consumer-0") == 3);
    assert_int_equal(h_proc_stop(proc, SIGKILL, 5000), 128 + SIGKILL);
    h_proc_free(proc);
    assert_int_equal(h_broker_ctl(broker, "up all"), 0);
    assert_int_equal(topic_count("s3"), 0); /* never produced */

    proc = run_source("s3", "s3", PINNED_CONSUMER, NULL);
    WAIT_OR_FAIL(proc, topic_count("s3") == 3 && pending("s3", GROUP) == 0);
    assert_true(output_has(proc, "recovery: 3 entries pending for consumer consumer-0 read "
                                 "again from 0"));
    stop_ok(proc);
    h_proc_free(proc);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "s3", &msgs);
    assert_int_equal(cnt, 3);
    assert_value(msgs[0], "{\"f\":\"a\"}");
    assert_value(msgs[1], "{\"f\":\"b\"}");
    assert_value(msgs[2], "{\"f\":\"c\"}");
    h_messages_free(msgs, cnt);
}

/* S-4: ten entries; the failpoint kills the daemon when the 5th record's delivery report
 * arrives (the first four are acknowledged, the 5th is not). After a restart: 1..4 exactly
 * once, 5 exactly twice (delivered, not acknowledged, read again), 6..10 once or twice (they
 * may have reached the broker before the kill), nothing lost, nothing pending. */
static void test_s4_crash_after_delivery_before_xack(void **state) {
    for (int i = 1; i <= 10; i++)
        freeReplyObject(h_redis_cmd(redis, "XADD s4 %d-0 f v%d", i, i));
    const char *const crash_env[] = {"RKB_FAILPOINT=crash_before_xack@5", NULL};
    h_proc_t *proc = run_source("s4", "s4", NULL, crash_env);
    int status = h_proc_wait(proc, WAIT_MS);
    if (status != 128 + SIGKILL)
        dump_output(proc);
    assert_int_equal(status, 128 + SIGKILL);
    assert_true(output_has(proc, "crash_before_xack fired at 5"));
    h_proc_free(proc);
    /* 1..4 acknowledged, 5 pending. */
    redisReply *r = h_redis_cmd(redis, "XPENDING s4 " GROUP " - + 100");
    assert_true(r->elements >= 1);
    assert_string_equal(r->element[0]->element[0]->str, "5-0");
    freeReplyObject(r);

    proc = run_source("s4", "s4", NULL, NULL);
    WAIT_OR_FAIL(proc, pending("s4", GROUP) == 0 && topic_count("s4") >= 11);
    stop_ok(proc);
    h_proc_free(proc);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "s4", &msgs);
    for (int i = 1; i <= 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d-0", i);
        int n = id_count(msgs, cnt, id);
        if (i < 5)
            assert_int_equal(n, 1);
        else if (i == 5)
            assert_int_equal(n, 2);
        else
            assert_true(n == 1 || n == 2);
    }
    h_messages_free(msgs, cnt);
}

/* S-5: deliveries fail (broker down past kafka.message.timeout.ms): the entries stay pending
 * for the consumer, are produced again once the broker is back, then acknowledged; never
 * persisted before, so each is in the topic once. */
static void test_s5_failed_delivery_stays_pending(void **state) {
    assert_int_equal(h_broker_ctl(broker, "down all"), 0);
    for (int i = 1; i <= 3; i++)
        freeReplyObject(h_redis_cmd(redis, "XADD s5 %d-0 f v%d", i, i));
    h_proc_t *proc =
        run_source("s5", "s5", PINNED_CONSUMER "kafka.message.timeout.ms=1000\n", NULL);
    WAIT_OR_FAIL(proc, output_has(proc, "records not delivered (last: s5"));
    assert_int_equal(consumer_pending("s5", GROUP, "consumer-0"), 3);
    assert_int_equal(h_broker_ctl(broker, "up all"), 0);
    WAIT_OR_FAIL(proc, pending("s5", GROUP) == 0 && topic_count("s5") == 3);
    stop_ok(proc);
    h_proc_free(proc);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "s5", &msgs);
    assert_int_equal(cnt, 3);
    for (int i = 1; i <= 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d-0", i);
        assert_int_equal(id_count(msgs, cnt, id), 1);
    }
    h_messages_free(msgs, cnt);
}

/* S-7: 1-0..4-0 pending (read while the broker was down, then a crash); XTRIM MINID 3 deletes
 * two of them. The restart's recovery reads 1-0 and 2-0 as [id, nil]: acknowledged and counted
 * lost; 3-0 and 4-0 are produced; nothing stays pending. */
static void test_s7_trimmed_pending_entries_are_lost(void **state) {
    assert_int_equal(h_broker_ctl(broker, "down all"), 0);
    for (int i = 1; i <= 4; i++)
        freeReplyObject(h_redis_cmd(redis, "XADD s7 %d-0 f v%d", i, i));
    h_proc_t *proc = run_source("s7", "s7", PINNED_CONSUMER, NULL);
    WAIT_OR_FAIL(proc, consumer_pending("s7", GROUP, "consumer-0") == 4);
    assert_int_equal(h_proc_stop(proc, SIGKILL, 5000), 128 + SIGKILL);
    h_proc_free(proc);
    assert_int_equal(h_redis_int(redis, "XTRIM s7 MINID 3"), 2);
    assert_int_equal(h_broker_ctl(broker, "up all"), 0);

    proc = run_source("s7", "s7", PINNED_CONSUMER, NULL);
    WAIT_OR_FAIL(proc, pending("s7", GROUP) == 0 && topic_count("s7") == 2);
    assert_true(output_has(proc, "s7: 2 pending entries (1-0, 2-0) had been deleted or trimmed "
                                 "before reaching Kafka: counted as lost"));
    stop_ok(proc);
    assert_true(output_has(proc, "4 read, 2 produced, 4 acked, 2 lost"));
    h_proc_free(proc);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "s7", &msgs);
    assert_int_equal(cnt, 2);
    assert_value(msgs[0], "{\"f\":\"v3\"}");
    assert_value(msgs[1], "{\"f\":\"v4\"}");
    h_messages_free(msgs, cnt);
}

/* S-8: the stream is deleted while the daemon reads it: it creates the group again
 * (MKSTREAM, from 0) and goes on with the new entries. */
static void test_s8_stream_deleted_while_running(void **state) {
    freeReplyObject(h_redis_cmd(redis, "XADD s8 * f first"));
    h_proc_t *proc = run_source("s8", "s8", NULL, NULL);
    WAIT_OR_FAIL(proc, topic_count("s8") == 1 && pending("s8", GROUP) == 0);
    assert_int_equal(h_redis_int(redis, "DEL s8"), 1);
    freeReplyObject(h_redis_cmd(redis, "XADD s8 * f second"));
    WAIT_OR_FAIL(proc, topic_count("s8") == 2 && pending("s8", GROUP) == 0);
    assert_true(output_has(proc, "creating the group again (MKSTREAM, from 0)"));
    assert_true(output_has(proc, "s8: created consumer group " GROUP " at 0"));
    stop_ok(proc);
    h_proc_free(proc);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "s8", &msgs);
    assert_int_equal(cnt, 2);
    assert_value(msgs[1], "{\"f\":\"second\"}");
    h_messages_free(msgs, cnt);
}

/* redis.stream.pattern: a stream that exists at start and one created while running are both
 * read; a matching key that would give an illegal topic name is reported and left alone. */
static void test_pattern_discovery(void **state) {
    freeReplyObject(h_redis_cmd(redis, "XADD pd.a * f a"));
    freeReplyObject(h_redis_cmd(redis, "XADD pd.x:y * f bad"));
    freeReplyObject(h_redis_cmd(redis, "SET pd.notastream x"));
    h_proc_t *proc = run_source("pd", NULL,
                                "redis.stream.pattern=pd.*\n"
                                "redis.stream.discovery.interval.ms=200\n",
                                NULL);
    WAIT_OR_FAIL(proc, topic_count("pd.a") == 1 && pending("pd.a", GROUP) == 0);
    freeReplyObject(h_redis_cmd(redis, "XADD pd.b * f b"));
    WAIT_OR_FAIL(proc, topic_count("pd.b") == 1 && pending("pd.b", GROUP) == 0);
    assert_true(output_has(proc, "pd.b: found by redis.stream.pattern 'pd.*'; reading it"));
    /* Said once, although discovery ran many times. */
    assert_int_equal(output_count(proc, "pd.x:y matches redis.stream.pattern but gives topic "
                                        "'pd.x:y', which is not a legal Kafka topic name"),
                     1);
    stop_ok(proc);
    h_proc_free(proc);
    assert_int_equal(pending("pd.x:y", GROUP), -1); /* no group was created there */
}

/* at-most-once: XACK right after the read, before producing. With the broker down the entry
 * is acknowledged at once, its delivery fails, and it is lost (reported), never re-read. */
static void test_at_most_once(void **state) {
    assert_int_equal(h_broker_ctl(broker, "down all"), 0);
    freeReplyObject(h_redis_cmd(redis, "XADD amo 1-0 f a"));
    h_proc_t *proc = run_source("amo", "amo",
                                "redis.stream.delivery=at-most-once\n"
                                "kafka.message.timeout.ms=1000\n",
                                NULL);
    WAIT_OR_FAIL(proc, group_info("amo", GROUP, "entries-read") == 1 && pending("amo", GROUP) == 0);
    WAIT_OR_FAIL(proc, output_has(proc, "at-most-once: they are lost"));
    assert_int_equal(h_broker_ctl(broker, "up all"), 0);
    stop_ok(proc);
    assert_true(output_has(proc, "1 read, 0 produced, 1 acked"));
    h_proc_free(proc);
    assert_int_equal(topic_count("amo"), 0);
}

/* redis.stream.trim.acked: trims only below what every group still needs: another group's
 * smallest pending ID, or the entries it was not handed yet. */
static void test_trim_acked(void **state) {
    for (int i = 1; i <= 5; i++)
        freeReplyObject(h_redis_cmd(redis, "XADD tr %d-0 f v%d", i, i));
    freeReplyObject(h_redis_cmd(redis, "XGROUP CREATE tr other 0"));
    freeReplyObject(h_redis_cmd(redis, "XREADGROUP GROUP other o COUNT 2 STREAMS tr >"));
    assert_int_equal(h_redis_int(redis, "XACK tr other 1-0"), 1); /* other: 2-0 pending */
    h_proc_t *proc = run_source("tr", "tr", "redis.stream.trim.acked=true\n", NULL);
    WAIT_OR_FAIL(proc, pending("tr", GROUP) == 0 && h_redis_int(redis, "XLEN tr") == 4);
    char *first = NULL;
    redisReply *r = h_redis_cmd(redis, "XRANGE tr - + COUNT 1");
    first = strdup(r->element[0]->element[0]->str);
    freeReplyObject(r);
    assert_string_equal(first, "2-0"); /* other's pending entry is kept */
    free(first);

    /* other finishes 2-0..5-0; a new entry makes us acknowledge (and trim) again: everything
     * up to 5-0 goes, 6-0 stays (other has not read it). */
    freeReplyObject(h_redis_cmd(redis, "XREADGROUP GROUP other o COUNT 10 STREAMS tr >"));
    assert_int_equal(h_redis_int(redis, "XACK tr other 2-0 3-0 4-0 5-0"), 4);
    freeReplyObject(h_redis_cmd(redis, "XADD tr 6-0 f v6"));
    WAIT_OR_FAIL(proc, pending("tr", GROUP) == 0 && h_redis_int(redis, "XLEN tr") == 1);
    r = h_redis_cmd(redis, "XRANGE tr - +");
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->element[0]->str, "6-0");
    freeReplyObject(r);
    stop_ok(proc);
    h_proc_free(proc);
    assert_int_equal(topic_count("tr"), 6);
}

/* Redis killed mid-run and restarted from its AOF: the task backs off, reconnects, settles its
 * acknowledgements, reads its pending entries again, and goes on. Nothing is lost, and since no
 * delivered entry is left unacknowledged, nothing is produced twice. */
static void test_redis_killed_mid_run(void **state) {
    xadd_n("rdown", 2000);
    h_proc_t *proc = run_source("rdown", "rdown", "redis.timeout=2\nbatch.size=100\n", NULL);
    WAIT_OR_FAIL(proc, group_info("rdown", GROUP, "entries-read") > 0);
    h_redis_kill(redis);
    WAIT_OR_FAIL(proc, output_has(proc, "pausing reads; retrying with backoff"));
    h_redis_restart(redis);
    xadd_n("rdown", 2000);
    WAIT_OR_FAIL(proc, group_info("rdown", GROUP, "lag") == 0 && pending("rdown", GROUP) == 0);
    assert_true(output_has(proc, "reads resume after"));
    stop_ok(proc);
    h_proc_free(proc);

    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "rdown", &msgs);
    redisReply *r = h_redis_cmd(redis, "XRANGE rdown - +");
    assert_int_equal(r->elements, 4000);
    assert_int_equal(cnt, 4000);
    /* Same order: one partition, one consumer, produced in ID order. */
    for (size_t i = 0; i < cnt; i++) {
        char *id = header(msgs[i], "redis-id");
        assert_string_equal(id, r->element[i]->element[0]->str);
        free(id);
    }
    freeReplyObject(r);
    h_messages_free(msgs, cnt);
}

/* The IDs of the topic's records in order, checked against the stream's first n entries:
 * entries before `once` (an index) are in the topic exactly once, every entry at least once,
 * and the records in order of their first appearance are the stream in ID order. */
static void assert_topic_is_stream(const char *topic, const char *stream, size_t n, size_t once) {
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, topic, &msgs);
    redisReply *r = h_redis_cmd(redis, "XRANGE %s - + COUNT %d", stream, (int)n);
    assert_int_equal(r->elements, n);
    size_t next = 0; /* the next entry not seen yet */
    for (size_t i = 0; i < cnt; i++) {
        char *id = header(msgs[i], "redis-id");
        assert_non_null(id);
        if (next < n && !strcmp(id, r->element[next]->element[0]->str)) {
            next++;
        } else {
            /* A duplicate: of an entry already seen, at or after `once`. */
            size_t at = 0;
            while (at < next && strcmp(id, r->element[at]->element[0]->str))
                at++;
            if (at == next || at < once)
                fprintf(stderr, "record %zu: redis-id %s out of place (entry %zu of %zu seen)\n", i,
                        id, at, next);
            assert_true(at < next && at >= once);
        }
        free(id);
    }
    assert_int_equal(next, n);
    freeReplyObject(r);
    h_messages_free(msgs, cnt);
}

/*
 * Pipelined reads: while a full batch is produced, the next read (with the XACKs due) is on its
 * way. 3000 entries in batches of 100 reach the one-partition topic in order, each once, and
 * each is acknowledged once (S-9). Then 3000 more, and a crash before the XACK of the 1500th
 * record delivered (S-4 mid-run), with a local queue small enough that reports are also served
 * inside produce calls, while the next read is on its way: everything delivered before that
 * record is acknowledged, the restart produces the rest, and the only duplicates are that
 * record and records after it.
 */
static void test_pipelined_reads(void **state) {
    enum { ENTRIES = 3000 };
    xadd_n("pipe", ENTRIES);
    h_proc_t *proc = run_source("pipe", "pipe", "batch.size=100\n", NULL);
    WAIT_OR_FAIL(proc, group_info("pipe", GROUP, "lag") == 0 && pending("pipe", GROUP) == 0);
    stop_ok(proc);
    assert_true(output_has(proc, "3000 read, 3000 produced, 3000 acked, 0 lost"));
    h_proc_free(proc);
    assert_topic_is_stream("pipe", "pipe", ENTRIES, ENTRIES);

    xadd_n("pipe", ENTRIES);
    const char *const crash_env[] = {"RKB_FAILPOINT=crash_before_xack@1500", NULL};
    /* A local queue smaller than two batches: produce calls wait for reports. */
    proc = run_source("pipe", "pipe", "batch.size=100\nkafka.queue.buffering.max.messages=150\n",
                      crash_env);
    int status = h_proc_wait(proc, WAIT_MS);
    if (status != 128 + SIGKILL)
        dump_output(proc);
    assert_int_equal(status, 128 + SIGKILL);
    h_proc_free(proc);
    /* The oldest pending entry is the one whose XACK never went out: entry 4500. */
    redisReply *r = h_redis_cmd(redis, "XPENDING pipe " GROUP " - + 1");
    redisReply *entry = h_redis_cmd(redis, "XRANGE pipe - + COUNT %d", ENTRIES + 1500);
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->element[0]->str,
                        entry->element[ENTRIES + 1499]->element[0]->str);
    freeReplyObject(entry);
    freeReplyObject(r);

    proc = run_source("pipe", "pipe", "batch.size=100\n", NULL);
    WAIT_OR_FAIL(proc, group_info("pipe", GROUP, "lag") == 0 && pending("pipe", GROUP) == 0);
    stop_ok(proc);
    h_proc_free(proc);
    assert_topic_is_stream("pipe", "pipe", 2 * ENTRIES, ENTRIES + 1499);
}

/* Pipelined at-most-once: each batch's XACK goes out with the next read, and the batch is
 * produced once that XACK is answered. 3000 entries in batches of 100: each in the topic once,
 * in order, each acknowledged once. */
static void test_pipelined_reads_at_most_once(void **state) {
    enum { ENTRIES = 3000 };
    xadd_n("pipeamo", ENTRIES);
    h_proc_t *proc = run_source("pipeamo", "pipeamo",
                                "batch.size=100\nredis.stream.delivery=at-most-once\n", NULL);
    WAIT_OR_FAIL(proc, group_info("pipeamo", GROUP, "lag") == 0 && pending("pipeamo", GROUP) == 0 &&
                           topic_count("pipeamo") == ENTRIES);
    stop_ok(proc);
    assert_true(output_has(proc, "3000 read, 3000 produced, 3000 acked, 0 lost"));
    h_proc_free(proc);
    assert_topic_is_stream("pipeamo", "pipeamo", ENTRIES, ENTRIES);
}

/* A fatal producer error (the broker lost an idempotent sequence) fails the task: exit 1,
 * and the entry whose delivery failed stays pending. */
static void test_fatal_producer_error_fails_task(void **state) {
    freeReplyObject(h_redis_cmd(redis, "XADD fatal 1-0 f a"));
    h_proc_t *proc = run_source("fatal", "fatal", NULL, NULL);
    WAIT_OR_FAIL(proc, topic_count("fatal") == 1 && pending("fatal", GROUP) == 0);
    assert_int_equal(h_broker_ctl(broker, "error Produce 1 OUT_OF_ORDER_SEQUENCE_NUMBER"), 0);
    freeReplyObject(h_redis_cmd(redis, "XADD fatal 2-0 f b"));
    int status = h_proc_wait(proc, WAIT_MS);
    if (status != 1)
        dump_output(proc);
    assert_int_equal(status, 1);
    assert_true(output_has(proc, "task FAILED: kafka producer failed fatally"));
    h_proc_free(proc);
    redisReply *r = h_redis_cmd(redis, "XPENDING fatal " GROUP " - + 10");
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->element[0]->str, "2-0");
    freeReplyObject(r);
}

/* ---- two processes, one group --------------------------------------------------------------- */

typedef struct {
    uint64_t ms, seq;
} id_t_;

static id_t_ parse_id(const char *text) {
    id_t_ id = {0, 0};
    sscanf(text, "%" SCNu64 "-%" SCNu64, &id.ms, &id.seq);
    return id;
}

static int id_cmp(const void *a, const void *b) {
    const id_t_ *x = a, *y = b;
    if (x->ms != y->ms)
        return x->ms < y->ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * The case: processes A (consumers a-N) and B (b-N) share stream "shared" in one group
 * (claim min idle 3000 ms > kafka.message.timeout.ms 2000). A is killed with SIGKILL mid-run
 * with entries pending; B claims them once they are idle long enough. Every one of the 100k
 * entries reaches the 8-partition topic (duplicates allowed: A may have delivered some it never
 * acknowledged), and nothing stays pending.
 */
static void test_two_processes_share_a_group_and_claim(void **state) {
    enum { ENTRIES = 100000 };
    xadd_n("shared", ENTRIES);
    /* Slow produce responses: each process holds a few batches in flight. */
    assert_int_equal(h_broker_ctl(broker, "rtt all 50"), 0);
    const char *common = "redis.stream.key=id\n"
                         "redis.stream.claim.min.idle.ms=3000\n"
                         "redis.stream.claim.interval.ms=500\n"
                         "kafka.message.timeout.ms=2000\n";
    char extra[1024];
    snprintf(extra, sizeof(extra), "%sredis.stream.consumer.name=a-${task}\n", common);
    h_proc_t *a = run_source("shared", "shared", extra, NULL);
    snprintf(extra, sizeof(extra), "%sredis.stream.consumer.name=b-${task}\n", common);
    h_proc_t *b = run_source("shared", "shared", extra, NULL);

    WAIT_OR_FAIL(a, group_info("shared", GROUP, "entries-read") >= ENTRIES / 5 &&
                        consumer_pending("shared", GROUP, "a-0") > 0);
    assert_int_equal(h_proc_stop(a, SIGKILL, 5000), 128 + SIGKILL);
    long long orphaned = consumer_pending("shared", GROUP, "a-0");
    assert_true(orphaned > 0);
    assert_int_equal(h_broker_ctl(broker, "rtt all 0"), 0);

    WAIT_OR_FAIL(b, consumer_pending("shared", GROUP, "a-0") == 0 &&
                        group_info("shared", GROUP, "lag") == 0 && pending("shared", GROUP) == 0);
    assert_true(output_has(b, "shared: claimed "));
    stop_ok(b);
    h_proc_free(a);
    h_proc_free(b);

    /* The set of redis-id headers in the topic == every entry ID. */
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "shared", &msgs);
    assert_true(cnt >= ENTRIES);
    id_t_ *seen = calloc(cnt, sizeof(*seen));
    for (size_t i = 0; i < cnt; i++) {
        char *h = header(msgs[i], "redis-id");
        assert_non_null(h);
        seen[i] = parse_id(h);
        free(h);
    }
    h_messages_free(msgs, cnt);
    qsort(seen, cnt, sizeof(*seen), id_cmp);
    size_t distinct = 0;
    for (size_t i = 0; i < cnt; i++)
        if (!distinct || id_cmp(&seen[distinct - 1], &seen[i]))
            seen[distinct++] = seen[i];
    assert_int_equal(distinct, ENTRIES);

    size_t at = 0;
    char start[64] = "-";
    for (;;) {
        redisReply *r = h_redis_cmd(redis, "XRANGE shared %s + COUNT 10000", start);
        for (size_t i = 0; i < r->elements; i++) {
            id_t_ id = parse_id(r->element[i]->element[0]->str);
            assert_true(at < distinct);
            assert_int_equal(id_cmp(&id, &seen[at]), 0);
            at++;
        }
        bool more = r->elements == 10000;
        if (more)
            snprintf(start, sizeof(start), "(%s", r->element[r->elements - 1]->element[0]->str);
        freeReplyObject(r);
        if (!more)
            break;
    }
    assert_int_equal(at, ENTRIES);
    free(seen);
    fprintf(stderr, "two processes: %zu records for %d entries, %lld entries orphaned by A\n", cnt,
            ENTRIES, orphaned);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test_setup(test_s2_order_headers_timestamps, brokers_up),
        cmocka_unit_test_setup(test_s1_rkc_keys_existing_group, brokers_up),
        cmocka_unit_test_setup(test_field_key_and_value, brokers_up),
        cmocka_unit_test_setup(test_json_value_encoding, brokers_up),
        cmocka_unit_test_setup(test_s3_crash_before_delivery, brokers_up),
        cmocka_unit_test_setup(test_s4_crash_after_delivery_before_xack, brokers_up),
        cmocka_unit_test_setup(test_s5_failed_delivery_stays_pending, brokers_up),
        cmocka_unit_test_setup(test_s7_trimmed_pending_entries_are_lost, brokers_up),
        cmocka_unit_test_setup(test_s8_stream_deleted_while_running, brokers_up),
        cmocka_unit_test_setup(test_pattern_discovery, brokers_up),
        cmocka_unit_test_setup(test_at_most_once, brokers_up),
        cmocka_unit_test_setup(test_trim_acked, brokers_up),
        cmocka_unit_test_setup(test_redis_killed_mid_run, brokers_up),
        cmocka_unit_test_setup(test_fatal_producer_error_fails_task, brokers_up),
        cmocka_unit_test_setup(test_pipelined_reads, brokers_up),
        cmocka_unit_test_setup(test_pipelined_reads_at_most_once, brokers_up),
        cmocka_unit_test_setup(test_two_processes_share_a_group_and_claim, brokers_up),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
